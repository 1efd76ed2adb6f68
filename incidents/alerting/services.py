"""Writes for integrations and alerts: ingest, deduplicate, route into incidents."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from incidents.alerting.parsers import ACKNOWLEDGE, RESOLVE, TRIGGER, AlertEvent
from incidents.models import (
    OPEN_STATUSES,
    Alert,
    AlertSeverity,
    AlertStatus,
    DetectionSource,
    Incident,
    Integration,
    IntegrationKind,
    Service,
    Severity,
    TimelineKind,
)
from incidents.services import _lock, incident_declare, timeline_record

# Alerts of these severities open (or join) an incident; the rest are recorded only.
PAGING_SEVERITIES = {AlertSeverity.CRITICAL: "SEV1", AlertSeverity.ERROR: "SEV2"}


def _window() -> timedelta:
    return timedelta(minutes=settings.ALERT_GROUPING_WINDOW_MINUTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def integration_for_token(token: str) -> Integration | None:
    """The integration whose secret this is, or None. Compared in constant time."""
    wanted = token_hash(token)
    integration = Integration.objects.select_related("service").filter(token_hash=wanted).first()
    if integration is None or not hmac.compare_digest(wanted, integration.token_hash):
        return None
    return integration


def integration_create(
    *, service: Service, kind: str, name: str = "", field_mapping: dict | None = None
) -> tuple[Integration, str]:
    """Returns the integration and its token: the only time the token is known."""
    token = secrets.token_urlsafe(24)  # 32 characters, the length of a PagerDuty routing key
    integration = Integration.objects.create(
        service=service,
        kind=kind,
        name=name.strip() or IntegrationKind(kind).label,
        token_hash=token_hash(token),
        field_mapping=field_mapping or {},
    )
    return integration, token


def integration_rotate(*, integration: Integration) -> str:
    """A new secret; the old URL stops working at once."""
    token = secrets.token_urlsafe(24)
    with transaction.atomic():
        integration = Integration.objects.select_for_update().get(pk=integration.pk)
        integration.token_hash = token_hash(token)
        integration.rotated_at = timezone.now()
        integration.save(update_fields=["token_hash", "rotated_at"])
    return token


@dataclass
class IngestResult:
    alert: Alert | None
    created: bool
    dedup_key: str


def _open_alert(integration: Integration, key: str) -> Alert | None:
    return (
        Alert.objects.select_for_update()
        .filter(integration=integration, dedup_key=key)
        .exclude(status=AlertStatus.RESOLVED)
        .first()
    )


def alerts_ingest(*, integration: Integration, events: list[AlertEvent]) -> list[IngestResult]:
    """Apply a request's events in one transaction: all of them or none."""
    with transaction.atomic():
        return [_ingest_one(integration, event) for event in events]


def _touch_open(integration: Integration, event: AlertEvent, now) -> int:
    """Count a repeat of an open alert in one UPDATE; returns how many rows it changed."""
    fields: dict = {"times_seen": F("times_seen") + 1, "last_seen": now, "payload": event.payload}
    if event.title:
        fields["title"] = event.title
    if event.labels:
        fields["labels"] = event.labels
    if event.annotations:
        fields["annotations"] = event.annotations
    return (
        Alert.objects.filter(integration=integration, dedup_key=event.dedup_key)
        .exclude(status=AlertStatus.RESOLVED)
        .update(**fields)
    )


def _ingest_one(integration: Integration, event: AlertEvent) -> IngestResult:
    now = timezone.now()
    if event.action == TRIGGER:
        # The common case in a storm is a repeat: one statement, no read first.
        if _touch_open(integration, event, now):
            return IngestResult(None, False, event.dedup_key)
        try:
            # A savepoint, so losing the race to a concurrent trigger with the same key
            # (the partial unique index) leaves the request's transaction usable.
            with transaction.atomic():
                alert = Alert.objects.create(
                    integration=integration,
                    service=integration.service,
                    dedup_key=event.dedup_key,
                    group_key=event.group_key,
                    title=event.title,
                    severity=event.severity,
                    source=event.source,
                    labels=event.labels,
                    annotations=event.annotations,
                    payload=event.payload,
                    first_seen=now,
                    last_seen=now,
                )
        except IntegrityError:
            # The winner committed its row: count this one as a repeat (or, if it was
            # resolved in between, start again).
            if _touch_open(integration, event, now):
                return IngestResult(None, False, event.dedup_key)
            return _ingest_one(integration, event)
        _route(alert)
        return IngestResult(alert, True, event.dedup_key)

    alert = _open_alert(integration, event.dedup_key)
    if alert is None:  # acknowledge or resolve of something we never saw open: no change
        return IngestResult(None, False, event.dedup_key)
    if event.action == ACKNOWLEDGE:
        if alert.status == AlertStatus.FIRING:
            alert.status = AlertStatus.ACKNOWLEDGED
            alert.last_seen = now
            alert.save(update_fields=["status", "last_seen"])
    elif event.action == RESOLVE:
        alert.status = AlertStatus.RESOLVED
        alert.resolved_at = now
        alert.last_seen = now
        alert.save(update_fields=["status", "resolved_at", "last_seen"])
        if alert.incident_id:
            _record_resolution(alert)
    return IngestResult(alert, False, event.dedup_key)


def _route(alert: Alert) -> None:
    """Open or join an incident for a new alert that should wake someone up."""
    sev_name = PAGING_SEVERITIES.get(alert.severity)
    if sev_name is None:
        return
    # SEV1/SEV2 by name; if an administrator renamed them, the closest level that exists.
    severity = (
        Severity.objects.filter(name=sev_name).first()
        or Severity.objects.filter(level__gte=1 if sev_name == "SEV1" else 2).first()
        or Severity.objects.order_by("-level").first()
    )
    if severity is None:  # no severities configured: the alert is recorded only
        return
    # One router per service at a time, so two alerts arriving together open one incident.
    Service.objects.select_for_update().filter(pk=alert.service_id).first()
    incident = _incident_to_join(alert)
    if incident is None:
        incident = incident_declare(
            declared_by=None,
            title=alert.title[:200] or "Alert",
            severity=severity,
            detection_source=DetectionSource.ALERT,
            services=[alert.service],
            summary=_summary(alert),
            page=True,
        )
        verb = "opened this incident"
    else:
        verb = "joined this incident"
    alert.incident = incident
    alert.save(update_fields=["incident"])
    incident = _lock(incident)
    timeline_record(
        incident=incident,
        kind=TimelineKind.ALERT,
        actor=None,
        body=f"{alert.get_severity_display()} alert fired and {verb}: {alert.title}",
        data={"alert": alert.pk, "event": "fired", "severity": alert.severity},
    )


def _summary(alert: Alert) -> str:
    lines = [f"Opened by alert from {alert.integration.name} on {alert.service.name}."]
    description = alert.annotations.get("description") if alert.annotations else None
    if isinstance(description, str):
        lines.append(description[:2000])
    return "\n\n".join(lines)


def _incident_to_join(alert: Alert) -> Incident | None:
    open_alerts = Alert.objects.filter(incident__status__in=OPEN_STATUSES).exclude(pk=alert.pk)
    if alert.group_key:
        same_group = (
            open_alerts.filter(integration=alert.integration_id, group_key=alert.group_key)
            .exclude(status=AlertStatus.RESOLVED)
            .order_by("-last_seen")
            .first()
        )
        if same_group is not None:
            return same_group.incident
    recent = (
        open_alerts.filter(service=alert.service_id, last_seen__gte=alert.first_seen - _window())
        .order_by("-last_seen")
        .first()
    )
    return recent.incident if recent is not None else None


def _record_resolution(alert: Alert) -> None:
    incident = _lock(alert.incident)
    timeline_record(
        incident=incident,
        kind=TimelineKind.ALERT,
        actor=None,
        body=f"Alert resolved: {alert.title}",
        data={"alert": alert.pk, "event": "resolved"},
    )
    remaining = incident.alerts.exclude(status=AlertStatus.RESOLVED).count()
    if remaining == 0:
        total = incident.alerts.count()
        timeline_record(
            incident=incident,
            kind=TimelineKind.ALERT,
            actor=None,
            body=(
                "All alerts on this incident have resolved."
                if total != 1
                else "The alert on this incident has resolved."
            ),
            data={"event": "all_resolved", "alerts": total},
        )
