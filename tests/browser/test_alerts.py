"""Alerts as a responder meets them: adds an integration on the service page (its URL shown
once, with a copy button), a monitoring tool posts to it, and the alert is on the alerts
page and on the incident it opened."""

from __future__ import annotations

import json
import urllib.request

import pytest
from playwright.sync_api import expect

from incidents.models import Incident, Integration
from tests.factories import make_service, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_a_responder_wires_up_an_integration_and_sees_the_alert(page_as, live_server, screenshot):
    raj = make_user("raj", first_name="Raj")
    service = make_service("Checkout")
    page = page_as(raj)
    page.goto(f"/services/{service.slug}/")
    page.get_by_label("Name").fill("Prometheus")
    page.get_by_label("Kind").select_option("pagerduty")
    page.get_by_role("button", name="Add integration").click()
    url_box = page.get_by_label("Integration URL")
    expect(url_box).to_be_visible()
    url = url_box.input_value()
    assert url.startswith(live_server.url + "/integrations/") and url.endswith("/pagerduty")
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    screenshot(page, "alerts-integration-added")
    page.reload()  # shows nothing again and creates nothing again
    expect(page.get_by_label("Integration URL")).to_have_count(0)
    assert Integration.objects.count() == 1
    page.once("dialog", lambda dialog: dialog.accept())  # "Rotate this URL?"
    page.get_by_role("button", name="Rotate URL").click()
    rotated = page.get_by_label("Integration URL")
    expect(rotated).to_be_visible()
    old_url, url = url, rotated.input_value()
    assert url != old_url
    expect(page.get_by_role("status").first).to_contain_text("the old one no longer works")

    body = json.dumps(
        {
            "event_action": "trigger",
            "dedup_key": "cart-5xx",
            "payload": {"summary": "Cart 5xx above 5%", "source": "prom", "severity": "critical"},
        }
    ).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        assert json.load(response)["dedup_key"] == "cart-5xx"

    page.goto("/alerts/")
    expect(page.get_by_role("cell", name="Cart 5xx above 5%")).to_be_visible()
    screenshot(page, "alerts-list")
    incident = Incident.objects.get()
    page.goto(f"/incidents/{incident.pk}/")
    expect(page.locator("#alerts-h")).to_be_visible()
    expect(page.locator("#timeline")).to_contain_text("opened this incident")
    screenshot(page, "alerts-incident")

    # Reloading the service page does not show the URL again.
    page.goto(f"/services/{service.slug}/")
    expect(page.get_by_label("Integration URL")).to_have_count(0)
    assert not page.js_errors and not page.server_errors
