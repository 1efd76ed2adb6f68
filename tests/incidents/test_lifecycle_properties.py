"""Property-based: whatever a commander clicks, the lifecycle and its milestones stay sane."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidents import services
from incidents.models import ALLOWED_TRANSITIONS, OPEN_STATUSES, IncidentStatus, Milestone
from tests.factories import make_incident, make_user

STATUSES = [s.value for s in IncidentStatus]


@pytest.mark.django_db
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(clicks=st.lists(st.sampled_from(STATUSES), max_size=12))
def test_any_sequence_of_clicks_keeps_the_lifecycle_consistent(clicks):
    commander = make_user()
    incident = make_incident(declared_by=commander)
    for target in clicks:
        before = incident.status
        entries_before = incident.timeline.count()
        try:
            incident = services.incident_transition(
                incident=incident, actor=commander, to_status=target
            )
        except services.IncidentRefused:
            incident.refresh_from_db()
            assert incident.status == before
            assert target not in ALLOWED_TRANSITIONS[before]
            assert incident.timeline.count() == entries_before
            continue
        assert target in ALLOWED_TRANSITIONS[before]
        assert incident.timeline.count() == entries_before + 1

        # Milestones that are set are in order, and match the state.
        stamps = [getattr(incident, m.value) for m in Milestone]
        present = [t for t in stamps if t is not None]
        assert present == sorted(present)
        if incident.status in (IncidentStatus.RESOLVED, IncidentStatus.CLOSED):
            assert incident.resolved_at and incident.mitigated_at and incident.acknowledged_at
            assert incident.next_update_due_at is None
        else:
            assert incident.resolved_at is None
        if incident.status == IncidentStatus.MONITORING:
            assert incident.mitigated_at is not None
        if incident.status in (IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED):
            assert incident.mitigated_at is None  # a mitigation that held would not be here
        if incident.status in OPEN_STATUSES:
            assert incident.next_update_due_at is not None
        if incident.status == IncidentStatus.CLOSED:
            assert incident.closed_at is not None
