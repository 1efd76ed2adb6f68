"""Thin Celery tasks: load by id, call a service, return. The database decides what is due.

The beat schedule in config/settings.py runs the two sweeps; both are safe to run twice at
once, after a restart, or with a message delivered twice (see postmortems.reminders).
"""

from __future__ import annotations

import logging
import time

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db.models import Exists, OuterRef

from incidents.models import Incident
from postmortems.models import Postmortem, PostmortemPolicy
from postmortems.reminders import (
    action_item_digest_send,
    action_item_escalations_send,
    digest_candidates,
    late_postmortem_reminders_send,
)
from postmortems.services import (
    RESOLVED_STATUSES,
    postmortem_ensure_required,
    postmortem_export_claim,
    postmortem_export_finish,
)

log = logging.getLogger(__name__)

PDF_SOFT_LIMIT = 60
PDF_HARD_LIMIT = 90


def missing_required_postmortems() -> list[int]:
    required = PostmortemPolicy.objects.filter(required=True).values("severity_id")
    return list(
        Incident.objects.filter(
            status__in=RESOLVED_STATUSES,
            is_drill=False,
            resolved_at__isnull=False,
            severity_id__in=required,
        )
        .exclude(Exists(Postmortem.objects.filter(incident=OuterRef("pk"))))
        .values_list("pk", flat=True)
    )


@shared_task
def postmortem_policy_sweep() -> dict:
    """Create required postmortems that are missing (a lost signal, a crash) and remind
    owners of late ones."""
    created = 0
    for incident_id in missing_required_postmortems():
        if postmortem_ensure_required(incident_id=incident_id) is not None:
            created += 1
    reminded = late_postmortem_reminders_send()
    return {"created": created, "reminded": reminded}


@shared_task
def action_item_reminders_sweep() -> dict:
    """Daily digests (at most one per owner per local day) and manager escalations."""
    digests = 0
    for owner_id in digest_candidates(now=_now()):
        digests += action_item_digest_send(owner_id=owner_id)
    escalations = action_item_escalations_send()
    return {"digests": digests, "escalations": escalations}


def _now():
    from django.utils import timezone

    return timezone.now()


@shared_task(soft_time_limit=PDF_SOFT_LIMIT, time_limit=PDF_HARD_LIMIT, acks_late=True)
def postmortem_export_render(export_id: int) -> str:
    """Render one export. Claims it first, so a duplicate delivery does nothing."""
    from postmortems.pdf import render_postmortem_pdf

    export = postmortem_export_claim(export_id=export_id)
    if export is None:
        return "not claimed"
    started = time.perf_counter()
    try:
        pdf, pages = render_postmortem_pdf(export.postmortem)
    except SoftTimeLimitExceeded:
        postmortem_export_finish(
            export_id=export_id, pdf=None, error=f"Rendering took over {PDF_SOFT_LIMIT} s."
        )
        return "timed out"
    except Exception as exc:
        log.exception("PDF export %s failed", export_id)
        postmortem_export_finish(export_id=export_id, pdf=None, error=f"{type(exc).__name__}")
        return "failed"
    ms = int((time.perf_counter() - started) * 1000)
    postmortem_export_finish(export_id=export_id, pdf=pdf, pages=pages, render_ms=ms)
    return "ready"
