"""Reads for status pages, in a fixed number of queries however many components or updates.

Only `StatusPageIncident` (the public title) and `StatusUpdate` rows published to the page
are read about incidents: never the incident's own title, severity, services or timeline.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.core.paginator import Paginator
from django.db.models import F

from incidents.models import Incident
from incidents.statuspages.models import (
    COMPONENT_STATUS_RANK,
    Component,
    ComponentGroup,
    ComponentStatus,
    ComponentStatusInterval,
    StatusPage,
    StatusPageIncident,
    StatusUpdate,
    StatusUpdateTemplate,
)

HISTORY_DAYS = 90
_OUTAGE_RANK = COMPONENT_STATUS_RANK[ComponentStatus.PARTIAL_OUTAGE]
HISTORY_PAGE_SIZE = 10
NO_DATA = "no_data"

# statuspage.io's indicator words, so tools that read those summaries read ours too.
_INDICATOR = {
    ComponentStatus.OPERATIONAL: ("none", "All systems operational"),
    ComponentStatus.UNDER_MAINTENANCE: ("maintenance", "Service under maintenance"),
    ComponentStatus.DEGRADED_PERFORMANCE: ("minor", "Degraded performance"),
    ComponentStatus.PARTIAL_OUTAGE: ("major", "Partial system outage"),
    ComponentStatus.MAJOR_OUTAGE: ("critical", "Major system outage"),
}


@dataclass
class Overall:
    status: str
    indicator: str
    description: str


@dataclass
class DaySummary:
    day: date
    status: str  # a ComponentStatus value, or NO_DATA before the component existed

    @property
    def label(self) -> str:
        if self.status == NO_DATA:
            text = "no data"
        elif self.status == ComponentStatus.OPERATIONAL:
            text = "no problems"
        else:
            text = ComponentStatus(self.status).label.lower()
        return f"{self.day.day} {self.day:%b %Y}: {text}"


@dataclass
class ComponentRow:
    component: Component
    days: list[DaySummary] = field(default_factory=list)
    uptime: float | None = None  # share of recorded time without a partial or major outage

    @property
    def problem_days(self) -> list[DaySummary]:
        return [d for d in self.days if d.status not in (ComponentStatus.OPERATIONAL, NO_DATA)]

    @property
    def uptime_text(self) -> str:
        if self.uptime is None:
            return ""
        percent = f"{self.uptime * 100:.2f}".rstrip("0").rstrip(".")
        return f"{percent}% without outage"


@dataclass
class GroupRows:
    group: ComponentGroup | None
    rows: list[ComponentRow]

    @property
    def worst(self) -> str:
        return worst_status(r.component.status for r in self.rows)

    @property
    def worst_label(self) -> str:
        return ComponentStatus(self.worst).label


@dataclass
class PublishedIncident:
    entry: StatusPageIncident
    updates: list[StatusUpdate]


def worst_status(statuses) -> str:
    return max(statuses, key=COMPONENT_STATUS_RANK.__getitem__, default=ComponentStatus.OPERATIONAL)


def overall_status(components) -> Overall:
    status = worst_status(c.status for c in components)
    indicator, description = _INDICATOR[status]
    return Overall(status=status, indicator=indicator, description=description)


def page_zone(page: StatusPage) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(page.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def page_components(*, page: StatusPage) -> list[Component]:
    """The page's components in display order: grouped ones by group, ungrouped last."""
    return list(
        page.components.select_related("group").order_by(
            F("group__order").asc(nulls_last=True), "group__name", "order", "name"
        )
    )


def component_days(
    *, components: list[Component], zone: zoneinfo.ZoneInfo, now: datetime, days: int = HISTORY_DAYS
) -> dict[int, ComponentRow]:
    """The worst status of each component on each of the last `days` days (in `zone`),
    computed from the recorded intervals in one query."""
    today = now.astimezone(zone).date()
    first_day = today - timedelta(days=days - 1)
    window_start = datetime.combine(first_day, time.min, tzinfo=zone)
    rows = {c.pk: ComponentRow(component=c) for c in components}
    intervals: dict[int, list[tuple[datetime, datetime, str]]] = {c.pk: [] for c in components}
    # The interval open at the window's start matters too: started before, ended after.
    for interval in (
        ComponentStatusInterval.objects.filter(component__in=components, started_at__lte=now)
        .exclude(ended_at__lt=window_start)
        .order_by("started_at", "pk")
    ):
        intervals[interval.component_id].append(
            (interval.started_at, interval.ended_at or now, interval.status)
        )
    day_starts = [
        datetime.combine(first_day + timedelta(d), time.min, tzinfo=zone) for d in range(days + 1)
    ]
    for component in components:
        spans = intervals[component.pk]
        created = component.created_at
        # Before its first recorded change a component was operational (since it was made).
        first_change = spans[0][0] if spans else now
        if created < first_change:
            spans = [(created, first_change, ComponentStatus.OPERATIONAL), *spans]
        summary: list[DaySummary] = []
        bad_seconds = 0.0
        recorded_seconds = 0.0
        for d in range(days):
            start, end = day_starts[d], min(day_starts[d + 1], now)
            worst = None
            for s_start, s_end, status in spans:
                if s_start < end and s_end > start:
                    overlap = (min(s_end, end) - max(s_start, start)).total_seconds()
                    recorded_seconds += overlap
                    if COMPONENT_STATUS_RANK[status] >= _OUTAGE_RANK:
                        bad_seconds += overlap
                    if (
                        worst is None
                        or COMPONENT_STATUS_RANK[status] > COMPONENT_STATUS_RANK[worst]
                    ):
                        worst = status
            summary.append(DaySummary(day=first_day + timedelta(d), status=worst or NO_DATA))
        rows[component.pk].days = summary
        rows[component.pk].uptime = 1 - bad_seconds / recorded_seconds if recorded_seconds else None
    return rows


def grouped_rows(components: list[Component], rows: dict[int, ComponentRow]) -> list[GroupRows]:
    groups: list[GroupRows] = []
    for component in components:
        if not groups or groups[-1].group != component.group:
            groups.append(GroupRows(group=component.group, rows=[]))
        groups[-1].rows.append(rows[component.pk])
    return groups


def _with_updates(page: StatusPage, entries: list[StatusPageIncident]) -> list[PublishedIncident]:
    """Each entry with the updates published *to this page*, newest first (one query)."""
    by_incident: dict[int, list[StatusUpdate]] = {e.incident_id: [] for e in entries}
    if entries:
        for update in StatusUpdate.objects.filter(
            pages=page, incident_id__in=list(by_incident)
        ).order_by("-published_at", "-pk"):
            by_incident[update.incident_id].append(update)
    return [PublishedIncident(entry=e, updates=by_incident[e.incident_id]) for e in entries]


def page_active_incidents(*, page: StatusPage) -> list[PublishedIncident]:
    entries = list(
        StatusPageIncident.objects.filter(page=page, resolved_at__isnull=True).order_by(
            "-first_published_at", "-pk"
        )
    )
    return _with_updates(page, entries)


def page_recent_resolved(
    *, page: StatusPage, now: datetime, days: int = 7
) -> list[PublishedIncident]:
    entries = list(
        StatusPageIncident.objects.filter(
            page=page, resolved_at__gte=now - timedelta(days=days)
        ).order_by("-resolved_at", "-pk")[:5]
    )
    return _with_updates(page, entries)


def page_history(*, page: StatusPage, number) -> tuple:
    """Past (resolved) incidents of the page, newest first, one page of them."""
    queryset = StatusPageIncident.objects.filter(page=page, resolved_at__isnull=False).order_by(
        "-resolved_at", "-pk"
    )
    paginator = Paginator(queryset, HISTORY_PAGE_SIZE)
    pager = paginator.get_page(number)
    return pager, _with_updates(page, list(pager.object_list))


def page_feed_updates(*, page: StatusPage, limit: int = 50) -> list[StatusUpdate]:
    """Updates published to this page, newest first, each with its public title on it."""
    updates = list(StatusUpdate.objects.filter(pages=page).order_by("-published_at", "-pk")[:limit])
    titles = dict(
        StatusPageIncident.objects.filter(
            page=page, incident_id__in={u.incident_id for u in updates}
        ).values_list("incident_id", "public_title")
    )
    for update in updates:
        update.public_title = titles.get(update.incident_id, "Incident")
    return updates


def page_last_changed(*, page: StatusPage, components: list[Component]) -> datetime:
    """When something shown on the page last changed (its Last-Modified)."""
    moments = [page.updated_at]
    moments += [c.status_changed_at for c in components if c.status_changed_at]
    latest = (
        StatusPageIncident.objects.filter(page=page)
        .order_by("-last_published_at")
        .values_list("last_published_at", flat=True)
        .first()
    )
    if latest:
        moments.append(latest)
    return max(moments)


def maintenances_for(*, page: StatusPage, now: datetime):
    """Maintenance in progress and upcoming (statussubs' selector): `.in_progress` and
    `.upcoming` lists, false when there is none."""
    from incidents.statuspages.maintenance import maintenances_for_page

    return maintenances_for_page(page=page, now=now)


# --- The incident page's panel --------------------------------------------------------


@dataclass
class IncidentPanel:
    pages: list[StatusPage]
    components: list[Component]
    linked_ids: set[int]
    entries: dict[int, StatusPageIncident]
    updates: list[StatusUpdate]
    templates: list[StatusUpdateTemplate]


def incident_status_panel(*, incident: Incident) -> IncidentPanel:
    pages = list(StatusPage.objects.all())
    components = list(
        Component.objects.select_related("page", "group").order_by(
            "page__order",
            "page__title",
            F("group__order").asc(nulls_last=True),
            "group__name",
            "order",
            "name",
        )
    )
    linked_ids = set(
        Component.services.through.objects.filter(
            service_id__in=incident.services.values("pk")
        ).values_list("component_id", flat=True)
    )
    entries = {
        e.page_id: e
        for e in StatusPageIncident.objects.filter(incident=incident).select_related("page")
    }
    updates = list(
        StatusUpdate.objects.filter(incident=incident)
        .select_related("author")
        .prefetch_related("pages")
        .order_by("-published_at", "-pk")[:5]
    )
    return IncidentPanel(
        pages=pages,
        components=components,
        linked_ids=linked_ids,
        entries=entries,
        updates=updates,
        templates=list(StatusUpdateTemplate.objects.all()),
    )
