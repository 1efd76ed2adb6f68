"""Alert intake and heartbeat pings are answered ahead of the browser's middleware: a
monitoring tool's request costs no session, user or messages work, and still gets the
security middleware's headers; anything else under the prefix is handled as before."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from incidents.alerting.heartbeats import heartbeat_create
from incidents.alerting.services import integration_create
from incidents.models import Alert
from tests.factories import make_service, make_user

pytestmark = pytest.mark.django_db


def trigger(key):
    return json.dumps(
        {
            "event_action": "trigger",
            "dedup_key": key,
            "payload": {"summary": f"Disk full on {key}", "source": "prom", "severity": "info"},
        }
    )


def test_an_alert_sent_with_a_signed_in_browsers_cookie_reads_no_session_or_user():
    service = make_service("Checkout")
    _, token = integration_create(service=service, kind="pagerduty")
    browser = Client()
    browser.force_login(make_user("ivy"))
    assert browser.get("/alerts/").status_code == 200  # the cookie works for pages
    url = f"/integrations/{token}/pagerduty"
    browser.post(url, trigger("warm"), content_type="application/json")
    with CaptureQueriesContext(connection) as queries:
        response = browser.post(url, trigger("db-1"), content_type="application/json")
    assert response.status_code == 202
    assert Alert.objects.filter(dedup_key="db-1").exists()
    touched = " ".join(q["sql"] for q in queries.captured_queries)
    assert "django_session" not in touched and "oncall_user" not in touched, touched
    assert "sessionid" not in response.cookies  # nor is the session saved or renewed


def test_machine_endpoints_keep_the_security_middlewares_headers(settings):
    settings.SECURE_CONTENT_TYPE_NOSNIFF = True
    settings.SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
    _, token = integration_create(service=make_service("Checkout"), kind="pagerduty")
    response = Client().post(
        f"/integrations/{token}/pagerduty", trigger("a"), content_type="application/json"
    )
    assert response.status_code == 202
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    settings.SECURE_SSL_REDIRECT = True  # production: plain HTTP goes to HTTPS first
    response = Client().post(
        f"/integrations/{token}/pagerduty", trigger("b"), content_type="application/json"
    )
    assert response.status_code == 301 and response["Location"].startswith("https://")
    assert not Alert.objects.filter(dedup_key="b").exists()


def test_a_heartbeat_ping_and_an_unknown_path_under_the_prefix_answer_as_before():
    _, token = heartbeat_create(
        service=make_service("Backups"), name="Nightly backup", interval_minutes=60, grace_minutes=5
    )
    assert Client().get(f"/integrations/{token}/heartbeat").content == b"OK\n"
    assert Client().get("/integrations/nothing-here").status_code == 404
    assert Client().get("/integrations/").status_code == 404


def test_machine_endpoints_still_refuse_a_host_not_allowed_and_keep_the_framing_header(settings):
    settings.ALLOWED_HOSTS = ["firebreak.example.test"]
    _, token = integration_create(service=make_service("Checkout"), kind="pagerduty")
    url = f"/integrations/{token}/pagerduty"
    elsewhere = Client(HTTP_HOST="attacker.example.test")
    assert elsewhere.post(url, trigger("a"), content_type="application/json").status_code == 400
    assert not Alert.objects.exists()
    ours = Client(HTTP_HOST="firebreak.example.test")
    response = ours.post(url, trigger("b"), content_type="application/json")
    assert response.status_code == 202
    assert response["X-Frame-Options"] == "DENY"
    assert int(response["Content-Length"]) == len(response.content)


def test_a_view_wrapping_a_machine_endpoint_is_not_one(rf):
    from django.contrib.auth.decorators import login_required

    from incidents.alerting import intake
    from incidents.alerting.middleware import _MACHINE_VIEWS

    assert intake.generic_webhook in _MACHINE_VIEWS
    assert login_required(intake.generic_webhook) not in _MACHINE_VIEWS
