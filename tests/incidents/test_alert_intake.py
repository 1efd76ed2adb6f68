"""Alert intake end to end: endpoints, deduplication, routing into incidents, the pages."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from incidents.alerting.services import integration_create, integration_rotate, token_hash
from incidents.models import Alert, Incident, Integration, TimelineEntry
from oncall.models import Escalation, EscalationPolicy, EscalationStep, StepTarget

pytestmark = pytest.mark.django_db


@pytest.fixture
def service(make_service, make_user):
    raj = make_user("raj-oncall", first_name="Raj")
    policy = EscalationPolicy.objects.create(name="Checkout on-call", repeat_count=0)
    step = EscalationStep.objects.create(policy=policy, position=0, delay_minutes=5)
    StepTarget.objects.create(step=step, kind="user", user=raj)
    service = make_service("Checkout")
    service.escalation_policy = policy
    service.save()
    return service


def make_integration(service, kind):
    integration, token = integration_create(service=service, kind=kind)
    return integration, token


def post(url, body, *, raw=False):
    data = body if raw else json.dumps(body)
    return Client().post(url, data, content_type="application/json")


def am_body(*alerts, group='{}:{alertname="X"}', status="firing"):
    return {
        "version": "4",
        "groupKey": group,
        "status": status,
        "receiver": "fb",
        "alerts": list(alerts),
    }


def am_alert(fp, *, status="firing", severity="critical", summary="Checkout errors"):
    return {
        "status": status,
        "fingerprint": fp,
        "labels": {"alertname": "X", "severity": severity},
        "annotations": {"summary": summary},
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prom/graph",
    }


def pd(token, action, key=None, severity="critical", summary="Payments down"):
    body = {"routing_key": token, "event_action": action}
    if key:
        body["dedup_key"] = key
    if action == "trigger":
        body["payload"] = {"summary": summary, "source": "db1", "severity": severity}
    return body


def url(kind, token):
    return reverse(f"integrations:{kind}", kwargs={"token": token})


def nothing_written():
    return Alert.objects.count() == 0 and Incident.objects.count() == 0


# --- Tokens -------------------------------------------------------------------------


def test_only_the_hash_of_the_token_is_stored(service):
    integration, token = make_integration(service, "generic")
    assert integration.token_hash == token_hash(token)
    assert token not in json.dumps(list(Integration.objects.values()), default=str)


@pytest.mark.parametrize("kind", ["alertmanager", "pagerduty", "generic"])
def test_a_wrong_token_is_a_404_and_writes_nothing(service, kind):
    make_integration(service, kind)
    response = post(url(kind, "not-the-token"), {"title": "x"})
    assert response.status_code == 404
    assert response.json()["status"] == "not found"
    assert nothing_written()


def test_a_token_for_another_kind_is_a_404(service):
    _, token = make_integration(service, "generic")
    assert post(url("alertmanager", token), am_body(am_alert("a"))).status_code == 404
    assert nothing_written()


def test_rotating_retires_the_old_url(service):
    integration, old = make_integration(service, "generic")
    new = integration_rotate(integration=integration)
    assert post(url("generic", old), {"title": "x"}).status_code == 404
    assert post(url("generic", new), {"title": "x", "severity": "info"}).status_code == 202


def test_get_is_not_allowed_and_says_so_in_json(service):
    _, token = make_integration(service, "generic")
    response = Client().get(url("generic", token))
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert response.json()["message"] == "Send events with POST."
    assert Client().get(reverse("integrations:pagerduty_enqueue")).status_code == 405


# --- Error classes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("alertmanager", b"{oops"),
        ("alertmanager", b"[1, 2]"),
        ("alertmanager", json.dumps({"alerts": "many"}).encode()),
        ("alertmanager", json.dumps(am_body({"status": "firing", "labels": [1]})).encode()),
        ("pagerduty", b"\xff\xfe"),
        ("pagerduty", json.dumps({"event_action": "trigger"}).encode()),
        ("pagerduty", json.dumps({"event_action": "resolve"}).encode()),
        ("generic", json.dumps({"title": 5}).encode()),
        ("generic", json.dumps({"title": "ok", "status": "weird"}).encode()),
        ("generic", b'{"title": "nul \\u0000 here"}'),
        ("generic", b'{"title": "nan", "x": NaN}'),
    ],
)
def test_bad_bodies_are_a_clear_400_and_write_nothing(service, kind, body):
    _, token = make_integration(service, kind)
    response = post(url(kind, token), body, raw=True)
    assert response.status_code == 400, response.content
    data = response.json()
    assert data["status"] == "invalid event" and data["message"] and data["errors"]
    assert nothing_written()


def test_oversized_bodies_are_refused(service):
    _, token = make_integration(service, "pagerduty")
    big = pd(token, "trigger", summary="x")
    big["payload"]["custom_details"] = {"blob": "y" * (520 * 1024)}
    response = post(url("pagerduty", token), big)
    assert response.status_code == 400
    assert "512 KB" in response.json()["message"]
    assert nothing_written()


def test_one_bad_alert_in_a_batch_writes_none_of_it(service):
    _, token = make_integration(service, "alertmanager")
    body = am_body(am_alert("good"), {"status": "firing", "fingerprint": 7})
    assert post(url("alertmanager", token), body).status_code == 400
    assert nothing_written()


# --- PagerDuty semantics and dedup ----------------------------------------------------


def test_pagerduty_trigger_answers_like_pagerduty(service):
    _, token = make_integration(service, "pagerduty")
    response = post(url("pagerduty", token), pd(token, "trigger", severity="info"))
    assert response.status_code == 202
    data = response.json()
    assert data["status"] == "success" and data["message"] == "Event processed"
    alert = Alert.objects.get()
    assert alert.dedup_key == data["dedup_key"]
    assert token not in json.dumps(alert.payload)


def test_pagerduty_routing_key_alone_finds_the_integration(service):
    _, token = make_integration(service, "pagerduty")
    response = post(reverse("integrations:pagerduty_enqueue"), pd(token, "trigger", "k1"))
    assert response.status_code == 202
    assert Alert.objects.get().dedup_key == "k1"
    assert (
        post(reverse("integrations:pagerduty_enqueue"), pd("x" * 32, "trigger")).status_code == 404
    )


def test_the_same_key_while_open_is_the_same_alert(service):
    _, token = make_integration(service, "pagerduty")
    for _ in range(3):
        assert post(url("pagerduty", token), pd(token, "trigger", "disk")).status_code == 202
    alert = Alert.objects.get()
    assert alert.times_seen == 3
    assert Incident.objects.count() == 1


def test_after_resolve_the_next_trigger_is_a_new_alert(service):
    _, token = make_integration(service, "pagerduty")
    post(url("pagerduty", token), pd(token, "trigger", "disk", severity="warning"))
    post(url("pagerduty", token), pd(token, "resolve", "disk"))
    post(url("pagerduty", token), pd(token, "trigger", "disk", severity="warning"))
    assert list(Alert.objects.order_by("pk").values_list("status", flat=True)) == [
        "resolved",
        "firing",
    ]


def test_acknowledge_then_resolve(service):
    _, token = make_integration(service, "pagerduty")
    post(url("pagerduty", token), pd(token, "trigger", "disk", severity="warning"))
    post(url("pagerduty", token), pd(token, "acknowledge", "disk"))
    assert Alert.objects.get().status == "acknowledged"
    post(url("pagerduty", token), pd(token, "resolve", "disk"))
    alert = Alert.objects.get()
    assert alert.status == "resolved" and alert.resolved_at is not None


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_acknowledge_or_resolve_of_an_unknown_key_changes_nothing(service, action):
    _, token = make_integration(service, "pagerduty")
    response = post(url("pagerduty", token), pd(token, action, "never-seen"))
    assert response.status_code == 202
    assert nothing_written()


# --- Routing into incidents -----------------------------------------------------------


def test_a_critical_alert_opens_an_incident_and_pages_the_service(service):
    _, token = make_integration(service, "alertmanager")
    response = post(url("alertmanager", token), am_body(am_alert("fp1")))
    assert response.status_code == 200
    incident = Incident.objects.get()
    assert incident.detection_source == "alert" and incident.severity.name == "SEV1"
    assert incident.declared_by is None
    assert list(incident.services.all()) == [service]
    assert Alert.objects.get().incident == incident
    assert Escalation.objects.filter(subject_key=f"incident:{incident.pk}").exists()
    assert incident.timeline.filter(kind="alert", body__contains="opened this incident").exists()


def test_a_second_alert_in_the_group_joins_the_incident(service):
    _, token = make_integration(service, "alertmanager")
    post(url("alertmanager", token), am_body(am_alert("fp1")))
    post(url("alertmanager", token), am_body(am_alert("fp2", severity="error", summary="Slow")))
    incident = Incident.objects.get()
    assert incident.alerts.count() == 2
    assert incident.timeline.filter(kind="alert", body__contains="joined this incident").exists()


def test_an_alert_on_the_same_service_within_the_window_joins(service):
    _, am_token = make_integration(service, "alertmanager")
    _, pd_token = make_integration(service, "pagerduty")
    post(url("alertmanager", am_token), am_body(am_alert("fp1")))
    post(url("pagerduty", pd_token), pd(pd_token, "trigger", "other", severity="error"))
    assert Incident.objects.count() == 1
    assert Alert.objects.filter(incident__isnull=False).count() == 2


def test_an_alert_after_the_incident_resolved_opens_a_new_one(service, commander):
    from incidents import services

    _, token = make_integration(service, "pagerduty")
    post(url("pagerduty", token), pd(token, "trigger", "a"))
    first = Incident.objects.get()
    services.incident_transition(incident=first, actor=commander, to_status="resolved")
    post(url("pagerduty", token), pd(token, "trigger", "b"))
    assert Incident.objects.count() == 2


def test_warnings_are_recorded_only(service):
    _, token = make_integration(service, "alertmanager")
    post(url("alertmanager", token), am_body(am_alert("w", severity="warning")))
    assert Alert.objects.get().incident is None
    assert Incident.objects.count() == 0 and Escalation.objects.count() == 0


def test_resolutions_are_written_on_the_timeline(service):
    _, token = make_integration(service, "alertmanager")
    post(url("alertmanager", token), am_body(am_alert("fp1"), am_alert("fp2")))
    incident = Incident.objects.get()
    post(url("alertmanager", token), am_body(am_alert("fp1", status="resolved"), status="resolved"))
    bodies = list(incident.timeline.filter(kind="alert").values_list("body", flat=True))
    assert any(b.startswith("Alert resolved") for b in bodies)
    assert not any("All alerts" in b for b in bodies)
    post(url("alertmanager", token), am_body(am_alert("fp2", status="resolved"), status="resolved"))
    assert incident.timeline.filter(body="All alerts on this incident have resolved.").exists()
    # Alertmanager retries the same notification: nothing more happens.
    before = TimelineEntry.objects.count()
    post(url("alertmanager", token), am_body(am_alert("fp2", status="resolved"), status="resolved"))
    assert TimelineEntry.objects.count() == before


# --- Management command and pages -----------------------------------------------------


def test_create_integration_prints_the_url_last(service, settings):
    settings.SITE_URL = "https://firebreak.example.org"  # where monitoring reaches us
    out = StringIO()
    call_command("create_integration", service.slug, "--kind", "pagerduty", stdout=out)
    last = out.getvalue().strip().splitlines()[-1]
    assert last.startswith("https://firebreak.example.org/integrations/")
    assert last.endswith("/pagerduty")
    token = last.rsplit("/", 2)[-2]
    assert Integration.objects.get().token_hash == token_hash(token)


def test_responders_add_an_integration_and_see_its_url_once(service, responder):
    client = Client()
    client.force_login(responder)
    page = client.get(reverse("services:service_detail", args=[service.slug]))
    assert page.content.count(b"Add integration") == 1
    assert b"<title>Checkout" in page.content
    add = reverse("alerts:integration_add", args=[service.slug])
    response = client.post(add, {"name": "Prometheus", "kind": "alertmanager"})
    # Redirected, so a reload of the page shown next never posts the form again.
    assert response.status_code == 302 and "/services/" in response["Location"]
    assert response["Location"].endswith("#integrations-h")
    shown_page = client.get(response["Location"])
    assert shown_page["Cache-Control"] == "no-store"
    integration = Integration.objects.get()
    shown = shown_page.context["new_url"]
    assert shown.endswith("/alertmanager") and b"Copy" in shown_page.content
    token = shown.rsplit("/", 2)[-2]
    assert integration.token_hash == token_hash(token)
    again = client.get(reverse("services:service_detail", args=[service.slug]))  # a reload
    assert token.encode() not in again.content and b"Prometheus" in again.content
    assert Integration.objects.count() == 1
    rotate = reverse("alerts:integration_rotate", args=[service.slug, integration.pk])
    rotated = client.post(rotate, follow=True)
    assert rotated.status_code == 200
    assert rotated.context["new_url"] != shown
    assert b"the old one no longer works" in rotated.content
    new_token = rotated.context["new_url"].rsplit("/", 2)[-2]
    client.get(reverse("services:service_detail", args=[service.slug]))  # a reload
    integration.refresh_from_db()
    assert integration.token_hash == token_hash(new_token)  # not rotated again


def test_an_invalid_integration_form_is_a_422(service, responder):
    client = Client()
    client.force_login(responder)
    response = client.post(reverse("alerts:integration_add", args=[service.slug]), {"kind": "x"})
    assert response.status_code == 422
    assert Integration.objects.count() == 0


def test_viewers_do_not_see_integrations(service, viewer):
    client = Client()
    client.force_login(viewer)
    page = client.get(reverse("services:service_detail", args=[service.slug]))
    assert b"Add integration" not in page.content


def test_alerts_page_filters_and_the_incident_shows_its_alerts(service, viewer):
    _, token = make_integration(service, "pagerduty")
    post(url("pagerduty", token), pd(token, "trigger", "a", summary="Card payments failing"))
    post(url("pagerduty", token), pd(token, "trigger", "b", severity="info", summary="FYI note"))
    post(url("pagerduty", token), pd(token, "resolve", "b"))
    client = Client()
    client.force_login(viewer)
    body = client.get(reverse("alerts:list")).content.decode()
    assert "Card payments failing" in body and "FYI note" in body
    body = client.get(reverse("alerts:list") + "?status=open").content.decode()
    assert "Card payments failing" in body and "FYI note" not in body
    body = client.get(reverse("alerts:list") + "?service=nope").content.decode()
    assert "Card payments failing" not in body
    incident = Incident.objects.get()
    detail = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert "Card payments failing" in detail and 'id="alerts-h"' in detail


def test_alerts_of_restricted_incidents_stay_hidden(service, viewer, outsider, commander):
    from incidents import services

    _, token = make_integration(service, "pagerduty")
    post(url("pagerduty", token), pd(token, "trigger", "a", summary="Secret breach"))
    post(url("pagerduty", token), pd(token, "trigger", "w", severity="info", summary="Loose"))
    incident = Incident.objects.get()
    services.incident_set_restricted(incident=incident, actor=commander, restricted=True)
    for user in (viewer, outsider):
        client = Client()
        client.force_login(user)
        body = client.get(reverse("alerts:list")).content.decode()
        assert "Secret breach" not in body
        assert ("Loose" in body) == (user == viewer)


def test_without_configured_severities_a_critical_alert_is_recorded_only(service):
    from incidents.models import Severity

    Severity.objects.all().delete()
    _, token = make_integration(service, "pagerduty")
    assert post(url("pagerduty", token), pd(token, "trigger", "k")).status_code == 202
    assert Alert.objects.get().incident is None


def test_an_alert_after_the_grouping_window_opens_a_new_incident(service, settings):
    import time_machine

    settings.ALERT_GROUPING_WINDOW_MINUTES = 10
    _, token = make_integration(service, "pagerduty")
    with time_machine.travel("2026-03-01 12:00Z", tick=False):
        post(url("pagerduty", token), pd(token, "trigger", "a"))
    with time_machine.travel("2026-03-01 12:09Z", tick=False):
        post(url("pagerduty", token), pd(token, "trigger", "b"))
    assert Incident.objects.count() == 1
    with time_machine.travel("2026-03-01 12:30Z", tick=False):
        post(url("pagerduty", token), pd(token, "trigger", "c"))
    assert Incident.objects.count() == 2
