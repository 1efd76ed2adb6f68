"""Thin, idempotent Celery tasks for paging. Each takes ids, and the services decide under
locks and conditional updates whether there is still anything to do."""

from __future__ import annotations

import logging

from celery import shared_task

from oncall import services
from oncall.models import Escalation

log = logging.getLogger(__name__)


@shared_task
def escalation_advance_task(escalation_id: int) -> bool:
    return services.escalation_advance(escalation_id=escalation_id)


@shared_task
def notification_deliver(notification_id: int) -> str:
    from oncall.messages import page_message

    claimed = services.notification_claim(notification_id=notification_id)
    if claimed is None:
        return "not claimed"
    notification = claimed.notification
    return _send(notification, page_message(notification))


@shared_task
def bundle_deliver(notification_ids: list[int]) -> str:
    from oncall.messages import page_message

    claimed = services.bundle_claim(notification_ids=notification_ids)
    if claimed is None:
        return "not claimed"
    lead, others = claimed
    return _send(lead, page_message(lead, bundled=[lead, *others]))


def _send(notification, message) -> str:
    from oncall.notifiers import DeliveryError, notifier_for

    try:
        receipt = notifier_for(notification.contact_method.kind).send(
            contact=notification.contact_method, message=message
        )
    except DeliveryError as exc:
        services.notification_record_failure(
            notification=notification,
            error=str(exc),
            permanent=exc.permanent,
            site_problem=getattr(exc, "site_problem", False),
        )
        return f"failed: {exc}"
    except Exception as exc:  # a bug in a notifier must not leave the claim hanging
        log.exception("Notifier crashed for notification %s", notification.pk)
        services.notification_record_failure(
            notification=notification, error=f"{type(exc).__name__}: {exc}", permanent=False
        )
        return "crashed"
    services.notification_record_sent(notification=notification, receipt=receipt)
    return receipt


@shared_task
def oncall_tick() -> dict:
    """The paging heartbeat (beat, every few seconds): whatever is due in the database
    happens now, whether or not its Celery message arrived."""
    from django.utils import timezone

    now = timezone.now()
    advanced = 0
    due = Escalation.objects.filter(
        state=Escalation.State.ACTIVE, next_step_at__lte=now
    ).values_list("pk", flat=True)[:200]
    for escalation_id in list(due):
        advanced += services.escalation_advance(escalation_id=escalation_id, now=now)
    released = services.notifications_release_stuck(now=now)
    due_notifications = services.notifications_due(now=now)
    if due_notifications:
        services.notifications_enqueue(due_notifications)
    bundles = services.throttled_bundles_due(now=now)
    for ids in bundles:
        bundle_deliver.delay(ids)
    return {
        "advanced": advanced,
        "released": released,
        "enqueued": len(due_notifications),
        "bundles": len(bundles),
    }


@shared_task
def handoff_notices_sweep() -> int:
    from oncall.handoffs import handoff_notices_send

    return handoff_notices_send()
