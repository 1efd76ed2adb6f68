"""Thin Celery tasks: load by id, call a service, return. The database decides what is due."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from incidents.models import OPEN_STATUSES, Incident, TimelineKind
from incidents.notifications import stakeholder_update_reminder_email
from incidents.services import stakeholder_update_reminder_claim, timeline_record

log = logging.getLogger(__name__)


@shared_task
def stakeholder_update_reminders_sweep() -> int:
    """Find open incidents whose stakeholder update is overdue and remind each once."""
    due_ids = list(
        Incident.objects.filter(
            status__in=OPEN_STATUSES, next_update_due_at__lte=timezone.now()
        ).values_list("pk", flat=True)
    )
    sent = 0
    for incident_id in due_ids:
        sent += stakeholder_update_reminder_send(incident_id)
    return sent


@shared_task
def stakeholder_update_reminder_send(incident_id: int) -> int:
    """Idempotent: the claim decides whether this missed update still needs a reminder."""
    claimed = stakeholder_update_reminder_claim(incident_id=incident_id)
    if claimed is None:
        return 0
    incident, recipient, missed_due = claimed
    if recipient is None or not recipient.email:
        return 0
    try:
        stakeholder_update_reminder_email(
            incident=incident, recipient=recipient, missed_due=missed_due
        )
    except OSError as exc:  # smtplib errors are OSErrors too
        log.warning("Update reminder for %s failed: %s", incident.reference, exc)
        with transaction.atomic():
            locked = Incident.objects.select_for_update().get(pk=incident.pk)
            timeline_record(
                incident=locked,
                kind=TimelineKind.REMINDER,
                actor=None,
                body=f"The reminder email to {recipient.display_name} could not be sent: {exc}",
            )
        return 0
    return 1
