"""On-call pages as a person in a browser sees them: the schedule calendar moved with htmx,
"take this shift" in one click, "send me a test" through a real SMTP server and a real HTTP
receiver, and forms that refuse impossible values. Screenshots of every on-call page."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from oncall.models import (
    ContactMethod,
    EscalationPolicy,
    EscalationStep,
    LayerParticipant,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
    StepTarget,
)
from tests.factories import make_service, make_team, make_user
from tests.oncall.conftest import HttpReceiver

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

MARKER = "window.__firebreakNoReload"


@pytest.fixture
def http_receiver():
    receiver = HttpReceiver()
    receiver.thread.start()
    yield receiver
    receiver.close()


@pytest.fixture
def world(db):
    ivy = make_user("ivy", first_name="Ivy", last_name="Commander", time_zone="Europe/London")
    raj = make_user("raj", first_name="Raj", last_name="Responder", time_zone="America/Chicago")
    mia = make_user("mia", first_name="Mia", last_name="Manager", time_zone="America/New_York")
    team = make_team("Platform", members=[ivy, raj], managers=[mia])
    schedule = Schedule.objects.create(
        name="Platform primary",
        slug="platform-primary",
        team=team,
        time_zone="Europe/London",
        description="Edge, Kubernetes and the data stores.",
    )
    today = timezone.localdate()
    monday = today - timedelta(days=today.weekday())
    weekly = ScheduleLayer.objects.create(
        schedule=schedule,
        name="Weekly rotation",
        level=1,
        shift_unit="weeks",
        start_date=monday,
        handoff_time=time(9, 0),
    )
    for position, person in enumerate([raj, mia]):
        LayerParticipant.objects.create(layer=weekly, user=person, position=position)
    hours = ScheduleLayer.objects.create(
        schedule=schedule,
        name="Business hours",
        level=2,
        shift_unit="days",
        start_date=monday,
        handoff_time=time(9, 0),
        restrict_weekdays="01234",
        restrict_start=time(9, 0),
        restrict_end=time(17, 0),
    )
    LayerParticipant.objects.create(layer=hours, user=ivy, position=0)
    start = timezone.now() + timedelta(days=2)
    ScheduleOverride.objects.create(
        schedule=schedule,
        user=ivy,
        replaces=raj,
        starts_at=start.replace(hour=18, minute=0, second=0, microsecond=0),
        ends_at=start.replace(hour=22, minute=0, second=0, microsecond=0),
        created_by=ivy,
    )
    policy = EscalationPolicy.objects.create(name="Platform on-call", team=team, repeat_count=2)
    first = EscalationStep.objects.create(policy=policy, position=0, delay_minutes=10)
    StepTarget.objects.create(step=first, kind="schedule", schedule=schedule)
    second = EscalationStep.objects.create(policy=policy, position=1, delay_minutes=15)
    StepTarget.objects.create(step=second, kind="user", user=mia)
    service = make_service("API Gateway", team=team)
    service.escalation_policy = policy
    service.save()
    return {"ivy": ivy, "raj": raj, "mia": mia, "schedule": schedule, "policy": policy}


def mark_document(page) -> None:
    page.evaluate(f"{MARKER} = 'same-document'")


def assert_not_reloaded(page) -> None:
    assert page.evaluate(MARKER) == "same-document", "the page was reloaded"


def assert_healthy(page) -> None:
    assert page.js_errors == [], f"JavaScript errors: {page.js_errors}"
    assert page.server_errors == [], f"server errors: {page.server_errors}"


def test_the_calendar_moves_in_place_and_a_shift_is_taken_in_one_click(page_as, world, screenshot):
    page = page_as(world["ivy"])
    page.goto("/oncall/schedules/platform-primary/")
    expect(page.get_by_role("heading", name="Platform primary")).to_be_visible()
    expect(page.locator(".cal-zone")).to_contain_text("Europe/London")
    screenshot(page, "oncall-schedule-week")
    title = page.locator("#calendar-title").inner_text()
    mark_document(page)

    page.locator("#calendar").get_by_role("link", name="Next week").click()
    expect(page.locator("#calendar-title")).not_to_have_text(title)
    assert "date=" in page.url  # pushed, so the address can be shared and reloaded
    assert_not_reloaded(page)

    row = page.locator("tr", has_text="Weekly rotation").filter(has_text="Raj Responder").first
    if not row.count():
        row = page.locator("tr", has_text="Weekly rotation").first
    row.get_by_role("button", name="Take this shift").click()
    expect(page.locator("#calendar")).to_contain_text("You have that shift now")
    assert_not_reloaded(page)
    override = ScheduleOverride.objects.filter(created_by=world["ivy"], user=world["ivy"]).latest(
        "pk"
    )
    assert override.replaces in (world["raj"], world["mia"])
    screenshot(page, "oncall-schedule-taken")

    page.locator("#calendar").get_by_role("link", name="Month").click()
    expect(page.locator(".cal-month")).to_be_visible()
    page.locator("#calendar").get_by_role("link", name="Today").click()
    expect(page.locator("#calendar-title")).to_contain_text(timezone.localdate().strftime("%B %Y"))
    assert_not_reloaded(page)
    screenshot(page, "oncall-schedule-month")
    assert_healthy(page)


def test_the_calendar_works_without_javascript(page_as, world):
    page = page_as(world["ivy"], java_script_enabled=False)
    page.goto("/oncall/schedules/platform-primary/")
    title = page.locator("#calendar-title").inner_text()
    page.locator("#calendar").get_by_role("link", name="Next week").click()
    expect(page.locator("#calendar-title")).not_to_have_text(title)
    page.get_by_role("button", name="Take this shift").first.click()
    expect(page.locator(".messages")).to_contain_text("You have that shift now")


def test_send_me_a_test_reaches_real_peers_and_shows_the_outcome_in_place(
    page_as, world, smtp_inbox, http_receiver, settings, screenshot
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp_inbox.port
    ivy = world["ivy"]
    slack = ContactMethod.objects.create(
        user=ivy, kind="slack", label="Team chat", address=http_receiver.url("/slack")
    )
    page = page_as(ivy)
    page.goto("/accounts/profile/")
    mark_document(page)
    email = page.locator(f"#method-{ivy.contact_methods.get(kind='email').pk}")
    email.get_by_role("button", name="Send me a test").click()
    expect(page.locator(".test-ok")).to_contain_text("Test sent")
    [received] = smtp_inbox.wait_for(1)
    assert received["To"] == "ivy@example.test" and received["Subject"].startswith("[Test]")

    http_receiver.answer(404, b"no_service")
    page.locator(f"#method-{slack.pk}").get_by_role("button", name="Send me a test").click()
    expect(page.locator(f"#method-{slack.pk} .method-problem")).to_contain_text("Paused since")
    assert http_receiver.last.path == "/slack"
    assert_not_reloaded(page)
    screenshot(page, "oncall-profile-test-failed")

    http_receiver.answer(200, b"ok")
    page.locator(f"#method-{slack.pk}").get_by_role("button", name="Send me a test").click()
    expect(page.locator(f"#method-{slack.pk} .test-ok")).to_be_visible()
    expect(page.locator(f"#method-{slack.pk} .method-problem")).to_have_count(0)
    slack.refresh_from_db()
    assert slack.disabled_at is None
    assert_healthy(page)


def test_forms_refuse_impossible_values_with_field_errors(page_as, world, screenshot):
    page = page_as(world["ivy"])
    page.goto("/oncall/schedules/platform-primary/layers/new/")
    page.get_by_label("Name").fill("Nights")
    page.get_by_label("Shift length").fill("0")
    page.get_by_label("Only from").fill("09:00")
    page.get_by_label("Until").fill("09:00")
    page.get_by_role("button", name="Add layer").click()
    expect(page.locator(".field-error")).to_have_count(3)
    expect(page.get_by_text("A shift must last at least one hour")).to_be_visible()
    expect(page.get_by_text("A rotation needs at least one person")).to_be_visible()
    expect(page.get_by_text("so it has no length")).to_be_visible()
    screenshot(page, "oncall-layer-form-errors")

    page.goto("/oncall/schedules/platform-primary/overrides/new/")
    page.get_by_label("From").fill("2030-01-02T10:00")
    page.get_by_label("Until").fill("2030-01-02T09:00")
    page.get_by_role("button", name="Add override").click()
    expect(page.get_by_text("The override must end after it starts")).to_be_visible()
    screenshot(page, "oncall-override-form-errors")
    assert_healthy(page)


def test_every_oncall_page_for_the_screenshots(page_as, world, screenshot):
    page = page_as(world["ivy"])
    for url, name in [
        ("/oncall/", "oncall-home"),
        ("/oncall/schedules/", "oncall-schedule-list"),
        ("/teams/", "oncall-teams"),
        ("/accounts/profile/", "oncall-profile"),
        ("/oncall/me/contact-methods/new/", "oncall-contact-method-form"),
        ("/oncall/policies/", "oncall-policy-list"),
        (f"/oncall/policies/{world['policy'].pk}/", "oncall-policy-detail"),
        (f"/oncall/policies/{world['policy'].pk}/edit/", "oncall-policy-form"),
        ("/oncall/schedules/platform-primary/edit/", "oncall-schedule-form"),
    ]:
        page.goto(url)
        expect(page.locator("main h1").first).to_be_visible()
        screenshot(page, name)
    assert_healthy(page)
