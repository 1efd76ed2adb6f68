"""Heartbeat monitors: writes and reads.

A job pings its secret URL every N minutes. A ping that does not come within the interval
plus the grace raises an alert on the service through the ordinary ingest path (so it is
deduplicated, routed and paged like any other alert); the next ping resolves it.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from incidents.alerting.parsers import RESOLVE, TRIGGER, AlertEvent
from incidents.alerting.services import alerts_ingest, integration_create, integration_rotate
from incidents.models import (
    HeartbeatMonitor,
    HeartbeatState,
    Integration,
    IntegrationKind,
    Service,
)

SOURCE = "firebreak heartbeat"


def _dedup_key(monitor: HeartbeatMonitor) -> str:
    return f"heartbeat-{monitor.pk}"


# --- Reads ------------------------------------------------------------------------------


def heartbeats_for_service(*, service: Service) -> list[HeartbeatMonitor]:
    return list(
        HeartbeatMonitor.objects.filter(integration__service=service)
        .select_related("integration")
        .order_by("integration__name", "pk")
    )


def heartbeats_overdue(*, now: datetime) -> QuerySet[HeartbeatMonitor]:
    """Monitors whose ping is late: walks the (state, due_at) index."""
    return HeartbeatMonitor.objects.filter(state=HeartbeatState.UP, due_at__lte=now)


# --- Writes -----------------------------------------------------------------------------


def heartbeat_create(
    *,
    service: Service,
    name: str,
    interval_minutes: int,
    grace_minutes: int = 5,
    severity: str = "error",
) -> tuple[HeartbeatMonitor, str]:
    """Returns the monitor and its token: the only time the ping URL is known.

    A new monitor waits for its first ping before it can be missed, so creating one before
    the job is deployed raises nothing.
    """
    with transaction.atomic():
        integration, token = integration_create(
            service=service, kind=IntegrationKind.HEARTBEAT, name=name
        )
        monitor = HeartbeatMonitor.objects.create(
            integration=integration,
            interval_minutes=interval_minutes,
            grace_minutes=grace_minutes,
            severity=severity,
        )
    return monitor, token


def heartbeat_ping(*, integration: Integration, now: datetime | None = None) -> str | None:
    """Record a ping; resolve the missed-ping alert if there was one.

    Returns the state before the ping, or None when the integration has no monitor.
    A ping to a paused monitor resumes it: the job is evidently running again.
    """
    now = now or timezone.now()
    with transaction.atomic():
        monitor = (
            HeartbeatMonitor.objects.select_for_update()
            .filter(integration=integration)
            .select_related("integration__service")
            .first()
        )
        if monitor is None:
            return None
        before = monitor.state
        monitor.last_ping_at = now
        monitor.due_at = now + monitor.allowance
        monitor.state = HeartbeatState.UP
        monitor.down_since = None
        monitor.save(update_fields=["last_ping_at", "due_at", "state", "down_since"])
        if before == HeartbeatState.DOWN:
            alerts_ingest(
                integration=monitor.integration,
                events=[AlertEvent(action=RESOLVE, dedup_key=_dedup_key(monitor))],
            )
    return before


def heartbeat_mark_down(*, monitor_id: int, now: datetime | None = None) -> bool:
    """Raise the missed-ping alert for one overdue monitor, exactly once.

    The conditional UPDATE is the claim: of two beats (or a beat and a re-delivered
    message) only the one that moves the row from up to down raises the alert, in the
    same transaction, so a failure to ingest leaves the monitor up for the next sweep.
    A ping that lands first moves `due_at` forward and the UPDATE matches nothing.
    """
    now = now or timezone.now()
    with transaction.atomic():
        claimed = HeartbeatMonitor.objects.filter(
            pk=monitor_id, state=HeartbeatState.UP, due_at__lte=now
        ).update(state=HeartbeatState.DOWN, down_since=now)
        if not claimed:
            return False
        monitor = HeartbeatMonitor.objects.select_related("integration__service").get(pk=monitor_id)
        alerts_ingest(integration=monitor.integration, events=[_missed_ping_event(monitor, now)])
    return True


def _missed_ping_event(monitor: HeartbeatMonitor, now: datetime) -> AlertEvent:
    name = monitor.integration.name
    last = monitor.last_ping_at
    description = (
        f"{name} should ping every {monitor.interval_minutes} min "
        f"(grace {monitor.grace_minutes} min). "
        + (f"The last ping was at {last:%Y-%m-%d %H:%M} UTC." if last else "It never pinged.")
    )
    return AlertEvent(
        action=TRIGGER,
        dedup_key=_dedup_key(monitor),
        title=f"Missed heartbeat: {name}"[:1024],
        severity=monitor.severity,
        source=SOURCE,
        labels={
            "alertname": "MissedHeartbeat",
            "heartbeat": name,
            "service": monitor.integration.service.slug,
        },
        annotations={"summary": f"Missed heartbeat: {name}", "description": description},
        payload={
            "heartbeat": name,
            "interval_minutes": monitor.interval_minutes,
            "grace_minutes": monitor.grace_minutes,
            "last_ping_at": last.isoformat() if last else None,
            "due_at": monitor.due_at.isoformat() if monitor.due_at else None,
            "detected_at": now.isoformat(),
        },
    )


def heartbeat_pause(*, monitor: HeartbeatMonitor) -> None:
    """Stop watching (a job switched off on purpose); its open alert, if any, resolves."""
    with transaction.atomic():
        monitor = (
            HeartbeatMonitor.objects.select_for_update()
            .select_related("integration")
            .get(pk=monitor.pk)
        )
        was_down = monitor.state == HeartbeatState.DOWN
        monitor.state = HeartbeatState.PAUSED
        monitor.due_at = None
        monitor.down_since = None
        monitor.save(update_fields=["state", "due_at", "down_since"])
        if was_down:
            alerts_ingest(
                integration=monitor.integration,
                events=[AlertEvent(action=RESOLVE, dedup_key=_dedup_key(monitor))],
            )


def heartbeat_resume(*, monitor: HeartbeatMonitor) -> None:
    """Watch again from the next ping (as a new monitor would)."""
    HeartbeatMonitor.objects.filter(pk=monitor.pk, state=HeartbeatState.PAUSED).update(
        state=HeartbeatState.NEW, due_at=None
    )


def heartbeat_delete(*, monitor: HeartbeatMonitor) -> None:
    """Remove a monitor. Its alerts are evidence on incidents, so an integration that has
    raised any is kept (with a fresh secret nobody knows, so the old URL stops working);
    one that never raised anything goes entirely."""
    heartbeat_pause(monitor=monitor)  # resolves an open alert first
    with transaction.atomic():
        integration = Integration.objects.select_for_update(no_key=True).get(
            pk=monitor.integration_id
        )
        HeartbeatMonitor.objects.filter(pk=monitor.pk).delete()
        if integration.alerts.exists():
            integration_rotate(integration=integration)
            integration.name = f"{integration.name} (deleted heartbeat)"[:100]
            integration.save(update_fields=["name"])
        else:
            integration.delete()
