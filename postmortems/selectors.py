"""Reads, with the joins each page needs so query counts stay flat as rows grow.

Every list is filtered through `postmortems.permissions`, so restricted incidents' postmortems
and action items never show up (nor in counts or CSV) for people who cannot see them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils import timezone

from incidents.models import TimelineEntry
from postmortems.models import (
    OPEN_ITEM_STATUSES,
    ActionItem,
    ActionItemStatus,
    ExportState,
    Postmortem,
    PostmortemSection,
    PostmortemStatus,
    ReviewComment,
)
from postmortems.permissions import action_items_visible_to, postmortems_visible_to

# The status filter's "open or in progress" (distinct from the status "open" itself).
ACTIVE = "active"


def due_soon_days() -> int:
    return int(getattr(settings, "ACTION_ITEM_DUE_SOON_DAYS", 7))


# --- Postmortems ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PostmortemFilters:
    status: str = ""
    late: bool = False
    mine: bool = False
    query: str = ""


def postmortem_list_for_user(
    *, user, filters: PostmortemFilters | None = None, today: dt.date | None = None
) -> QuerySet[Postmortem]:
    filters = filters or PostmortemFilters()
    today = today or timezone.localdate()
    queryset = postmortems_visible_to(user)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.late:
        queryset = queryset.filter(due_date__lt=today).exclude(status=PostmortemStatus.PUBLISHED)
    if filters.mine:
        queryset = queryset.filter(Q(owner=user) | Q(authors=user) | Q(reviewers__user=user))
    if filters.query:
        term = filters.query.strip()
        match = Q(title__icontains=term) | Q(incident__title__icontains=term)
        match |= Q(tags__icontains=term.lower())
        reference = term.upper().removeprefix("INC-")
        if reference.isdigit():
            match |= Q(incident_id=int(reference))
        queryset = queryset.filter(match)
    return (
        queryset.distinct()
        .select_related("incident", "incident__severity", "owner")
        .annotate(
            items_total=Count("action_items", distinct=True),
            items_open=Count(
                "action_items",
                filter=Q(action_items__status__in=OPEN_ITEM_STATUSES),
                distinct=True,
            ),
        )
        .order_by("-created_at", "-pk")
    )


def postmortem_counts_for_user(*, user, today: dt.date | None = None) -> dict[str, int]:
    today = today or timezone.localdate()
    late = Q(due_date__lt=today) & ~Q(status=PostmortemStatus.PUBLISHED)
    return postmortems_visible_to(user).aggregate(
        draft=Count("pk", filter=Q(status=PostmortemStatus.DRAFT)),
        in_review=Count("pk", filter=Q(status=PostmortemStatus.IN_REVIEW)),
        published=Count("pk", filter=Q(status=PostmortemStatus.PUBLISHED)),
        late=Count("pk", filter=late),
    )


def postmortem_for_detail(*, pk: int) -> QuerySet[Postmortem]:
    return Postmortem.objects.filter(pk=pk).select_related(
        "incident", "incident__severity", "owner", "published_by", "template"
    )


def postmortem_sections(*, postmortem: Postmortem) -> list[PostmortemSection]:
    open_comments = Prefetch(
        "comments",
        queryset=ReviewComment.objects.select_related("author").order_by("created_at", "pk"),
    )
    return list(postmortem.sections.select_related("updated_by").prefetch_related(open_comments))


def postmortem_earlier_pdfs(*, postmortem: Postmortem) -> list:
    """The newest ready PDF of each earlier revision, newest revision first."""
    current = f"r{postmortem.revision_number}."
    newest: dict[str, object] = {}
    exports = postmortem.exports.filter(state=ExportState.READY).exclude(
        content_key__startswith=current
    )
    for export in exports.defer("pdf").order_by("-requested_at", "-pk"):
        revision = export.content_key.split(".")[0]
        if revision not in newest:
            export.revision = revision.removeprefix("r")
            newest[revision] = export
    return sorted(newest.values(), key=lambda e: -int(e.revision))


def postmortem_action_items(*, postmortem: Postmortem) -> list[ActionItem]:
    return list(
        ActionItem.objects.filter(incident_id=postmortem.incident_id)
        .select_related("owner", "team")
        .order_by("priority", "due_date", "pk")
    )


def incident_timeline_choices(*, postmortem: Postmortem) -> list[TimelineEntry]:
    """The incident's whole timeline, oldest first, with `chosen` set on each entry."""
    chosen = set(
        postmortem.timeline_items.filter(source_entry__isnull=False).values_list(
            "source_entry_id", flat=True
        )
    )
    entries = list(
        TimelineEntry.objects.filter(incident_id=postmortem.incident_id)
        .select_related("actor")
        .order_by("occurred_at", "pk")
    )
    for entry in entries:
        entry.chosen = entry.pk in chosen
    return entries


# --- Action items --------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionItemFilters:
    team: int | None = None
    owner: int | None = None
    status: str = ACTIVE  # open or in progress; "" = all; else one status
    priority: int | None = None
    service: int | None = None
    item_type: str = ""
    overdue: bool = False
    due_soon: bool = False
    query: str = ""


def _filtered_items(
    *, user, filters: ActionItemFilters, today: dt.date, skip: tuple[str, ...] = ()
) -> QuerySet[ActionItem]:
    queryset = action_items_visible_to(user)
    if filters.team and "team" not in skip:
        queryset = queryset.filter(team_id=filters.team)
    if filters.owner:
        queryset = queryset.filter(owner_id=filters.owner)
    if "status" not in skip:
        if filters.status == ACTIVE:
            queryset = queryset.filter(status__in=OPEN_ITEM_STATUSES)
        elif filters.status:
            queryset = queryset.filter(status=filters.status)
    if filters.priority:
        queryset = queryset.filter(priority=filters.priority)
    if filters.item_type:
        queryset = queryset.filter(item_type=filters.item_type)
    if filters.service:
        queryset = queryset.filter(incident__in=_incidents_with_service(filters.service))
    if filters.overdue:
        queryset = queryset.filter(status__in=OPEN_ITEM_STATUSES, due_date__lt=today)
    if filters.due_soon:
        queryset = queryset.filter(
            status__in=OPEN_ITEM_STATUSES,
            due_date__gte=today,
            due_date__lte=today + dt.timedelta(days=due_soon_days()),
        )
    if filters.query:
        term = filters.query.strip()
        match = Q(title__icontains=term)
        reference = term.upper().removeprefix("AI-")
        if reference.isdigit():
            match |= Q(pk=int(reference))
        queryset = queryset.filter(match)
    return queryset


def _incidents_with_service(service_id: int):
    from incidents.models import Incident

    return Incident.objects.filter(services__id=service_id).values("pk")


def action_item_dashboard(
    *, user, filters: ActionItemFilters | None = None, today: dt.date | None = None
) -> QuerySet[ActionItem]:
    filters = filters or ActionItemFilters()
    today = today or timezone.localdate()
    return (
        _filtered_items(user=user, filters=filters, today=today)
        .select_related("owner", "team", "incident", "incident__severity", "postmortem")
        .order_by("due_date", "priority", "pk")
    )


@dataclass
class TeamSummary:
    team_id: int | None
    name: str
    total: int
    open: int
    overdue: int
    due_soon: int
    done: int
    wont_do: int

    @property
    def completion_rate(self) -> float | None:
        """Done out of everything that is not "won't do"; None when there is nothing."""
        relevant = self.total - self.wont_do
        return self.done / relevant if relevant else None

    @property
    def completion_percent(self) -> int:
        return round((self.completion_rate or 0) * 100)


def action_item_team_summary(
    *, user, filters: ActionItemFilters | None = None, today: dt.date | None = None
) -> list[TeamSummary]:
    """Counts and completion per team, in one grouped query. The status filter is not
    applied (a completion rate over open items alone would be meaningless)."""
    filters = filters or ActionItemFilters()
    today = today or timezone.localdate()
    open_q = Q(status__in=OPEN_ITEM_STATUSES)
    soon_end = today + dt.timedelta(days=due_soon_days())
    rows = (
        _filtered_items(user=user, filters=filters, today=today, skip=("status",))
        .order_by()
        .values("team_id", "team__name")
        .annotate(
            total=Count("pk"),
            open=Count("pk", filter=open_q),
            overdue=Count("pk", filter=open_q & Q(due_date__lt=today)),
            due_soon=Count("pk", filter=open_q & Q(due_date__gte=today, due_date__lte=soon_end)),
            done=Count("pk", filter=Q(status=ActionItemStatus.DONE)),
            wont_do=Count("pk", filter=Q(status=ActionItemStatus.WONT_DO)),
        )
    )
    summaries = [
        TeamSummary(
            team_id=r["team_id"],
            name=r["team__name"] or "No team",
            total=r["total"],
            open=r["open"],
            overdue=r["overdue"],
            due_soon=r["due_soon"],
            done=r["done"],
            wont_do=r["wont_do"],
        )
        for r in rows
    ]
    summaries.sort(key=lambda s: (s.team_id is None, s.name.lower()))
    return summaries


def summary_total(summaries: list[TeamSummary]) -> TeamSummary:
    return TeamSummary(
        team_id=None,
        name="All teams",
        total=sum(s.total for s in summaries),
        open=sum(s.open for s in summaries),
        overdue=sum(s.overdue for s in summaries),
        due_soon=sum(s.due_soon for s in summaries),
        done=sum(s.done for s in summaries),
        wont_do=sum(s.wont_do for s in summaries),
    )


def action_item_events(*, item: ActionItem):
    return list(item.events.select_related("actor")[:100])
