"""Incident command as a person in a browser sees it: declare, note, status, watch, no-JS."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from incidents.models import Incident, IncidentStatus, TimelineEntry

# live_server makes every test transactional; serialized_rollback brings back the rows the
# data migrations wrote (severities, groups) after each flush. See tests/browser/conftest.py.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

MARKER = "window.__firebreakNoReload"


def incident_url(incident) -> str:
    return f"/incidents/{incident.pk}/"


def mark_document(page) -> list[str]:
    """Leave a marker in this document and record later main-frame navigations.

    A full page load would drop the marker and add a navigation, so both staying untouched
    proves the page updated in place.
    """
    page.evaluate(f"{MARKER} = 'same-document'")
    navigations: list[str] = []
    page.on(
        "framenavigated",
        lambda frame: navigations.append(frame.url) if frame == page.main_frame else None,
    )
    return navigations


def assert_not_reloaded(page, navigations: list[str]) -> None:
    assert page.evaluate(MARKER) == "same-document", "the page was reloaded"
    assert navigations == [], f"the page navigated: {navigations}"


def assert_healthy(page) -> None:
    assert page.js_errors == [], f"JavaScript errors: {page.js_errors}"
    assert page.server_errors == [], f"server errors: {page.server_errors}"


def timeline_entry(page, text: str):
    return page.locator("ol#timeline-entries > li.entry").filter(has_text=text)


def sidebar_button(page, label: str):
    return page.locator("#incident-sidebar").get_by_role("button", name=label, exact=True)


def test_declare_incident_through_the_form(page_as, commander, make_service, screenshot):
    make_service("Checkout")
    make_service("Payments API")
    make_service("Search")
    page = page_as(commander)

    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("All clear")
    screenshot(page, "01-home-all-clear")

    page.get_by_role("banner").get_by_role("link", name="Declare incident").click()
    expect(page).to_have_url(re.compile(r"/incidents/declare/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Declare an incident")
    screenshot(page, "02-declare-form")

    page.get_by_label("Title").fill("Card payments failing at checkout")
    page.get_by_role("radio", name=re.compile(r"^SEV1\b")).check()
    page.get_by_role("radio", name="Customer report").check()
    page.get_by_role("checkbox", name="Checkout", exact=True).check()
    page.get_by_role("checkbox", name="Payments API", exact=True).check()
    page.get_by_role("button", name="Declare incident").click()

    expect(page).to_have_url(re.compile(r"/incidents/\d+/$"))
    header = page.locator("#incident-header")
    expect(header.get_by_role("heading", level=1)).to_have_text("Card payments failing at checkout")
    expect(header.locator(".pill.status-investigating")).to_have_text("Investigating")
    expect(header.locator(".pill.severity")).to_have_text("SEV1 · Critical")
    expect(header.locator(".services-line")).to_have_text("Affected: Checkout, Payments API")
    expect(page.locator("#incident-sidebar .current").first).to_contain_text("Investigating")
    expect(page.locator("ol#timeline-entries > li.entry-declared")).to_have_count(1)
    screenshot(page, "03-incident-declared")

    pk = int(re.search(r"/incidents/(\d+)/$", page.url).group(1))
    incident = Incident.objects.get(pk=pk)
    assert incident.title == "Card payments failing at checkout"
    assert incident.severity.name == "SEV1"
    assert incident.detection_source == "customer_report"
    assert sorted(incident.services.values_list("name", flat=True)) == [
        "Checkout",
        "Payments API",
    ]
    assert incident.declared_by == commander

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Incidents").click()
    row = page.locator(".incident-table tbody tr").filter(has_text="Card payments failing")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Investigating")
    screenshot(page, "04-incident-list")

    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("1 open incident")
    expect(page.locator(".incident-card")).to_contain_text("Card payments failing at checkout")
    screenshot(page, "05-home-one-open")
    assert_healthy(page)


def test_declare_with_empty_title_shows_error_next_to_the_field(
    page_as, commander, make_service, screenshot
):
    make_service("Checkout")
    page = page_as(commander)
    page.goto("/incidents/declare/")
    page.get_by_role("radio", name=re.compile(r"^SEV2\b")).check()
    page.get_by_role("checkbox", name="Checkout", exact=True).check()
    # The form is novalidate: the server, not the browser, answers an empty title.
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Declare incident").click()
    assert navigation.value.status == 422
    expect(page).to_have_url(re.compile(r"/incidents/declare/$"))

    title_field = page.locator(".field").filter(has=page.locator("#id_title"))
    expect(title_field.locator(".field-error")).to_have_text("Give the incident a title.")
    expect(title_field.locator(".field-error")).to_be_visible()
    expect(title_field).to_have_class(re.compile(r"\bfield-invalid\b"))
    expect(page.locator("#id_title")).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field-error")).to_have_count(1)
    # What the person already chose survives the error.
    expect(page.get_by_role("radio", name=re.compile(r"^SEV2\b"))).to_be_checked()
    expect(page.get_by_role("checkbox", name="Checkout", exact=True)).to_be_checked()
    screenshot(page, "06-declare-errors")
    assert not Incident.objects.exists()
    assert_healthy(page)


def test_note_appears_in_timeline_without_reload(page_as, commander, incident, screenshot):
    page = page_as(commander)
    page.goto(incident_url(incident))
    entries = page.locator("ol#timeline-entries > li.entry")
    expect(entries.first).to_be_visible()
    before = entries.count()
    navigations = mark_document(page)

    page.get_by_label(re.compile("Add to the timeline")).fill(
        "Rolled back **deploy 4512**; error rate falling."
    )
    page.get_by_role("button", name="Add note").click()

    note = timeline_entry(page, "Rolled back deploy 4512")
    expect(note).to_have_count(1)
    expect(entries.first).to_contain_text("Rolled back deploy 4512")  # newest first
    expect(note.locator("strong")).to_have_text("deploy 4512")  # Markdown rendered
    expect(note.locator(".entry-actor")).to_have_text("Ivy")
    expect(page.locator("#id_note_body")).to_have_value("")  # composer reset for the next note
    expect(entries).to_have_count(before + 1)

    # Ctrl+Enter in the composer submits too.
    page.locator("#id_note_body").fill("Second note by keyboard")
    page.locator("#id_note_body").press("Control+Enter")
    expect(entries.first).to_contain_text("Second note by keyboard")
    expect(entries).to_have_count(before + 2)

    # Let a few more polls run: nothing is inserted twice.
    page.wait_for_timeout(2_200)
    expect(timeline_entry(page, "Rolled back deploy 4512")).to_have_count(1)
    expect(entries).to_have_count(before + 2)
    assert_not_reloaded(page, navigations)
    screenshot(page, "07-incident-after-notes")

    bodies = list(
        TimelineEntry.objects.filter(incident=incident, kind="note").values_list("body", flat=True)
    )
    assert sorted(bodies) == [
        "Rolled back **deploy 4512**; error rate falling.",
        "Second note by keyboard",
    ]
    assert_healthy(page)


def test_status_changes_update_header_in_place(page_as, commander, incident, screenshot):
    page = page_as(commander)
    page.goto(incident_url(incident))
    pill = page.locator("#incident-header .pill").first
    expect(pill).to_have_text("Investigating")
    expect(pill).to_have_class(re.compile(r"\bstatus-investigating\b"))
    navigations = mark_document(page)

    sidebar_button(page, "Cause identified").click()
    expect(pill).to_have_text("Identified")
    expect(pill).to_have_class(re.compile(r"\bstatus-identified\b"))
    expect(page.locator("#incident-sidebar .current").first).to_contain_text("Identified")
    expect(sidebar_button(page, "Cause identified")).to_have_count(0)  # no move to where it is
    expect(page.locator("ol#timeline-entries > li.entry-status").first).to_contain_text(
        "Identified"
    )
    screenshot(page, "08-incident-identified")

    sidebar_button(page, "Resolve").click()
    expect(pill).to_have_text("Resolved")
    expect(pill).to_have_class(re.compile(r"\bstatus-resolved\b"))
    expect(sidebar_button(page, "Reopen")).to_be_visible()
    expect(page.locator("ol#timeline-entries > li.entry-status").first).to_contain_text("Resolved")
    assert_not_reloaded(page, navigations)
    screenshot(page, "09-incident-resolved")

    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED
    assert incident.resolved_at is not None
    assert_healthy(page)


def test_second_browser_sees_note_and_status_without_reload(
    page_as, commander, responder, incident, screenshot
):
    # The watcher signs in through the login form, in a separate browser context.
    watcher = page_as()
    watcher.goto(f"/accounts/login/?next={incident_url(incident)}")
    screenshot(watcher, "10-login")
    watcher.get_by_label("Username").fill(responder.username)
    watcher.get_by_label("Password").fill("pw")
    watcher.get_by_role("button", name="Sign in").click()
    expect(watcher).to_have_url(re.compile(re.escape(incident_url(incident)) + "$"))
    expect(watcher.locator("#incident-header h1")).to_have_text(incident.title)
    navigations = mark_document(watcher)

    author = page_as(commander)
    author.goto(incident_url(incident))
    author.get_by_label(re.compile("Add to the timeline")).fill("Watcher, payments are back")
    author.get_by_role("button", name="Add note").click()
    expect(timeline_entry(author, "Watcher, payments are back")).to_have_count(1)

    # Polling every second: the watcher sees it within a few seconds, newest first.
    note = timeline_entry(watcher, "Watcher, payments are back")
    expect(note).to_have_count(1, timeout=5_000)
    expect(watcher.locator("ol#timeline-entries > li.entry").first).to_contain_text(
        "Watcher, payments are back"
    )
    expect(note.locator(".entry-actor")).to_have_text("Ivy")

    # A status change reaches the watcher's header and sidebar too.
    sidebar_button(author, "Mitigated, monitoring").click()
    expect(author.locator("#incident-header .pill").first).to_have_text("Monitoring")
    watcher_pill = watcher.locator("#incident-header .pill").first
    expect(watcher_pill).to_have_text("Monitoring", timeout=5_000)
    expect(watcher_pill).to_have_class(re.compile(r"\bstatus-monitoring\b"))
    expect(watcher.locator("#incident-sidebar .current").first).to_contain_text("Monitoring")
    assert_not_reloaded(watcher, navigations)
    screenshot(watcher, "11-incident-watcher")
    assert_healthy(author)
    assert_healthy(watcher)


def test_incident_page_works_without_javascript(page_as, commander, incident, screenshot):
    page = page_as(commander, java_script_enabled=False)
    page.goto(incident_url(incident))
    expect(page.locator("#incident-header .pill").first).to_have_text("Investigating")

    page.get_by_label(re.compile("Add to the timeline")).fill("Posted without JavaScript")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Add note").click()
    assert navigation.value.ok  # followed the redirect back to the page
    expect(page).to_have_url(re.compile(re.escape(incident_url(incident)) + "$"))
    expect(page.locator("ol#timeline-entries > li.entry").first).to_contain_text(
        "Posted without JavaScript"
    )

    with page.expect_navigation():
        sidebar_button(page, "Cause identified").click()
    expect(page.locator("#incident-header .pill").first).to_have_text("Identified")
    expect(page.locator("#incident-header .pill.status-identified")).to_have_count(1)

    with page.expect_navigation():
        sidebar_button(page, "Resolve").click()
    expect(page.locator("#incident-header .pill").first).to_have_text("Resolved")
    screenshot(page, "12-incident-no-javascript")

    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED
    assert TimelineEntry.objects.filter(
        incident=incident, kind="note", body="Posted without JavaScript"
    ).exists()
    assert page.server_errors == []


def test_half_typed_stakeholder_update_survives_a_colleagues_note(
    page_as, commander, responder, incident
):
    from incidents import services

    page = page_as(commander)
    page.goto(incident_url(incident))
    draft = page.locator("#id_update_body")
    draft.fill("Card payments degraded for 20% of customers; next update 18:00.")
    # A colleague adds a note; the commander's poll picks it up within a second or two.
    services.note_add(incident=incident, author=responder, body="Colleague's finding")
    expect(timeline_entry(page, "Colleague's finding")).to_have_count(1)
    expect(page.locator("#id_update_body")).to_have_value(
        "Card payments degraded for 20% of customers; next update 18:00.", timeout=1_000
    )
