"""Reads, with the joins each page needs so query counts stay flat as rows grow."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from incidents.models import (
    OPEN_STATUSES,
    Incident,
    IncidentRole,
    RoleAssignment,
    TimelineEntry,
    TimelineKind,
)
from incidents.permissions import incidents_visible_to

log = logging.getLogger(__name__)

_ACTIVE_COMMANDERS = Prefetch(
    "roles",
    queryset=RoleAssignment.objects.filter(
        role=IncidentRole.COMMANDER, relieved_at__isnull=True
    ).select_related("user"),
    to_attr="active_commanders",
)


@dataclass(frozen=True)
class IncidentFilters:
    status: str = ""
    severity: int | None = None
    service: int | None = None
    team: int | None = None
    mine: bool = False
    query: str = ""


def incident_list_for_user(*, user, filters: IncidentFilters | None = None) -> QuerySet[Incident]:
    filters = filters or IncidentFilters()
    queryset = incidents_visible_to(user)
    if filters.status == "open":
        queryset = queryset.filter(status__in=OPEN_STATUSES)
    elif filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.severity:
        queryset = queryset.filter(severity_id=filters.severity)
    if filters.service:
        queryset = queryset.filter(services__id=filters.service)
    if filters.team:
        queryset = queryset.filter(services__team_id=filters.team)
    if filters.mine:
        queryset = queryset.filter(roles__user=user, roles__relieved_at__isnull=True)
    if filters.query:
        term = filters.query.strip()
        by_title = Q(title__icontains=term)
        reference = term.upper().removeprefix("INC-")
        if reference.isdigit():
            by_title |= Q(pk=int(reference))
        queryset = queryset.filter(by_title)
    return (
        queryset.distinct()
        .select_related("severity")
        .prefetch_related("services", _ACTIVE_COMMANDERS)
        .order_by("-declared_at", "-pk")
    )


def incident_open_for_user(*, user) -> QuerySet[Incident]:
    return incident_list_for_user(user=user, filters=IncidentFilters(status="open")).order_by(
        "severity__level", "-declared_at"
    )


def incident_for_detail(*, pk: int) -> QuerySet[Incident]:
    return Incident.objects.filter(pk=pk).select_related("severity", "incident_type", "declared_by")


@dataclass(frozen=True)
class TimelinePage:
    entries: list[TimelineEntry]
    older_cursor: int | None  # id to pass as ?before= for the next older page
    newest_id: int


def timeline_page(
    *, incident: Incident, kind: str = "", before: int | None = None, size: int | None = None
) -> TimelinePage:
    """Newest first, one page at a time, so a 2,000-entry incident renders like a 20-entry one."""
    size = size or settings.TIMELINE_PAGE_SIZE
    if not kind and not before:
        # The newest page of everything: its first row is the cursor, read in the same
        # query, so nothing can slip in between.
        rows = list(incident.timeline.select_related("actor").order_by("-pk")[: size + 1])
        older = rows[size - 1].pk if len(rows) > size else None
        newest = rows[0].pk if rows else 0
        return TimelinePage(entries=rows[:size], older_cursor=older, newest_id=newest)
    # Otherwise the cursor is read first and bounds the page: an entry committed in between
    # shows up in the next poll instead of being skipped forever. (Ids grow in commit order
    # per incident, because every insert holds the incident's row lock.)
    newest = timeline_newest_id(incident=incident)
    queryset = incident.timeline.filter(pk__lte=newest).select_related("actor")
    if kind in TimelineKind.values:
        queryset = queryset.filter(kind=kind)
    if before:
        queryset = queryset.filter(pk__lt=before)
    rows = list(queryset.order_by("-pk")[: size + 1])
    older = rows[size - 1].pk if len(rows) > size else None
    rows = rows[:size]
    return TimelinePage(entries=rows, older_cursor=older, newest_id=newest)


def timeline_newest_id(*, incident: Incident) -> int:
    return incident.timeline.order_by("-pk").values_list("pk", flat=True).first() or 0


def timeline_entries_between(
    *, incident: Incident, after: int, upto: int, kind: str = ""
) -> list[TimelineEntry]:
    queryset = incident.timeline.filter(pk__gt=after, pk__lte=upto).select_related("actor")
    if kind in TimelineKind.values:
        queryset = queryset.filter(kind=kind)
    return list(queryset.order_by("-pk")[:500])


def timeline_repinned_since(
    *, incident: Incident, revision: int, upto: int, kind: str = ""
) -> list[TimelineEntry]:
    """Entries a watcher already has whose pin changed after the revision they last saw."""
    queryset = incident.timeline.filter(pin_revision__gt=revision, pk__lte=upto).select_related(
        "actor"
    )
    if kind in TimelineKind.values:
        queryset = queryset.filter(kind=kind)
    return list(queryset[:200])


def timeline_pinned(*, incident: Incident) -> list[TimelineEntry]:
    return list(incident.timeline.filter(pinned=True).select_related("actor").order_by("pk"))


_ROLE_ORDER = {role: index for index, role in enumerate(IncidentRole.values)}


def incident_roles_active(*, incident: Incident) -> list[RoleAssignment]:
    """Current role holders, commander first, then in the order roles are listed."""
    rows = incident.roles.filter(relieved_at__isnull=True).select_related("user")
    return sorted(rows, key=lambda a: (_ROLE_ORDER[a.role], a.assigned_at, a.pk))


def incident_tasks(*, incident: Incident):
    return list(incident.tasks.select_related("owner", "done_by"))


def incident_latest_updates(*, incident: Incident, limit: int = 3):
    return list(incident.stakeholder_updates.select_related("author")[:limit])


def update_due_state(incident: Incident) -> dict | None:
    """What the 'next update due' badge says, computed at render time."""
    if incident.next_update_due_at is None or not incident.is_open:
        return None
    seconds = (incident.next_update_due_at - timezone.now()).total_seconds()
    minutes = int(abs(seconds) // 60)
    return {"due_at": incident.next_update_due_at, "overdue": seconds < 0, "minutes": minutes}


POLL_STATE_TTL = 5


def _poll_state_key(incident_id: int) -> str:
    return f"incident-poll:{incident_id}"


def incident_poll_state(*, pk: int) -> tuple[bool, int] | None:
    """(restricted, revision) for the idle poll, from the cache when it can be.

    Services drop the key when a change commits. A poll racing that commit can put back
    the old revision for at most POLL_STATE_TTL seconds; the only effect is that watchers
    see the change a few seconds later. Anything beyond "nothing changed" is always read
    and permission-checked from the database.
    """
    key = _poll_state_key(pk)
    try:
        state = cache.get(key)
    except Exception as exc:  # an incident tool keeps working when Redis is the incident
        log.warning("Poll state cache unavailable: %s", exc)
        state = None
    if state is None:
        row = Incident.objects.filter(pk=pk).values_list("restricted", "revision").first()
        if row is None:
            return None
        state = (bool(row[0]), int(row[1]))
        try:
            cache.set(key, state, POLL_STATE_TTL)
        except Exception as exc:
            log.warning("Poll state cache unavailable: %s", exc)
    return state


def incident_poll_state_forget(incident_id: int) -> None:
    try:
        cache.delete(_poll_state_key(incident_id))
    except Exception as exc:  # expires within POLL_STATE_TTL anyway
        log.warning("Could not drop cached poll state: %s", exc)


def incident_escalations(*, incident: Incident) -> list:
    """Escalations paging people for this incident, with who was paged and how it went."""
    from oncall.models import Escalation, Notification, Page

    return list(
        Escalation.objects.filter(subject_key=f"incident:{incident.pk}")
        .select_related("acknowledged_by")
        .prefetch_related(
            Prefetch(
                "pages",
                queryset=Page.objects.select_related("user").prefetch_related(
                    Prefetch(
                        "notifications",
                        queryset=Notification.objects.select_related("contact_method"),
                    )
                ),
            )
        )
        .order_by("-started_at")[:10]
    )


SEVERITIES_KEY = "severities:v1"


def severities_all() -> list:
    """The severity ladder, from the cache: it is on every incident page and changes only
    when an admin edits it (signals.py forgets it then)."""
    from incidents.models import Severity

    try:
        cached = cache.get(SEVERITIES_KEY)
    except Exception as exc:
        log.warning("Severity cache unavailable: %s", exc)
        cached = None
    if cached is None:
        cached = list(Severity.objects.order_by("level"))
        try:
            cache.set(SEVERITIES_KEY, cached, 3600)
        except Exception as exc:
            log.warning("Severity cache unavailable: %s", exc)
    return cached


def severities_forget() -> None:
    try:
        cache.delete(SEVERITIES_KEY)
    except Exception as exc:
        log.warning("Could not drop cached severities: %s", exc)
