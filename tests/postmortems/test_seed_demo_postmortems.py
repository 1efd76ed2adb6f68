"""The demo seed: only the demo's incidents, facts that agree, safe to run again."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from incidents import services as incident_services
from postmortems.models import ActionItem, Postmortem
from tests.factories import make_incident

pytestmark = pytest.mark.django_db

LATE_DEMO = "API Gateway 5xx spike after config push"
DEMO_INCIDENTS = (LATE_DEMO, "Notification emails delayed by up to 2 hours")  # in seed_demo


@pytest.fixture
def real_incident(commander):
    incident = make_incident(declared_by=commander, title="Real outage", severity_name="SEV3")
    incident_services.incident_transition(incident=incident, actor=commander, to_status="resolved")
    return incident


def seed():
    call_command("seed_demo", force=True, stdout=None)
    call_command("seed_demo_postmortems", force=True)


def test_it_refuses_to_run_without_debug_unless_forced(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo_postmortems")


def test_real_incidents_get_no_demo_items_or_postmortems(real_incident):
    seed()
    seed()
    assert not ActionItem.objects.filter(incident=real_incident).exists()
    assert not Postmortem.objects.filter(incident=real_incident).exists()
    for title in DEMO_INCIDENTS:
        assert ActionItem.objects.filter(incident__title=title).count() == 5  # once, not twice
        assert Postmortem.objects.filter(incident__title=title).count() == 1


def test_demo_postmortems_agree_with_their_backdated_incidents():
    seed()
    today = timezone.localdate()
    late = []
    for postmortem in Postmortem.objects.filter(incident__title__in=DEMO_INCIDENTS):
        incident = postmortem.incident
        impact = postmortem.sections.get(key="impact").body
        assert "Impact lasted **0 min**" not in impact
        resolved = incident.resolved_at.astimezone(dt.UTC).strftime("%d %b %Y %H:%M UTC")
        assert f"Resolved at {resolved}" in postmortem.sections.get(key="recovery").body
        resolved_day = timezone.localtime(incident.resolved_at).date()
        assert postmortem.due_date >= resolved_day
        for item in postmortem.timeline_items.exclude(source_entry=None):
            assert item.occurred_at == item.source_entry.occurred_at
        for item in ActionItem.objects.filter(incident=incident):
            assert item.due_date > resolved_day  # nothing due before the incident ended
        assert incident.timeline.filter(body__startswith="Postmortem started").count() == 1
        if postmortem.is_late(today):
            late.append(incident.title)
    assert late == [LATE_DEMO]
