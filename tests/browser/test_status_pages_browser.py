"""Status pages as readers and the communications lead see them, in a real browser."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from incidents.models import IncidentRole
from incidents.services import role_assign
from incidents.statuspages.models import (
    ComponentStatus,
    ComponentStatusInterval,
    StatusPageVisibility,
    StatusUpdateTemplate,
)
from incidents.statuspages.services import component_status_set, status_update_publish
from tests.factories import make_incident, make_service, make_team, make_user
from tests.statuspages.conftest import make_component, make_status_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PHONE = {"width": 390, "height": 844}


def assert_no_serious_accessibility_violations(page, context: str | None = None) -> None:
    """axe-core (bundled by axe-playwright-python) injected into the page."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, context=context)
    serious = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], serious


def public_page_with_history(commander):
    checkout = make_service("Checkout")
    page = make_status_page("acme", title="Acme status", time_zone="Europe/London")
    page.description = "Live status of the Acme shop."
    page.save()
    web = make_component(page, "Website", group="Shop")
    pay = make_component(page, "Checkout", group="Shop", services=[checkout])
    api = make_component(page, "Public API", group="Platform")
    long_ago = timezone.now() - timedelta(days=120)
    type(web).objects.filter(page=page).update(created_at=long_ago)
    # Two hours in the morning of one day, in the page's zone: started at "now" it crossed
    # midnight when the suite ran late in the evening, and marked two days.
    morning = timezone.localtime(timezone.now(), ZoneInfo("Europe/London")).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    start = morning - timedelta(days=20)
    ComponentStatusInterval.objects.create(
        component=api,
        status=ComponentStatus.MAJOR_OUTAGE,
        started_at=start,
        ended_at=start + timedelta(hours=2),
    )
    ComponentStatusInterval.objects.create(
        component=api, status=ComponentStatus.OPERATIONAL, started_at=start + timedelta(hours=2)
    )
    incident = make_incident(
        declared_by=commander, title="PSP 502s on EU cards", services_=[checkout]
    )
    status_update_publish(
        incident=incident,
        pages=[page],
        status="identified",
        title="Card payments failing for some customers",
        message="We found the cause and are **moving traffic** to a second provider.",
        actor=commander,
        component_statuses={pay.pk: ComponentStatus.PARTIAL_OUTAGE},
    )
    component_status_set(
        component=web, status=ComponentStatus.DEGRADED_PERFORMANCE, actor=commander
    )
    old = make_incident(declared_by=commander, title="Mail backlog")
    for status in ("investigating", "resolved"):
        status_update_publish(
            incident=old,
            pages=[page],
            status=status,
            title="Emails arriving late",
            message=f"Emails: {status}.",
            actor=commander,
        )
    return page, incident


def test_a_public_page_reads_well_without_javascript_on_a_desktop_and_a_phone(
    page_as, commander, screenshot
):
    public_page_with_history(commander)
    reader = page_as(None, java_script_enabled=False)
    reader.goto("/status/acme/")
    expect(reader.get_by_text("Partial system outage")).to_be_visible()
    expect(
        reader.get_by_role("heading", name="Card payments failing for some customers")
    ).to_be_visible()
    expect(reader.get_by_text("moving traffic")).to_be_visible()
    expect(reader.get_by_text("PSP 502s on EU cards")).to_have_count(0)
    # Every day of the bars is labelled, not only coloured.
    api = reader.locator(".sp-component", has_text="Public API")
    days = api.locator(".sp-days li")
    expect(days).to_have_count(90)
    assert all(title for title in days.evaluate_all("els => els.map(e => e.title)"))
    expect(api.locator(".sp-days li[title$='major outage']")).to_have_count(1)
    # The same, in words, for screen readers: which days had which problem.
    expect(api.locator(".sr-only", has_text="major outage")).to_have_count(1)
    expect(reader.get_by_text("Degraded performance").first).to_be_visible()
    screenshot(reader, "status-public-desktop")
    reader.set_viewport_size(PHONE)
    reader.reload()
    # Nothing wider than the phone's screen.
    assert reader.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(reader, "status-public-phone")
    reader.goto("/status/acme/history/")
    expect(reader.get_by_role("heading", name="Emails arriving late")).to_be_visible()
    screenshot(reader, "status-history-phone")
    assert reader.server_errors == []

    checker = page_as(None)
    for path in ("/status/acme/", "/status/acme/history/"):
        checker.goto(path)
        assert_no_serious_accessibility_violations(checker)
        checker.set_viewport_size({"width": 1280, "height": 900})
    checker.goto("/status/acme/history/")
    screenshot(checker, "status-history-desktop")


def test_an_internal_page_is_refused_to_outsiders(page_as, screenshot):
    payments = make_team("Payments")
    member = make_user("pam", first_name="Pam", groups=("Viewers",))
    payments.memberships.create(user=member)
    outsider = make_user("otto", first_name="Otto", groups=("Viewers",))
    page = make_status_page(
        "payments-team",
        title="Payments team status",
        visibility=StatusPageVisibility.RESTRICTED,
        teams=[payments],
    )
    make_component(page, "Card authorisation")

    anonymous = page_as(None)
    anonymous.goto("/status/payments-team/")
    expect(anonymous).to_have_url(re.compile(r"/accounts/login/\?next="))

    stranger = page_as(outsider)
    response = stranger.goto("/status/payments-team/")
    assert response.status == 404
    expect(stranger.get_by_text("Payments team status")).to_have_count(0)
    screenshot(stranger, "status-internal-refused")

    colleague = page_as(member)
    colleague.goto("/status/payments-team/")
    expect(colleague.get_by_role("heading", name="Payments team status")).to_be_visible()
    expect(colleague.get_by_text("Internal: Payments only")).to_be_visible()
    assert_no_serious_accessibility_violations(colleague)
    screenshot(colleague, "status-internal-desktop")
    colleague.set_viewport_size(PHONE)
    screenshot(colleague, "status-internal-phone")


def test_the_communications_lead_previews_and_publishes_from_the_incident_page(
    page_as, commander, screenshot
):
    checkout = make_service("Checkout")
    page = make_status_page("acme", title="Acme status")
    component = make_component(page, "Checkout", services=[checkout])
    make_component(page, "Search")
    StatusUpdateTemplate.objects.create(
        name="Investigating", status="investigating", message="We are looking into it."
    )
    incident = make_incident(declared_by=commander, title="PSP 502s", services_=[checkout])
    comms = make_user("cora", first_name="Cora", groups=("Responders",))
    role_assign(
        incident=incident, actor=commander, user=comms, role=IncidentRole.COMMUNICATIONS_LEAD
    )

    reader = page_as(None)
    first = reader.goto("/status/acme/")
    expect(reader.get_by_text("All systems operational")).to_be_visible()

    lead = page_as(comms)
    lead.goto(f"/incidents/{incident.pk}/")
    lead.evaluate("window.__noReload = true")
    panel = lead.locator("#status-panel")
    panel.get_by_text("Component statuses", exact=True).click()
    panel.get_by_label("Checkout").select_option("partial_outage")
    panel.get_by_role("button", name="Set component statuses").click()
    expect(panel.get_by_text("Updated Checkout.")).to_be_visible()

    panel.get_by_text("Public update", exact=True).click()
    panel.get_by_role("button", name="Use template").click()
    expect(panel.get_by_label("Message")).to_have_value("We are looking into it.")
    expect(
        panel.get_by_role("checkbox", name=re.compile("Acme status"))
    ).to_be_checked()  # its component is linked
    panel.get_by_label("Public title").fill("Card payments failing")
    panel.get_by_label("Message").fill("Some card payments fail. We are **on it**.")
    panel.get_by_role("button", name="Preview").click()
    preview = panel.get_by_role("region", name="Preview")
    expect(preview.locator("strong", has_text="on it")).to_be_visible()
    screenshot(lead, "status-incident-panel-preview")
    panel.get_by_role("button", name="Publish").click()
    expect(panel.get_by_text("Published to Acme status.")).to_be_visible()
    # On the timeline without a reload.
    expect(lead.locator("#timeline").get_by_text("Public update (investigating)")).to_be_visible()
    assert lead.evaluate("window.__noReload") is True
    screenshot(lead, "status-incident-panel-published")
    assert_no_serious_accessibility_violations(lead, context="#status-panel")
    assert lead.server_errors == [] and lead.js_errors == []

    # The reader's next look shows it at once, and a look after that comes from the cache.
    second = reader.goto("/status/acme/")
    expect(reader.get_by_role("heading", name="Card payments failing")).to_be_visible()
    expect(reader.get_by_text("Partial outage").first).to_be_visible()
    assert second.headers["etag"] != first.headers["etag"]
    third = reader.goto("/status/acme/")
    assert third.headers["etag"] == second.headers["etag"]
    component.refresh_from_db()
    assert component.status == "partial_outage"
    conditional = reader.request.get(
        "/status/acme/", headers={"If-None-Match": second.headers["etag"]}
    )
    assert conditional.status == 304
