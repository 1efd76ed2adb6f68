"""Reacting to incidents (the lower layer tells us through its signal)."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from incidents.models import IncidentStatus
from incidents.signals import incident_status_changed

log = logging.getLogger(__name__)


@receiver(incident_status_changed, dispatch_uid="postmortems.required_on_resolve")
def create_required_postmortem(sender, incident_id, from_status, to_status, actor_id, **kwargs):
    """Sent after commit: create the required postmortem at once. If this fails (or the
    process dies), the periodic sweep creates it within minutes."""
    if to_status not in (IncidentStatus.RESOLVED, IncidentStatus.CLOSED):
        return
    from oncall.models import User
    from postmortems.services import postmortem_ensure_required

    try:
        actor = User.objects.filter(pk=actor_id).first() if actor_id else None
        postmortem_ensure_required(incident_id=incident_id, actor=actor)
    except Exception:  # never break the incident's own request; the sweep retries
        log.exception("Could not create the required postmortem for incident %s", incident_id)
