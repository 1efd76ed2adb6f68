"""The alerts page in a real browser: filter and search, acknowledge, declare an incident
from an alert, a second window seeing a new alert arrive, and the heartbeat section."""

from __future__ import annotations

import re
import urllib.request

import pytest
from playwright.sync_api import expect

from incidents.alerting.heartbeats import heartbeat_create
from incidents.alerting.parsers import TRIGGER, AlertEvent
from incidents.alerting.services import alerts_ingest, integration_create
from incidents.models import Alert, Incident
from tests.factories import make_service, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def assert_no_serious_accessibility_violations(page) -> None:
    """axe-core (bundled by axe-playwright-python) injected into the page."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    serious = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], serious


def fire(integration, key, title, *, severity="warning", labels=None, **kw):
    alerts_ingest(
        integration=integration,
        events=[
            AlertEvent(
                action=TRIGGER,
                dedup_key=key,
                title=title,
                severity=severity,
                labels=labels or {},
                payload={"fingerprint": key, "labels": labels or {}},
                **kw,
            )
        ],
    )
    return Alert.objects.get(dedup_key=key)


@pytest.fixture
def feeds():
    checkout = make_service("Checkout")
    search = make_service("Search")
    prom, _ = integration_create(service=checkout, kind="alertmanager", name="Prometheus")
    pingdom, _ = integration_create(service=search, kind="generic", name="Pingdom")
    return prom, pingdom


def row(page, title):
    return page.locator("#alert-results tbody tr", has_text=title)


def test_filter_search_and_acknowledge(page_as, feeds, screenshot):
    prom, pingdom = feeds
    fire(prom, "disk", "Disk 91% full on db-1", labels={"instance": "db-1", "team": "storage"})
    fire(prom, "lat", "Checkout p99 latency above 2s", severity="info")
    fire(pingdom, "down", "search.example.com unreachable", labels={"team": "search"})
    raj = make_user("raj", first_name="Raj", time_zone="Europe/Berlin")
    page = page_as(raj)
    page.goto("/alerts/")
    expect(page.locator("#alert-results tbody tr")).to_have_count(3)
    expect(page.get_by_text("Times in Europe/Berlin")).to_be_visible()
    screenshot(page, "alerts-page")
    assert_no_serious_accessibility_violations(page)

    page.get_by_label("Search title, labels or dedup key").fill("team=search")
    expect(page.locator("#alert-results tbody tr")).to_have_count(1)
    expect(row(page, "search.example.com unreachable")).to_be_visible()
    assert "q=team%3Dsearch" in page.url  # the filtered view is a link one can share

    page.get_by_label("Search title, labels or dedup key").fill("")
    page.get_by_label("Severity").select_option("info")
    expect(page.locator("#alert-results tbody tr")).to_have_count(1)
    expect(row(page, "Checkout p99 latency")).to_be_visible()
    page.get_by_label("Severity").select_option("")
    expect(page.locator("#alert-results tbody tr")).to_have_count(3)

    row(page, "Disk 91% full").get_by_role("checkbox").check()
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_text("1 alert acknowledged.")).to_be_visible()
    expect(row(page, "Disk 91% full").get_by_text("Acknowledged")).to_be_visible()
    assert Alert.objects.get(dedup_key="disk").acknowledged_by == raj
    assert not page.js_errors and not page.server_errors


def test_declare_an_incident_from_an_alert(page_as, feeds, screenshot):
    prom, _ = feeds
    alert = fire(
        prom,
        "cart",
        "Cart service error rate 4%",
        labels={"alertname": "CartErrors", "severity": "warning"},
        annotations={"description": "Errors above 2% for 10 minutes."},
        source="http://prometheus.internal/graph?g0.expr=rate",
    )
    page = page_as(make_user("raj", first_name="Raj"))
    page.goto(f"/alerts/{alert.pk}/")
    expect(page.get_by_role("heading", name="Cart service error rate 4%")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("prometheus.internal"))).to_be_visible()
    expect(page.locator(".payload")).to_contain_text('"fingerprint": "cart"')
    screenshot(page, "alert-detail")
    assert_no_serious_accessibility_violations(page)

    page.get_by_role("link", name="Declare incident…").click()
    expect(page.get_by_label("Title")).to_have_value("Cart service error rate 4%")
    expect(page.get_by_label(re.compile("SEV3"))).to_be_checked()
    page.get_by_label(re.compile("SEV2")).check()
    screenshot(page, "alert-declare")
    assert_no_serious_accessibility_violations(page)
    page.get_by_role("button", name="Declare incident").click()
    incident = Incident.objects.get()
    expect(page).to_have_url(re.compile(rf"/incidents/{incident.pk}/$"))
    expect(page.get_by_role("heading", name="Cart service error rate 4%")).to_be_visible()
    assert incident.severity.name == "SEV2" and incident.alerts.get() == alert
    assert not page.js_errors and not page.server_errors


def test_a_second_window_sees_a_new_alert_arrive(page_as, feeds):
    prom, _ = feeds
    fire(prom, "first", "First alert of the day")
    watcher = page_as(make_user("sid", first_name="Sid", groups=("Viewers",)))
    watcher.goto("/alerts/")
    expect(row(watcher, "First alert of the day")).to_be_visible()
    fire(prom, "second", "Queue depth rising on workers", severity="info")
    expect(row(watcher, "Queue depth rising on workers")).to_be_visible()
    expect(watcher.locator("#alert-results tbody tr")).to_have_count(2)
    assert not watcher.js_errors and not watcher.server_errors


def test_the_page_works_without_javascript(page_as, feeds):
    prom, _ = feeds
    fire(prom, "a", "Plain page alert")
    fire(prom, "b", "Other alert", severity="info")
    page = page_as(make_user("raj", first_name="Raj"), java_script_enabled=False)
    page.goto("/alerts/")
    page.get_by_label("Severity").select_option("info")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#alert-results tbody tr")).to_have_count(1)
    row(page, "Other alert").get_by_role("checkbox").check()
    page.get_by_role("button", name="Resolve").click()
    expect(page.get_by_text("1 alert resolved.")).to_be_visible()
    assert "severity=info" in page.url


def test_heartbeat_section_on_the_service_page(page_as, live_server, screenshot):
    service = make_service("Backups")
    monitor, token = heartbeat_create(service=service, name="Nightly backup", interval_minutes=60)
    urllib.request.urlopen(f"{live_server.url}/integrations/{token}/heartbeat", timeout=10)
    page = page_as(make_user("raj", first_name="Raj"))
    page.goto(f"/services/{service.slug}/")
    page.get_by_label("Job", exact=True).fill("Hourly export")
    page.get_by_label("Pings every (minutes)").fill("15")
    page.get_by_role("button", name="Add heartbeat").click()
    url_box = page.get_by_label("Heartbeat URL")
    expect(url_box).to_be_visible()
    assert url_box.input_value().endswith("/heartbeat")
    expect(page.get_by_label("Integration URL")).to_have_count(0)
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    expect(page.locator("#heartbeat-" + str(monitor.pk))).to_contain_text("Up")
    screenshot(page, "service-heartbeats")
    assert_no_serious_accessibility_violations(page)
    with urllib.request.urlopen(url_box.input_value(), timeout=10) as response:
        assert response.status == 200
    page.goto(f"/services/{service.slug}/")
    expect(page.get_by_label("Heartbeat URL")).to_have_count(0)
    new_row = page.locator("#heartbeats tbody tr", has_text="Hourly export")
    expect(new_row).to_contain_text("Up")
    new_row.get_by_role("button", name=re.compile("Pause")).click()
    expect(page.locator("#heartbeats tbody tr", has_text="Hourly export")).to_contain_text("Paused")
    assert not page.js_errors and not page.server_errors
