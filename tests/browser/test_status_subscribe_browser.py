"""Subscribing from the public status page in a real browser, following the emails' links,
and the managers' maintenance and webhook pages. Screenshots in test-artifacts/screenshots."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from incidents.models import PublicStatus, StatusSubscriber
from incidents.statuspages.maintenance import maintenance_schedule
from incidents.statuspages.services import status_update_publish
from tests.factories import make_incident, make_user
from tests.statuspages.conftest import make_component, make_status_page

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
LINK = re.compile(r"https?://\S+")


def no_serious_accessibility_violations(page) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    serious = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], serious


def link_in(message, fragment: str) -> str:
    text = message.get_body(preferencelist=("plain",)).get_content()
    return next(url for url in LINK.findall(text) if fragment in url)


def test_subscribe_confirm_receive_and_unsubscribe_in_a_browser(
    page_as, live_server, smtp_inbox, settings, screenshot
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp_inbox.port
    settings.SITE_URL = live_server.url
    status_page = make_status_page("acme", title="Acme status")
    api = make_component(status_page, "API", group="Platform")
    make_component(status_page, "Dashboard", group="Platform")
    now = timezone.now()
    maintenance_schedule(
        page=status_page,
        title="Database upgrade",
        message="Writes pause for a few minutes.",
        components=[api],
        starts_at=now + timedelta(days=2),
        ends_at=now + timedelta(days=2, hours=1),
        actor=None,
    )

    browser = page_as(None)
    browser.goto("/status/acme/")
    expect(browser.get_by_role("heading", name="Scheduled maintenance")).to_be_visible()
    expect(browser.get_by_text("Affects API")).to_be_visible()
    subscribe_box = browser.locator(".sp-subscribe")
    expect(subscribe_box.get_by_role("heading", name="Get updates")).to_be_visible()
    screenshot(browser, "status-subscribe-public-page")
    no_serious_accessibility_violations(browser)

    browser.get_by_label("Email address").fill("ann@example.test")
    browser.get_by_role("button", name="Subscribe").click()
    expect(browser.get_by_role("heading", name="Check your email")).to_be_visible()
    screenshot(browser, "status-subscribe-check-your-email")
    no_serious_accessibility_violations(browser)

    [confirmation] = smtp_inbox.wait_for(1)
    browser.set_content(confirmation.get_body(preferencelist=("html",)).get_content())
    expect(browser.get_by_role("link", name="Confirm subscription")).to_be_visible()
    screenshot(browser, "status-subscribe-email-confirmation")

    browser.goto(link_in(confirmation, "/confirm/"))
    expect(browser.get_by_role("heading", name="Confirm your subscription")).to_be_visible()
    screenshot(browser, "status-subscribe-confirm-page")
    no_serious_accessibility_violations(browser)
    browser.get_by_role("button", name="Confirm subscription").click()
    expect(browser.get_by_role("heading", name="You’re subscribed")).to_be_visible()
    screenshot(browser, "status-subscribe-confirmed")
    assert StatusSubscriber.objects.get().is_active

    commander = make_user("ivy")
    incident = make_incident(declared_by=commander, title="Internal: db01 disk full")
    status_update_publish(
        incident=incident,
        pages=[status_page],
        status=PublicStatus.IDENTIFIED,
        message="Some requests to the **API** fail. We have found the cause and are fixing it.",
        actor=commander,
        title="API errors",
    )
    received = smtp_inbox.wait_for(2)
    update = received[1]
    assert "db01" not in update.as_string()
    browser.set_content(update.get_body(preferencelist=("html",)).get_content())
    expect(browser.get_by_role("heading", name="API errors")).to_be_visible()
    screenshot(browser, "status-subscribe-email-update")

    browser.goto(link_in(update, "/unsubscribe/"))
    expect(browser.get_by_role("heading", name="Unsubscribe")).to_be_visible()
    screenshot(browser, "status-subscribe-unsubscribe-page")
    browser.get_by_role("button", name="Unsubscribe").click()
    expect(browser.get_by_role("heading", name="You’re unsubscribed")).to_be_visible()
    screenshot(browser, "status-subscribe-unsubscribed")
    assert StatusSubscriber.objects.get().unsubscribed_at is not None
    assert browser.js_errors == [] and browser.server_errors == []


def test_choosing_components_and_the_rate_limit_page(page_as, settings, screenshot):
    settings.STATUS_SUBSCRIBE_PER_IP = 1
    status_page = make_status_page("acme", title="Acme status")
    make_component(status_page, "API", group="Platform")
    dashboard = make_component(status_page, "Dashboard", group="Platform")

    browser = page_as(None, java_script_enabled=False)
    browser.goto("/status/acme/")
    browser.get_by_role("link", name="Choose components").click()
    expect(browser.get_by_role("heading", name="Get updates by email")).to_be_visible()
    browser.get_by_label("Email address").fill("not an address")
    browser.get_by_label("Platform · Dashboard").check()
    screenshot(browser, "status-subscribe-choose-components")
    browser.get_by_role("button", name="Subscribe").click()
    expect(browser.get_by_text("Enter a valid email address.")).to_be_visible()
    screenshot(browser, "status-subscribe-form-error")

    browser.get_by_label("Email address").fill("bo@example.test")
    browser.get_by_role("button", name="Subscribe").click()
    expect(browser.get_by_role("heading", name="Check your email")).to_be_visible()
    assert StatusSubscriber.objects.get().pending_component_ids == [dashboard.pk]

    browser.go_back()
    browser.get_by_label("Email address").fill("cy@example.test")
    browser.get_by_role("button", name="Subscribe").click()
    expect(browser.get_by_role("heading", name="Too many requests")).to_be_visible()
    screenshot(browser, "status-subscribe-rate-limited")


def test_managers_schedule_maintenance_and_add_a_webhook(page_as, screenshot):
    admin = make_user("ada", is_staff=True, is_superuser=True, time_zone="Europe/London")
    status_page = make_status_page("acme", title="Acme status")
    make_component(status_page, "API", group="Platform")

    browser = page_as(admin)
    browser.goto("/status/acme/maintenance/")
    expect(browser.get_by_text("Type times in your zone, Europe/London")).to_be_visible()
    start = (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%dT10:00")
    end = start.replace("T10:00", "T11:30")
    browser.get_by_label("Title").fill("Network maintenance")
    browser.get_by_label("Message").fill("Short connection blips.")
    browser.get_by_label("Platform · API").check()
    browser.get_by_label("Starts").fill(start)
    browser.get_by_label("Ends").fill(end)
    browser.get_by_role("button", name="Schedule").click()
    row = browser.get_by_role("row", name=re.compile("Network maintenance"))
    expect(row).to_contain_text("Scheduled")
    london = datetime.fromisoformat(start).replace(tzinfo=ZoneInfo("Europe/London"))
    expect(row).to_contain_text(f"10:00 {london.tzname()}")
    screenshot(browser, "status-maintenance-manage")
    no_serious_accessibility_violations(browser)

    browser.get_by_role("link", name="Webhook subscribers").click()
    browser.get_by_label("URL").fill("ftp://example.test/hook")
    browser.get_by_role("button", name="Add webhook").click()
    expect(browser.get_by_text("Use an http:// or https:// address.")).to_be_visible()
    browser.get_by_label("URL").fill("https://hooks.example.test/status")
    browser.get_by_label("Label").fill("Ops bot")
    browser.get_by_role("button", name="Add webhook").click()
    expect(browser.get_by_role("row", name=re.compile("Ops bot"))).to_be_visible()
    screenshot(browser, "status-webhooks-manage")
    no_serious_accessibility_violations(browser)
    assert browser.js_errors == [] and browser.server_errors == []
