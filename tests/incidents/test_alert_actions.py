"""What people do to alerts by hand, and the monitoring tool's own acknowledge/resolve:
one path each, idempotent, written on the incident's timeline."""

from __future__ import annotations

import pytest

from incidents.alerting.services import (
    alert_acknowledge,
    alert_arrivals_note,
    alert_attach,
    alert_resolve,
    incident_declare_from_alert,
)
from incidents.models import Alert, AlertArrival, Incident, Severity, TimelineEntry
from incidents.services import IncidentRefused
from oncall.models import Escalation
from tests.factories import make_incident
from tests.incidents.test_alert_intake import (
    am_alert,
    am_body,
    make_integration,
    pd,
    post,
    service,  # noqa: F401  (fixture)
    url,
)

pytestmark = pytest.mark.django_db


def _escalation(incident):
    return Escalation.objects.get(subject_key=f"incident:{incident.pk}")


@pytest.fixture
def paged(service):  # noqa: F811
    """A critical alert that opened an incident which is paging the service's on-call."""
    _, token = make_integration(service, "pagerduty")
    post(url("pagerduty", token), pd(token, "trigger", "disk"))
    alert = Alert.objects.get()
    assert _escalation(alert.incident).state == "active"
    return alert, token


def test_acknowledging_an_alert_by_hand_stops_its_incidents_paging(paged, commander):
    alert, _ = paged
    assert alert_acknowledge(alert=alert, actor=commander) is True
    alert.refresh_from_db()
    assert alert.status == "acknowledged" and alert.acknowledged_by == commander
    assert alert.acknowledged_at is not None
    assert _escalation(alert.incident).state == "acknowledged"
    assert alert.incident.timeline.filter(
        body__startswith="Ivy", body__contains="acknowledged the alert", kind="alert"
    ).exists()


def test_a_pagerduty_acknowledge_event_takes_the_same_path(paged, commander):
    alert, token = paged
    response = post(url("pagerduty", token), pd(token, "acknowledge", "disk"))
    assert response.status_code == 202
    alert.refresh_from_db()
    assert alert.status == "acknowledged" and alert.acknowledged_by is None
    incident = Incident.objects.get()
    assert _escalation(incident).state == "acknowledged"
    assert incident.acknowledged_at is not None
    entry = incident.timeline.get(data__event="acknowledged")
    assert entry.body.startswith("The monitoring tool acknowledged the alert")
    assert "Paging stopped." in entry.body
    # The incident page's paging panel says who acknowledged: here, nobody by name.
    from django.test import Client

    client = Client()
    client.force_login(commander)
    html = client.get(f"/incidents/{incident.pk}/").content.decode()
    assert "Acknowledged from its alerts" in html and "Acknowledged by  " not in html
    assert "Starting…" not in html  # nothing is starting once it is acknowledged


def test_acknowledging_twice_or_after_resolving_changes_nothing(paged, commander):
    alert, token = paged
    alert_acknowledge(alert=alert, actor=commander)
    before = TimelineEntry.objects.count()
    assert alert_acknowledge(alert=alert, actor=commander) is False
    post(url("pagerduty", token), pd(token, "acknowledge", "disk"))
    assert TimelineEntry.objects.count() == before
    alert_resolve(alert=alert, actor=commander)
    before = TimelineEntry.objects.count()
    assert alert_acknowledge(alert=alert) is False
    assert alert_resolve(alert=alert, actor=commander) is False
    assert TimelineEntry.objects.count() == before


def test_resolving_by_hand_is_written_like_a_resolve_event(paged, commander):
    alert, token = paged
    assert alert_resolve(alert=alert, actor=commander) is True
    alert.refresh_from_db()
    assert alert.status == "resolved" and alert.resolved_at is not None
    bodies = list(alert.incident.timeline.values_list("body", flat=True))
    assert "Ivy resolved the alert: Payments down" in bodies
    assert "The alert on this incident has resolved." in bodies
    # The monitoring tool's own resolve afterwards finds nothing open: no change.
    before = TimelineEntry.objects.count()
    post(url("pagerduty", token), pd(token, "resolve", "disk"))
    assert TimelineEntry.objects.count() == before
    # Resolving the alert is not resolving the incident (no rule asked for that).
    assert Incident.objects.get().status == "investigating"


def test_attaching_recorded_alerts_to_an_incident(service, commander):  # noqa: F811
    _, token = make_integration(service, "alertmanager")
    post(
        url("alertmanager", token),
        am_body(am_alert("w1", severity="warning"), am_alert("w2", severity="warning")),
    )
    incident = Incident.objects.create(
        title="Slow checkout",
        severity=Severity.objects.get(name="SEV3"),
        detection_source="internal_report",
        declared_at="2026-01-01T00:00:00Z",
        impact_started_at="2026-01-01T00:00:00Z",
        detected_at="2026-01-01T00:00:00Z",
        cadence_started_at="2026-01-01T00:00:00Z",
    )
    alerts = list(Alert.objects.all())
    assert alert_attach(alerts=alerts, incident=incident, actor=commander) == 2
    assert set(incident.alerts.all()) == set(alerts)
    entry = incident.timeline.get(data__event="attached")
    assert entry.body.startswith("Ivy attached 2 alerts to this incident")
    assert alert_attach(alerts=alerts, incident=incident, actor=commander) == 0
    assert incident.timeline.filter(data__event="attached").count() == 1


def test_an_alert_moved_before_its_arrival_was_gathered_is_named_once(
    service,  # noqa: F811
    commander,
):
    """A burst's later arrivals wait a few seconds to be written on their incident. One
    attached by hand to another incident meanwhile is named there, and not on the first."""
    _, token = make_integration(service, "pagerduty")
    for key in ("a", "b", "c", "d"):
        post(url("pagerduty", token), pd(token, "trigger", key, summary=key.upper()))
    first = Incident.objects.get()
    waiting = Alert.objects.get(dedup_key="c")
    assert AlertArrival.objects.filter(alert=waiting, incident=first).exists()
    other = make_incident(declared_by=commander, title="Search is slow")

    assert alert_attach(alerts=[waiting], incident=other, actor=commander) == 1
    assert alert_arrivals_note(incident_id=first.pk) == 1  # "d" only
    named_on_first = [
        pk
        for data in first.timeline.values_list("data", flat=True)
        for pk in data.get("alerts", [])
    ]
    assert waiting.pk not in named_on_first
    assert Alert.objects.get(dedup_key="d").pk in named_on_first
    assert other.timeline.get(data__event="attached").data["alerts"] == [waiting.pk]
    assert not AlertArrival.objects.exists()


def test_declaring_an_incident_from_a_recorded_alert_pages_the_service(
    service,  # noqa: F811
    commander,
):
    _, token = make_integration(service, "alertmanager")
    post(url("alertmanager", token), am_body(am_alert("w1", severity="warning")))
    alert = Alert.objects.get()
    assert alert.incident is None
    sev3 = Severity.objects.get(name="SEV3")
    incident = incident_declare_from_alert(alert=alert, actor=commander, severity=sev3)
    alert.refresh_from_db()
    assert alert.incident == incident and incident.severity == sev3
    assert incident.declared_by == commander and incident.detection_source == "alert"
    assert list(incident.services.all()) == [service]
    assert _escalation(incident).state == "active"
    assert incident.timeline.filter(
        data__event="declared_from", body__startswith="Ivy declared this incident from the alert"
    ).exists()
    with pytest.raises(IncidentRefused, match="already part of"):
        incident_declare_from_alert(alert=alert, actor=commander)
    assert Incident.objects.count() == 1


def test_declaring_without_a_severity_uses_what_routing_would_choose(
    service,  # noqa: F811
    commander,
):
    _, token = make_integration(service, "alertmanager")
    post(url("alertmanager", token), am_body(am_alert("c1", severity="critical")))
    alert = Alert.objects.get()
    first = alert.incident
    from incidents import services

    services.incident_transition(incident=first, actor=commander, to_status="resolved")
    incident = incident_declare_from_alert(alert=alert, actor=commander)
    assert incident != first and incident.severity.name == "SEV1"
