from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from incidents import services as incident_services
from incidents.models import Incident
from postmortems import services
from tests.factories import make_incident, make_service


def resolve(incident: Incident, actor, *, at: dt.datetime | None = None) -> Incident:
    """Resolve through the real service (which sends the status signal on commit)."""
    incident_services.incident_transition(incident=incident, actor=actor, to_status="resolved")
    incident.refresh_from_db()
    if at is not None:
        Incident.objects.filter(pk=incident.pk).update(resolved_at=at)
        incident.refresh_from_db()
    return incident


def _service(name: str):
    from incidents.models import Service

    return Service.objects.filter(name=name).first() or make_service(name)


@pytest.fixture
def make_resolved_incident(db):
    def make(*, declared_by, severity_name="SEV3", restricted=False, title="Checkout is failing"):
        incident = make_incident(
            declared_by=declared_by,
            severity_name=severity_name,
            restricted=restricted,
            title=title,
            services_=[_service("Checkout API"), _service("Payments")],
        )
        note = incident_services.note_add(
            incident=incident, author=declared_by, body="Error rate at **12%** on checkout."
        )
        incident_services.timeline_entry_set_pinned(
            incident=incident, actor=declared_by, entry_id=note.pk, pinned=True
        )
        incident_services.note_add(incident=incident, author=declared_by, body="Unpinned chatter")
        incident_services.incident_transition(
            incident=incident, actor=declared_by, to_status="monitoring"
        )
        return resolve(incident, declared_by)

    return make


@pytest.fixture
def postmortem(commander, make_resolved_incident):
    incident = make_resolved_incident(declared_by=commander)
    return services.postmortem_create(incident=incident, actor=commander)


@pytest.fixture
def today():
    return timezone.localdate()
