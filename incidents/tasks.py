"""Thin Celery tasks: load by id, call a service, return. The database decides what is due."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

# Autodiscovery looks in <app>/tasks.py only; the alerting package's tasks live apart.
from incidents.alerting import tasks as alerting_tasks  # noqa: F401
from incidents.models import OPEN_STATUSES, Incident, StakeholderUpdateReminder
from incidents.notifications import stakeholder_update_reminder_email
from incidents.services import (
    REMINDER_CLAIM_TIMEOUT,
    stakeholder_update_reminder_claim,
    stakeholder_update_reminder_due,
    stakeholder_update_reminder_record,
)

log = logging.getLogger(__name__)


@shared_task
def stakeholder_update_reminders_sweep() -> int:
    """Remind once per missed stakeholder update; retry reminders a dead worker left."""
    now = timezone.now()
    due_ids = Incident.objects.filter(
        status__in=OPEN_STATUSES, next_update_due_at__lte=now
    ).values_list("pk", flat=True)
    for incident_id in due_ids:
        stakeholder_update_reminder_due(incident_id=incident_id, now=now)
    pending = StakeholderUpdateReminder.objects.filter(
        state=StakeholderUpdateReminder.State.PENDING
    ).exclude(claimed_at__gte=now - REMINDER_CLAIM_TIMEOUT)
    return sum(stakeholder_update_reminder_send(pk) for pk in pending.values_list("pk", flat=True))


@shared_task
def stakeholder_update_reminder_send(reminder_id: int) -> int:
    """Idempotent: only the caller that claims the pending reminder sends it."""
    reminder = stakeholder_update_reminder_claim(reminder_id=reminder_id)
    if reminder is None:
        return 0
    recipient = reminder.recipient
    if recipient is None or not recipient.email:
        stakeholder_update_reminder_record(reminder=reminder, sent=False)
        return 0
    try:
        stakeholder_update_reminder_email(
            incident=reminder.incident, recipient=recipient, missed_due=reminder.missed_due
        )
    except Exception as exc:  # any failure is recorded on the incident for people to see
        log.warning("Update reminder %s failed: %s", reminder.pk, exc)
        stakeholder_update_reminder_record(
            reminder=reminder, sent=False, error=f"{type(exc).__name__}: {exc}"
        )
        return 0
    stakeholder_update_reminder_record(reminder=reminder, sent=True)
    return 1
