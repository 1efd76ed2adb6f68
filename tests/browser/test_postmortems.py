"""Postmortems as a person in a browser sees them: create, edit in place, publish, PDF."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import expect

from incidents import services as incident_services
from postmortems import services
from postmortems.models import ExportState, Postmortem, PostmortemExport
from postmortems.tasks import postmortem_export_render
from tests.factories import make_incident, make_service, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
MARKER = "window.__pmNoReload"


def resolved_incident(commander):
    incident = make_incident(
        declared_by=commander,
        title="Checkout failing for EU customers",
        severity_name="SEV3",
        services_=[make_service("Checkout API"), make_service("Payments gateway")],
    )
    for body in (
        "Error rate on **checkout-api** jumped to 12%.",
        "Rolled back deploy `2025.03.07-2`.",
        "Error rate back under 1% after the rollback.",
    ):
        entry = incident_services.note_add(incident=incident, author=commander, body=body)
        incident_services.timeline_entry_set_pinned(
            incident=incident, actor=commander, entry_id=entry.pk, pinned=True
        )
    incident_services.incident_transition(
        incident=incident, actor=commander, to_status="monitoring"
    )
    incident_services.incident_transition(incident=incident, actor=commander, to_status="resolved")
    return incident


def play_the_worker() -> None:
    """Render what a Celery worker would (no broker consumer runs beside the live server)."""
    for export_id in PostmortemExport.objects.filter(state=ExportState.PENDING).values_list(
        "pk", flat=True
    ):
        postmortem_export_render(export_id)


def test_create_edit_in_place_publish_and_download_the_pdf(
    page_as, commander, screenshot, tmp_path, monkeypatch
):
    # The render is queued for a worker; this test plays that worker, so the page's
    # progress state is seen before the download appears (tasks may otherwise run eagerly).
    monkeypatch.setattr(postmortem_export_render, "delay", lambda export_id: None)
    reviewer = make_user("rita", first_name="Rita", last_name="Reviewer")
    incident = resolved_incident(commander)
    page = page_as(commander)
    page.goto(f"/incidents/{incident.pk}/")
    if page.locator("#postmortem-panel").count() == 0:
        # Until the incident sidebar includes the panel tag, load it the way htmx would.
        page.evaluate(
            "url => htmx.ajax('GET', url, {target: 'main', swap: 'afterbegin'})",
            f"/postmortems/incident/{incident.pk}/panel/",
        )
    panel = page.locator("#postmortem-panel")
    expect(panel.get_by_role("button", name="Create postmortem")).to_be_visible()
    panel.get_by_role("button", name="Create postmortem").click()
    page.wait_for_url("**/postmortems/*/")
    postmortem = Postmortem.objects.get(incident=incident)
    expect(page.get_by_role("heading", name="Checkout failing for EU customers")).to_be_visible()
    expect(page.locator("#section-timeline")).to_contain_text("Rolled back deploy")
    expect(page.locator(".pm-facts")).to_contain_text("Time to mitigate")
    screenshot(page, "pm-postmortem-draft")

    # Edit a section in place: no reload, preview, save.
    page.evaluate(f"{MARKER} = 'same'")
    page.locator("#section-contributing_factors").get_by_role("link", name="Edit").click()
    editor = page.locator("#section-contributing_factors textarea")
    expect(editor).to_be_visible()
    editor.fill(
        "The deploy tool **allowed** a config change to skip the canary stage.\n\n"
        "- no guard rail on `skip_canary`\n- alerts fired only on totals"
    )
    page.locator("#section-contributing_factors").get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-contributing_factors strong")).to_have_text("allowed")
    screenshot(page, "pm-section-editing")
    page.locator("#section-contributing_factors").get_by_role("button", name="Save").click()
    expect(page.locator("#section-contributing_factors .pm-body strong")).to_have_text("allowed")
    assert page.evaluate(MARKER) == "same", "the page reloaded"

    # Review and publish: the commander reviews it too, and it waits for every approval.
    page.locator("#id_reviewers").select_option([str(reviewer.pk), str(commander.pk)])
    page.get_by_role("button", name="Send for review").click()
    expect(page.locator(".pm-steps .is-current")).to_have_text("In review")
    expect(page.get_by_role("button", name="Publish")).to_be_disabled()
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#publish-rule")).to_contain_text("Waiting for Rita")
    services.postmortem_approve(postmortem=Postmortem.objects.get(), actor=reviewer)
    page.reload()
    page.evaluate(f"{MARKER} = 'same'")
    page.get_by_role("button", name="Publish").click()
    expect(page.locator(".pm-readonly")).to_be_visible()
    assert page.evaluate(MARKER) == "same"
    assert incident.timeline.filter(body__startswith="Postmortem published").exists()
    expect(page.locator("#section-summary").get_by_role("link", name="Edit")).to_have_count(0)

    # Export: progress while it renders, then the download.
    page.get_by_role("button", name="Export PDF").click()
    expect(page.locator("#export")).to_contain_text("Waiting for a worker")
    screenshot(page, "pm-export-progress")
    play_the_worker()
    download_link = page.get_by_role("link", name="Download PDF")
    expect(download_link).to_be_visible(timeout=8_000)
    with page.expect_download() as info:
        download_link.click()
    pdf_path = tmp_path / "postmortem.pdf"
    info.value.save_as(pdf_path)
    assert pdf_path.read_bytes().startswith(b"%PDF")
    screenshot(page, "pm-postmortem-published")
    assert page.js_errors == [] and page.server_errors == []

    if shutil.which("pdftoppm"):
        SHOTS.mkdir(parents=True, exist_ok=True)
        for number in (1, 3):
            subprocess.run(
                ["pdftoppm", "-png", "-r", "70", "-f", str(number), "-l", str(number),
                 "-singlefile", str(pdf_path), str(SHOTS / f"pm-pdf-page-{number}")],
                check=True,
            )  # fmt: skip
    assert postmortem.pk


def test_the_dashboard_filters_without_reload(page_as, commander, screenshot):
    from postmortems import services
    from tests.factories import make_team

    incident = resolved_incident(commander)
    team = make_team("Payments", members=[commander])
    import datetime as dt

    from django.utils import timezone

    today = timezone.localdate()
    for n, (title, due) in enumerate(
        [("Alert on pool saturation", -3), ("Canary cannot be skipped", 4), ("Runbook", 40)]
    ):
        services.action_item_create(
            incident=incident, actor=commander, title=title, item_type="preventive",
            owner=commander, team=team, due_date=today + dt.timedelta(days=due), priority=n + 1,
        )  # fmt: skip
    page = page_as(commander)
    page.goto("/postmortems/action-items/")
    expect(page.locator("#ai-results")).to_contain_text("Runbook")
    screenshot(page, "pm-action-items-dashboard")
    page.evaluate(f"{MARKER} = 'same'")
    page.get_by_label("Overdue").check()
    expect(page.locator("#ai-results")).not_to_contain_text("Runbook")
    expect(page.locator("#ai-results")).to_contain_text("Alert on pool saturation")
    assert page.evaluate(MARKER) == "same"
    page.locator("#ai-results").get_by_role("button", name="Start").first.click()
    expect(page.locator("#ai-results")).to_contain_text("In progress")
    assert page.js_errors == [] and page.server_errors == []


def test_a_filter_turned_off_is_off_in_the_address_and_the_csv(page_as, commander):
    import datetime as dt
    import urllib.parse

    from django.utils import timezone

    from postmortems import services

    incident = resolved_incident(commander)
    today = timezone.localdate()
    for title, due in [("Alert on pool saturation", -3), ("Runbook for failover", 40)]:
        services.action_item_create(
            incident=incident, actor=commander, title=title, item_type="preventive",
            owner=commander, due_date=today + dt.timedelta(days=due),
        )  # fmt: skip
    page = page_as(commander)
    page.goto("/postmortems/action-items/")
    results = page.locator("#ai-results")
    overdue = page.get_by_label("Overdue")

    overdue.check()
    expect(results).not_to_contain_text("Runbook for failover")
    page.wait_for_url("**overdue=on**")
    overdue.uncheck()
    expect(results).to_contain_text("Runbook for failover")
    expect(results).to_contain_text("Alert on pool saturation")
    page.wait_for_function("() => !location.search.includes('overdue')")
    page.reload()  # what the address bar now says is what is shown
    expect(page.get_by_label("Overdue")).not_to_be_checked()
    expect(results).to_contain_text("Runbook for failover")

    export = results.get_by_role("link", name="Export CSV")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(export.get_attribute("href")).query)
    assert "overdue" not in query
    with page.expect_download() as info:
        export.click()
    csv_text = Path(info.value.path()).read_text()
    assert "Runbook for failover" in csv_text and "Alert on pool saturation" in csv_text
    assert page.js_errors == [] and page.server_errors == []


def test_the_timeline_chooser_lines_up_pinned_rows_and_shows_plain_text(page_as, commander):
    incident = resolved_incident(commander)
    incident_services.note_add(incident=incident, author=commander, body="Unpinned chatter")
    postmortem = services.postmortem_create(incident=incident, actor=commander)
    page = page_as(commander)
    page.goto(f"/postmortems/{postmortem.pk}/timeline/")
    pinned = page.locator(".pm-choose li.is-pinned .pm-choose-body").first
    plain = page.locator(".pm-choose li:not(.is-pinned) .pm-choose-body", has_text="chatter")
    expect(pinned).to_have_text("Error rate on checkout-api jumped to 12%.")  # no ** or `
    expect(plain).to_have_text("Unpinned chatter")
    assert pinned.bounding_box()["x"] == plain.bounding_box()["x"]  # same column
    assert page.js_errors == [] and page.server_errors == []
