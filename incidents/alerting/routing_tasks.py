"""Thin Celery task for alert routing: write gathered alert arrivals on the timeline.

Registered through incidents.alerting.services, which imports this module (the worker
loads services via incidents/tasks.py -> incidents.alerting.tasks -> heartbeats).
"""

from __future__ import annotations

from celery import shared_task


@shared_task
def alert_arrivals_note_task(incident_id: int, token: str = "", last: bool = False) -> int:
    """Gather an incident's pending alert arrivals; idempotent (see alert_arrivals_gather)."""
    from incidents.alerting import services

    return services.alert_arrivals_gather(incident_id=incident_id, token=token, last=last)


@shared_task
def alerts_maintenance_release() -> int:
    """Route alerts a maintenance window held back that still fire now it is over.
    Run by beat and on commit when someone ends a window early; idempotent."""
    from incidents.alerting import services

    return services.alerts_release_from_maintenance()


@shared_task
def alerts_arrivals_overdue() -> int:
    """Safety net for arrival entries whose gathering was lost. Run by beat; idempotent."""
    from incidents.alerting import services

    return services.alerts_arrivals_overdue()
