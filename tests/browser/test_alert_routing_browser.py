"""A responder sets up alert routing and maintenance on a service's page in a real
browser: field errors, reordering, a window typed in their own zone."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from incidents.alerting.services import integration_create
from incidents.models import AlertRule, MaintenanceWindow
from tests.factories import make_service, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def serious_accessibility_violations(page) -> list:
    """axe-core (bundled by axe-playwright-python) run in the page."""
    from axe_playwright_python.sync_playwright import Axe

    return [
        (v["id"], [n["target"] for n in v["nodes"]][:3])
        for v in Axe().run(page).response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_rules_and_maintenance_on_the_service_page(page_as, live_server, screenshot):
    service = make_service("Checkout")
    integration_create(service=service, kind="alertmanager", name="Prometheus")
    mia = make_user("mia", first_name="Mia", time_zone="Europe/Berlin")
    page = page_as(mia)
    page.goto(f"{live_server.url}/services/{service.slug}/")
    expect(page.locator("#rule-default")).to_contain_text("Every alert (no rules yet)")

    page.get_by_role("link", name="Add a routing rule").click()
    page.get_by_label("Name").fill("Database pages")
    page.get_by_label("Matches alerts where").fill("labels.team = db\nlabels.instance =~ (db+)+")
    page.get_by_label("Incident severity").select_option(label="SEV2 · Major")
    page.get_by_label("Alerts within a time window join one incident").check()
    page.get_by_label("Window (minutes)").fill("15")
    page.get_by_role("button", name="Save rule").click()
    expect(page.locator(".field-error")).to_contain_text("Line 2: the regular expression repeats")
    screenshot(page, "alert-rule-form-error")
    assert serious_accessibility_violations(page) == []
    page.get_by_label("Matches alerts where").fill("labels.team = db\nlabels.instance =~ db-[0-9]+")
    page.get_by_role("button", name="Save rule").click()
    expect(page.locator("#rule-default")).to_contain_text("Alerts no rule matches")

    page.get_by_role("link", name="Add a routing rule").click()
    page.get_by_label("Name").fill("Staging is quiet")
    page.get_by_label("Matches alerts where").fill("labels.env = staging")
    page.get_by_label("Record the alert only").check()
    page.get_by_role("button", name="Save rule").click()
    page.get_by_role("button", name="Move up rule 2").click()
    expect(page.locator("#routing-rules > li").first).to_contain_text("1. Staging is quiet")
    assert list(AlertRule.objects.order_by("position").values_list("name", flat=True)) == [
        "Staging is quiet",
        "Database pages",
    ]

    page.get_by_role("link", name="Schedule maintenance").click()
    expect(page.get_by_text("Starts (Europe/Berlin)")).to_be_visible()
    assert serious_accessibility_violations(page) == []
    page.get_by_label("Reason").fill("Postgres 16 upgrade")
    page.get_by_role("button", name="Schedule").click()
    expect(page.locator(".maintenance-now")).to_contain_text("Postgres 16 upgrade")
    expect(page.locator("#maintenance-windows")).to_contain_text("CET")
    assert MaintenanceWindow.objects.get().created_by == mia
    page.locator("#routing-h").scroll_into_view_if_needed()
    screenshot(page, "service-routing-and-maintenance")
    assert serious_accessibility_violations(page) == []
    assert not page.js_errors and not page.server_errors
