"""Thin, idempotent Celery tasks for status page subscribers and scheduled maintenance.

Each takes ids; the services decide, with conditional UPDATEs, whether there is still
anything to do, so a task delivered twice (or racing the beat's sweep) does nothing twice.
"""

from __future__ import annotations

import smtplib

from celery import shared_task
from django.utils import timezone

from config.celery import current_task_queue
from incidents.statuspages import maintenance, subscriptions


def enqueue(task, *args) -> None:
    """Send `task` to the queue the current task came from (workers dedicated to a queue
    keep its follow-ups), or to the default queue outside a task."""
    queue = current_task_queue()
    if queue:
        task.apply_async(args, queue=queue)
    else:
        task.delay(*args)


# The mail server being down is worth waiting for: the person is looking at their inbox.
@shared_task(
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=6,
)
def status_confirmation_send(subscriber_id: int, sent_at: str) -> bool:
    """Idempotent: sends only while `sent_at` is still the subscriber's latest request."""
    return subscriptions.confirmation_email_send(subscriber_id=subscriber_id, sent_at=sent_at)


@shared_task
def status_event_fan_out(event_id: int) -> int:
    """One task per event, whatever the number of subscribers; sending is batched."""
    batches = subscriptions.status_event_fan_out(event_id=event_id)
    for batch in batches:
        enqueue(status_deliveries_send, batch)
    return sum(len(b) for b in batches)


@shared_task
def status_deliveries_send(delivery_ids: list[int]) -> dict:
    outcome = subscriptions.deliveries_send(delivery_ids=delivery_ids)
    return {"sent": outcome.sent, "failed": outcome.failed, "skipped": outcome.skipped}


@shared_task
def status_tick() -> dict:
    """The beat (STATUS_TICK_SECONDS): maintenance due now happens now; events and
    deliveries that a lost message or a killed worker left behind are handed out again."""
    from incidents.models import StatusDelivery

    now = timezone.now()
    counts = maintenance.maintenance_tick(now=now)
    for event_id in subscriptions.events_not_fanned_out(now=now):
        enqueue(status_event_fan_out, event_id)
    counts["released"] = subscriptions.deliveries_release_stuck(now=now)
    batches = subscriptions.deliveries_hand_over(StatusDelivery.objects.all(), now=now)
    for batch in batches:
        enqueue(status_deliveries_send, batch)
    counts["enqueued"] = sum(len(b) for b in batches)
    return counts
