"""Intake's short cuts keep every rule: a token kept by the process stops working the moment
it is rotated or its integration goes; a likely repeat that is not one (resolved meanwhile,
or rising in severity) takes the full path; joining writes the arrival once."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from incidents.alerting.services import integration_create, integration_rotate
from incidents.models import Alert, AlertArrival, Incident

pytestmark = pytest.mark.django_db


@pytest.fixture
def service(make_service):
    return make_service("Checkout")


def url(token):
    return f"/integrations/{token}/pagerduty"


def send(token, key, *, action="trigger", severity="error", summary="Checkout errors"):
    body = {
        "event_action": action,
        "dedup_key": key,
        "payload": {"summary": summary, "source": "prom", "severity": severity},
    }
    return Client().post(url(token), json.dumps(body), content_type="application/json")


def test_a_used_token_stops_working_the_moment_it_is_rotated(service):
    integration, old = integration_create(service=service, kind="pagerduty")
    for n in range(3):  # used, so this process may keep it
        assert send(old, f"k{n}").status_code == 202
    new = integration_rotate(integration=integration)
    assert send(old, "after").status_code == 404
    assert not Alert.objects.filter(dedup_key="after").exists()
    assert send(new, "after").status_code == 202


def test_a_used_token_stops_working_when_its_integration_is_deleted(service):
    integration, token = integration_create(service=service, kind="pagerduty")
    assert send(token, "a").status_code == 202
    assert send(token, "b").status_code == 202
    Alert.objects.all().delete()
    integration.delete()
    assert send(token, "c").status_code == 404
    assert not Alert.objects.exists()


def test_a_used_token_for_another_kind_is_still_a_404(service):
    integration, token = integration_create(service=service, kind="pagerduty")
    assert send(token, "a").status_code == 202
    body = {"version": "4", "groupKey": "g", "status": "firing", "alerts": []}
    response = Client().post(
        f"/integrations/{token}/alertmanager", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 404


def test_repeats_count_and_a_resolved_key_opens_a_new_alert(service):
    _, token = integration_create(service=service, kind="pagerduty")
    for _ in range(4):
        assert send(token, "disk").status_code == 202
    alert = Alert.objects.get()
    assert alert.times_seen == 4
    assert send(token, "disk", action="resolve").status_code == 202
    # Remembered as a repeat, but the open alert is gone: a new alert, as always.
    assert send(token, "disk").status_code == 202
    assert Alert.objects.count() == 2
    assert Alert.objects.filter(status="firing").get().times_seen == 1


def test_a_repeat_that_rises_in_severity_still_opens_an_incident(service):
    _, token = integration_create(service=service, kind="pagerduty")
    send(token, "cpu", severity="warning")
    send(token, "cpu", severity="warning")
    assert Incident.objects.count() == 0
    send(token, "cpu", severity="critical")
    alert = Alert.objects.get()
    assert alert.times_seen == 3
    assert alert.incident is not None
    assert Incident.objects.count() == 1


def test_an_alert_joining_an_incident_is_named_once(service):
    _, token = integration_create(service=service, kind="pagerduty")
    send(token, "a", summary="First")
    send(token, "b", summary="Second")  # joins: the first of its burst, written at once
    incident = Incident.objects.get()
    assert incident.alerts.count() == 2
    fired = list(incident.timeline.filter(data__event="fired").order_by("pk"))
    assert [e.body for e in fired] == [
        "Error alert fired and opened this incident: First",
        "Error alert fired and joined this incident: Second",
    ]
    assert fired[1].data["alerts"] == [Alert.objects.get(dedup_key="b").pk]
    assert not AlertArrival.objects.exists()
