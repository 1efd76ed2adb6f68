"""Scheduled maintenance: planned windows that start and complete on time by themselves.

`maintenance_tick` (from the `status_tick` beat task, every STATUS_TICK_SECONDS) sends the
advance notice, starts and completes whatever is due. Each transition is a conditional
UPDATE on `state` (and `notice_sent_at`), so two beats, or a beat and a slow worker, never
start, complete or announce a window twice.

Components during a window — the rule
-------------------------------------
* At start, each affected component that is operational goes "under maintenance"; its
  status before is kept in `statuses_before`. A component that is already degraded or in
  an outage keeps that status: an incident's truth is never hidden behind "maintenance".
* At completion, a component still "under maintenance" goes back to the status it had
  before the window. One whose status somebody changed during the window (an incident
  set it to "major outage", say) keeps that newer status: the later, deliberate decision
  wins over the snapshot. A component that another window still in progress also covers
  stays under maintenance until that one completes.
* Cancelling is possible only before the start.

Subscribers (of the page, or of an affected component) are told `notice_minutes` before
the start (default STATUS_MAINTENANCE_NOTICE_MINUTES, at most a day), at the start, at the
completion, and when a window they were told about is cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from incidents.models import (
    Component,
    ComponentStatus,
    ScheduledMaintenance,
    StatusEvent,
    StatusPage,
)
from incidents.statuspages.signals import status_page_invalidate

log = logging.getLogger(__name__)

State = ScheduledMaintenance.State
TITLE_MAX = 200
MESSAGE_MAX = 5000
LONGEST_WINDOW = timedelta(days=14)
# Far enough for any real plan; also keeps a typo (year 9999, shifted into UTC) from being
# stored as a time that can never be read back, which would break the page showing it.
LONGEST_LEAD = timedelta(days=366)
NOTICE_MAX_MINUTES = 24 * 60


class MaintenanceRefused(Exception):
    """A maintenance change that cannot be made; the message says why, for a person."""


@dataclass(frozen=True)
class PageMaintenances:
    """What a status page shows: windows in progress now, then those still to come.

    Each item is a ScheduledMaintenance with `components` prefetched; use `.title`,
    `.message` (plain text), `.starts_at`, `.ends_at`, `.state`, `.get_state_display()`
    and `.components.all()`.
    """

    in_progress: list = field(default_factory=list)
    upcoming: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.in_progress or self.upcoming)


def maintenances_for_page(*, page, now: datetime | None = None) -> PageMaintenances:
    """Maintenance in progress and upcoming for `page`, soonest first (two queries).

    "Upcoming" is every scheduled window that has not ended; one whose start has passed
    but that the beat has not started yet is still listed (it starts within seconds).
    """
    now = now or timezone.now()
    rows = list(
        ScheduledMaintenance.objects.filter(
            page=page, state__in=[State.SCHEDULED, State.IN_PROGRESS], ends_at__gt=now
        )
        .order_by("starts_at", "pk")
        .prefetch_related(
            Prefetch("components", queryset=Component.objects.order_by("order", "name"))
        )
    )
    return PageMaintenances(
        in_progress=[m for m in rows if m.state == State.IN_PROGRESS],
        upcoming=[m for m in rows if m.state == State.SCHEDULED],
    )


def maintenances_for_manager(*, page: StatusPage, limit: int = 50) -> list[ScheduledMaintenance]:
    return list(
        ScheduledMaintenance.objects.filter(page=page)
        .select_related("created_by")
        .prefetch_related("components")
        .order_by("-starts_at", "-pk")[:limit]
    )


def _invalidate(page: StatusPage) -> None:
    transaction.on_commit(lambda: status_page_invalidate(page=page))


def maintenance_schedule(
    *,
    page: StatusPage,
    title: str,
    message: str,
    components: Iterable[Component],
    starts_at: datetime,
    ends_at: datetime,
    actor,
    notice_minutes: int | None = None,
    now: datetime | None = None,
) -> ScheduledMaintenance:
    now = now or timezone.now()
    title = " ".join((title or "").split())
    message = (message or "").strip()
    components = list(components)
    if not title:
        raise MaintenanceRefused("Give the maintenance a title.")
    if len(title) > TITLE_MAX or len(message) > MESSAGE_MAX:
        raise MaintenanceRefused("Keep the title and message shorter.")
    if ends_at <= starts_at:
        raise MaintenanceRefused("The window must end after it starts.")
    if ends_at <= now:
        raise MaintenanceRefused("The window is already over.")
    if ends_at - starts_at > LONGEST_WINDOW:
        raise MaintenanceRefused("A window can last at most 14 days.")
    if starts_at > now + LONGEST_LEAD:
        raise MaintenanceRefused("Schedule maintenance at most a year ahead.")
    if any(c.page_id != page.pk for c in components):
        raise MaintenanceRefused("Choose components of this page.")
    if notice_minutes is None:
        notice_minutes = settings.STATUS_MAINTENANCE_NOTICE_MINUTES
    if not 0 <= notice_minutes <= NOTICE_MAX_MINUTES:
        raise MaintenanceRefused("Send the notice at most a day before the start.")
    with transaction.atomic():
        maintenance = ScheduledMaintenance.objects.create(
            page=page,
            title=title,
            message=message,
            starts_at=starts_at,
            ends_at=ends_at,
            notice_minutes=notice_minutes,
            created_by=actor,
        )
        maintenance.components.set(components)
        _invalidate(page)
    return maintenance


def maintenance_cancel(*, maintenance: ScheduledMaintenance, now: datetime | None = None) -> None:
    """Cancel a window before it starts. Subscribers who got the advance notice are told."""
    now = now or timezone.now()
    with transaction.atomic():
        cancelled = ScheduledMaintenance.objects.filter(
            pk=maintenance.pk, state=State.SCHEDULED
        ).update(state=State.CANCELLED, cancelled_at=now)
        if cancelled != 1:
            raise MaintenanceRefused("Only a window that has not started can be cancelled.")
        maintenance.refresh_from_db()
        if maintenance.notice_sent_at is not None:
            _announce(maintenance, StatusEvent.Kind.MAINTENANCE_CANCELLED)
        _invalidate(maintenance.page)


def _announce(maintenance: ScheduledMaintenance, kind: str) -> None:
    from incidents.statuspages.subscriptions import status_event_record

    components = list(maintenance.components.all())
    status_event_record(
        page=maintenance.page,
        kind=kind,
        key=f"{kind}:{maintenance.pk}",
        maintenance=maintenance,
        component_ids=[c.pk for c in components],
        data={
            "id": maintenance.pk,
            "title": maintenance.title,
            "message": maintenance.message,
            "starts_at": maintenance.starts_at.isoformat(),
            "ends_at": maintenance.ends_at.isoformat(),
            "state": maintenance.state,
            "components": [c.name for c in components],
        },
    )


def maintenance_send_notice(*, maintenance_id: int, now: datetime | None = None) -> bool:
    """The advance notice, once; never after the window started."""
    now = now or timezone.now()
    with transaction.atomic():
        claimed = ScheduledMaintenance.objects.filter(
            pk=maintenance_id, state=State.SCHEDULED, notice_sent_at__isnull=True, starts_at__gt=now
        ).update(notice_sent_at=now)
        if claimed != 1:
            return False
        maintenance = ScheduledMaintenance.objects.select_related("page").get(pk=maintenance_id)
        _announce(maintenance, StatusEvent.Kind.MAINTENANCE_SCHEDULED)
    return True


def maintenance_start(*, maintenance_id: int, now: datetime | None = None) -> bool:
    """Start a due window: affected operational components go under maintenance."""
    from incidents.statuspages.services import component_status_set
    from incidents.statuspages.subscriptions import maintenance_moves_components

    now = now or timezone.now()
    with maintenance_moves_components(), transaction.atomic():
        claimed = ScheduledMaintenance.objects.filter(
            pk=maintenance_id, state=State.SCHEDULED, starts_at__lte=now
        ).update(state=State.IN_PROGRESS, started_at=now)
        if claimed != 1:
            return False
        maintenance = ScheduledMaintenance.objects.select_related("page").get(pk=maintenance_id)
        before = {}
        for component in maintenance.components.order_by("pk"):
            before[str(component.pk)] = component.status
            if component.status == ComponentStatus.OPERATIONAL:
                # `expected`: an outage set since the read above stands (see the rule).
                component_status_set(
                    component=component,
                    status=ComponentStatus.UNDER_MAINTENANCE,
                    actor=None,
                    expected=ComponentStatus.OPERATIONAL,
                )
        maintenance.statuses_before = before
        maintenance.save(update_fields=["statuses_before"])
        _announce(maintenance, StatusEvent.Kind.MAINTENANCE_STARTED)
        _invalidate(maintenance.page)
    log.info("Maintenance %s started", maintenance_id)
    return True


def maintenance_complete(*, maintenance_id: int, now: datetime | None = None) -> bool:
    """Complete a window whose end has come (see the module docstring for the rule)."""
    from incidents.statuspages.services import component_status_set
    from incidents.statuspages.subscriptions import maintenance_moves_components

    now = now or timezone.now()
    with maintenance_moves_components(), transaction.atomic():
        claimed = ScheduledMaintenance.objects.filter(
            pk=maintenance_id, state=State.IN_PROGRESS, ends_at__lte=now
        ).update(state=State.COMPLETED, completed_at=now)
        if claimed != 1:
            return False
        maintenance = ScheduledMaintenance.objects.select_related("page").get(pk=maintenance_id)
        still_covered = set(
            ScheduledMaintenance.objects.filter(
                state=State.IN_PROGRESS, components__in=maintenance.components.all()
            )
            .exclude(pk=maintenance.pk)
            .values_list("components", flat=True)
        )
        for component in maintenance.components.order_by("pk"):
            if component.status != ComponentStatus.UNDER_MAINTENANCE:
                continue  # changed during the window: the newer status stands
            if component.pk in still_covered:
                continue
            previous = maintenance.statuses_before.get(str(component.pk))
            if previous in (None, ComponentStatus.UNDER_MAINTENANCE):
                previous = ComponentStatus.OPERATIONAL
            component_status_set(
                component=component,
                status=previous,
                actor=None,
                expected=ComponentStatus.UNDER_MAINTENANCE,
            )
        _announce(maintenance, StatusEvent.Kind.MAINTENANCE_COMPLETED)
        _invalidate(maintenance.page)
    log.info("Maintenance %s completed", maintenance_id)
    return True


def maintenance_tick(*, now: datetime | None = None) -> dict[str, int]:
    """Everything due now: notices, starts, completions. Safe to run concurrently.

    One window that fails (logged) does not hold back the others; it is tried again on
    the next tick, since nothing about it was committed.
    """
    now = now or timezone.now()
    counts = {"noticed": 0, "started": 0, "completed": 0, "failed": 0}

    def attempt(step, key: str, pk: int) -> None:
        try:
            counts[key] += step(maintenance_id=pk, now=now)
        except Exception:
            log.exception("Maintenance %s: %s failed", pk, step.__name__)
            counts["failed"] += 1

    # The notice period is per window (at most a day), so it is compared here over the
    # few scheduled windows starting within the next day.
    horizon = now + timedelta(minutes=NOTICE_MAX_MINUTES)
    for pk, starts_at, minutes in ScheduledMaintenance.objects.filter(
        state=State.SCHEDULED,
        notice_sent_at__isnull=True,
        starts_at__gt=now,
        starts_at__lte=horizon,
    ).values_list("pk", "starts_at", "notice_minutes"):
        if minutes and starts_at - timedelta(minutes=minutes) <= now:
            attempt(maintenance_send_notice, "noticed", pk)
    for pk in ScheduledMaintenance.objects.filter(
        state=State.SCHEDULED, starts_at__lte=now
    ).values_list("pk", flat=True)[:100]:
        attempt(maintenance_start, "started", pk)
    for pk in ScheduledMaintenance.objects.filter(
        state=State.IN_PROGRESS, ends_at__lte=now
    ).values_list("pk", flat=True)[:100]:
        attempt(maintenance_complete, "completed", pk)
    return counts
