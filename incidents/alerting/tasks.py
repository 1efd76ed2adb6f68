"""Thin Celery tasks for alerting: load by id, call a service, return.

Found by autodiscovery through incidents/tasks.py, which imports this module.
"""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from incidents.alerting.heartbeats import heartbeat_mark_down, heartbeats_overdue
from incidents.models import Alert, AlertStatus


@shared_task
def heartbeats_sweep() -> int:
    """Raise an alert for every monitor whose ping is overdue; returns how many.

    Idempotent: each monitor is claimed with a conditional UPDATE, so overlapping beats
    (or a second beat started by mistake) raise each missed ping once.
    """
    now = timezone.now()
    ids = list(heartbeats_overdue(now=now).values_list("pk", flat=True)[:1000])
    return sum(heartbeat_mark_down(monitor_id=pk, now=now) for pk in ids)


@shared_task
def alert_payloads_expire() -> int:
    """Clear the stored payload of alerts resolved more than ALERT_PAYLOAD_RETENTION_DAYS
    ago. The alert row (title, labels, times, incident) stays: it is part of an incident's
    record; the raw payload is only kept for as long as someone might debug with it."""
    cutoff = timezone.now() - timedelta(days=settings.ALERT_PAYLOAD_RETENTION_DAYS)
    return (
        Alert.objects.filter(status=AlertStatus.RESOLVED, resolved_at__lt=cutoff)
        .exclude(payload={})
        .update(payload={})
    )
