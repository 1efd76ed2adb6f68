"""Scheduled maintenance: entered in the manager's zone, announced, started and completed on
time by the beat, exactly once, with subscribers told by real email."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from incidents.models import (
    ComponentStatus,
    ScheduledMaintenance,
    StatusEvent,
    StatusSubscriber,
)
from incidents.statuspages.maintenance import (
    MaintenanceRefused,
    maintenance_cancel,
    maintenance_schedule,
    maintenances_for_page,
)
from incidents.statuspages.services import component_status_set
from incidents.statuspages.tasks import status_tick
from tests.statuspages.conftest import make_component, make_status_page

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def smtp(settings, smtp_inbox):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp_inbox.port
    settings.SITE_URL = "http://testserver"
    return smtp_inbox


@pytest.fixture
def page(db):
    page = make_status_page("acme", title="Acme status", time_zone="Europe/Paris")
    make_component(page, "API")
    make_component(page, "Dashboard")
    make_component(page, "Billing")
    return page


def components(page):
    return {c.name: c for c in page.components.all()}


def refreshed(page) -> dict[str, str]:
    return {c.name: c.status for c in page.components.all()}


def schedule(page, names=("API", "Dashboard"), start=T0 + timedelta(hours=2), hours=1, **kw):
    by_name = components(page)
    return maintenance_schedule(
        page=page,
        title="Database upgrade",
        message="Writes pause for a few minutes.",
        components=[by_name[n] for n in names],
        starts_at=start,
        ends_at=start + timedelta(hours=hours),
        actor=None,
        now=T0,
        **kw,
    )


def tick_at(moment: datetime, *, times: int = 2) -> None:
    """The beat, twice at the same moment (as two beat processes would)."""
    with time_machine.travel(moment, tick=False):
        for _ in range(times):
            status_tick()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_window_is_announced_started_and_completed_on_time_exactly_once(smtp, page):
    StatusSubscriber.objects.create(page=page, email="ann@example.test", confirmed_at=T0)
    billing_only = StatusSubscriber.objects.create(
        page=page, email="bill@example.test", confirmed_at=T0
    )
    billing_only.components.set([components(page)["Billing"]])
    maintenance = schedule(page)

    tick_at(T0 + timedelta(minutes=30))  # 90 minutes before: nothing yet
    assert smtp.wait_for(1, timeout=0.5) == []

    tick_at(T0 + timedelta(minutes=61))  # within the 60-minute notice
    [notice] = smtp.wait_for(1)
    assert notice["To"] == "ann@example.test"
    assert notice["Subject"] == "[Acme status] Maintenance coming up: Database upgrade"
    body = notice.get_body(preferencelist=("plain",)).get_content()
    # In the page's zone, named: the 11:00 UTC start is 13:00 in Paris (CEST).
    assert "1 Jun 2026, 13:00 to 1 Jun 2026, 14:00 CEST" in body
    assert "Times are in Europe/Paris" in body
    assert "Affects: API, Dashboard" in body
    assert refreshed(page)["API"] == ComponentStatus.OPERATIONAL

    tick_at(T0 + timedelta(hours=2, seconds=5))
    maintenance.refresh_from_db()
    assert maintenance.state == ScheduledMaintenance.State.IN_PROGRESS
    assert refreshed(page) == {
        "API": ComponentStatus.UNDER_MAINTENANCE,
        "Billing": ComponentStatus.OPERATIONAL,
        "Dashboard": ComponentStatus.UNDER_MAINTENANCE,
    }
    received = smtp.wait_for(2)
    assert [m["Subject"] for m in received[1:]] == [
        "[Acme status] Maintenance in progress: Database upgrade"
    ]

    tick_at(T0 + timedelta(hours=3, seconds=5))
    maintenance.refresh_from_db()
    assert maintenance.state == ScheduledMaintenance.State.COMPLETED
    assert set(refreshed(page).values()) == {ComponentStatus.OPERATIONAL}
    received = smtp.wait_for(4, timeout=2)
    assert [m["Subject"] for m in received[2:]] == [
        "[Acme status] Maintenance completed: Database upgrade"
    ]
    # Only the maintenance notices: no separate "component status" emails for its moves.
    assert not StatusEvent.objects.filter(kind=StatusEvent.Kind.COMPONENT).exists()
    assert all(m["To"] == "ann@example.test" for m in received)

    tick_at(T0 + timedelta(hours=4))
    assert len(smtp.wait_for(4, timeout=1)) == 3


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_status_set_during_the_window_stands_at_completion(page, commander):
    maintenance = schedule(page, names=("API", "Dashboard", "Billing"))
    by_name = components(page)
    component_status_set(
        component=by_name["Billing"], status=ComponentStatus.DEGRADED_PERFORMANCE, actor=commander
    )
    tick_at(T0 + timedelta(hours=2))
    # Degraded before the start: an incident's truth is not hidden behind maintenance.
    assert refreshed(page)["Billing"] == ComponentStatus.DEGRADED_PERFORMANCE
    assert maintenance.__class__.objects.get().statuses_before[str(by_name["Billing"].pk)] == (
        ComponentStatus.DEGRADED_PERFORMANCE
    )
    with time_machine.travel(T0 + timedelta(hours=2, minutes=30), tick=False):
        component_status_set(
            component=by_name["API"], status=ComponentStatus.MAJOR_OUTAGE, actor=commander
        )
    tick_at(T0 + timedelta(hours=3))
    assert refreshed(page) == {
        "API": ComponentStatus.MAJOR_OUTAGE,  # changed during the window: kept
        "Billing": ComponentStatus.DEGRADED_PERFORMANCE,  # never moved
        "Dashboard": ComponentStatus.OPERATIONAL,  # back to what it was
    }


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_overlapping_windows_keep_a_shared_component_under_maintenance(page):
    first = schedule(page, names=("API",), hours=1)
    second = schedule(page, names=("API",), start=T0 + timedelta(hours=2, minutes=30), hours=1)
    tick_at(T0 + timedelta(hours=2, minutes=31))
    tick_at(T0 + timedelta(hours=3))
    first.refresh_from_db()
    assert first.state == "completed"
    assert refreshed(page)["API"] == ComponentStatus.UNDER_MAINTENANCE
    tick_at(T0 + timedelta(hours=3, minutes=30))
    second.refresh_from_db()
    assert second.state == "completed"
    assert refreshed(page)["API"] == ComponentStatus.OPERATIONAL


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_window_the_beat_missed_entirely_starts_and_completes_at_once(page, smtp):
    StatusSubscriber.objects.create(page=page, email="ann@example.test", confirmed_at=T0)
    maintenance = schedule(page)
    tick_at(T0 + timedelta(hours=5), times=1)
    maintenance.refresh_from_db()
    assert maintenance.state == "completed"
    assert set(refreshed(page).values()) == {ComponentStatus.OPERATIONAL}
    subjects = [m["Subject"] for m in smtp.wait_for(2)]
    # No "coming up" notice after the fact.
    assert subjects == [
        "[Acme status] Maintenance in progress: Database upgrade",
        "[Acme status] Maintenance completed: Database upgrade",
    ]


@pytest.mark.django_db
def test_the_selector_returns_windows_in_progress_then_upcoming(page):
    later = schedule(page, start=T0 + timedelta(days=2))
    soon = schedule(page, start=T0 + timedelta(hours=1))
    now_running = schedule(page, start=T0 + timedelta(minutes=5))
    ScheduledMaintenance.objects.filter(pk=now_running.pk).update(state="in_progress")
    done = schedule(page, start=T0 + timedelta(minutes=1), hours=1)
    ScheduledMaintenance.objects.filter(pk=done.pk).update(state="completed")
    cancelled = schedule(page, start=T0 + timedelta(hours=3))
    maintenance_cancel(maintenance=cancelled, now=T0)
    result = maintenances_for_page(page=page, now=T0 + timedelta(minutes=10))
    assert [m.pk for m in result.in_progress] == [now_running.pk]
    assert [m.pk for m in result.upcoming] == [soon.pk, later.pk]
    assert [c.name for c in result.upcoming[0].components.all()] == ["API", "Dashboard"]


@pytest.mark.django_db
def test_the_selector_costs_two_queries_however_many_windows(page, django_assert_num_queries):
    for n in range(12):
        schedule(page, start=T0 + timedelta(hours=2 + n))
    with django_assert_num_queries(2):
        result = maintenances_for_page(page=page, now=T0)
        names = [[c.name for c in m.components.all()] for m in result.upcoming]
    assert len(names) == 12


@pytest.mark.django_db
def test_cancel_before_the_start_only(page, django_capture_on_commit_callbacks):
    maintenance = schedule(page, start=T0 + timedelta(hours=2))
    ScheduledMaintenance.objects.filter(pk=maintenance.pk).update(state="in_progress")
    with pytest.raises(MaintenanceRefused):
        maintenance_cancel(maintenance=maintenance, now=T0)
    other = schedule(page, start=T0 + timedelta(hours=5))
    maintenance_cancel(maintenance=other, now=T0)
    other.refresh_from_db()
    assert other.state == "cancelled"
    # Nobody was told it was coming, so nobody is told it is off.
    assert not StatusEvent.objects.exists()


@pytest.mark.django_db
def test_a_manager_schedules_in_their_own_zone_and_sees_it_named(client, page, admin_user):
    admin_user.time_zone = "America/New_York"
    admin_user.save()
    client.force_login(admin_user)
    url = reverse("status:maintenance_manage", kwargs={"slug": page.slug})
    form = client.get(url)
    assert "America/New_York" in form.content.decode()
    api = components(page)["API"]
    with time_machine.travel(T0, tick=False):
        response = client.post(
            url,
            {
                "title": "Network work",
                "message": "Short blips.",
                "components": [api.pk],
                "starts_at": "2026-06-02T22:00",
                "ends_at": "2026-06-02T23:30",
                "notice_minutes": "30",
            },
        )
    assert response.status_code == 302
    maintenance = ScheduledMaintenance.objects.get()
    # 22:00 in New York (EDT, UTC-4) is 02:00 UTC the next day.
    assert maintenance.starts_at == datetime(2026, 6, 3, 2, 0, tzinfo=UTC)
    assert maintenance.notice_minutes == 30
    assert list(maintenance.components.all()) == [api]
    with time_machine.travel(T0, tick=False):
        listing = client.get(url).content.decode()
    assert "Network work" in listing and "EDT" in listing


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("starts", "ends", "field"),
    [
        ("2026-06-02T22:00", "2026-06-02T21:00", "must end after it starts"),
        ("2026-05-01T10:00", "2026-05-01T11:00", "already over"),
        ("2026-06-02T22:00", "2026-06-30T22:00", "at most 14 days"),
        ("tomorrow", "2026-06-02T21:00", "Enter a valid date/time"),
    ],
)
def test_bad_windows_are_refused_with_the_reason(client, page, admin_user, starts, ends, field):
    client.force_login(admin_user)
    with time_machine.travel(T0, tick=False):
        response = client.post(
            reverse("status:maintenance_manage", kwargs={"slug": page.slug}),
            {"title": "x", "starts_at": starts, "ends_at": ends, "notice_minutes": "60"},
        )
    assert response.status_code == 422
    assert field in response.content.decode()
    assert not ScheduledMaintenance.objects.exists()


@pytest.mark.django_db
def test_a_manager_cancels_from_the_page(client, page, admin_user):
    maintenance = schedule(page, start=T0 + timedelta(days=30))
    client.force_login(admin_user)
    response = client.post(
        reverse("status:maintenance_cancel", kwargs={"slug": page.slug, "pk": maintenance.pk})
    )
    assert response.status_code == 302
    maintenance.refresh_from_db()
    assert maintenance.state == "cancelled"
    again = client.post(
        reverse("status:maintenance_cancel", kwargs={"slug": page.slug, "pk": maintenance.pk})
    )
    assert again.status_code == 409
    assert "has not started" in again.content.decode()


@pytest.mark.django_db
def test_the_public_page_shows_upcoming_and_in_progress_windows(client, page):
    with time_machine.travel(T0, tick=False):
        running = schedule(page, start=T0 + timedelta(minutes=1))
        ScheduledMaintenance.objects.filter(pk=running.pk).update(state="in_progress")
        schedule(page, names=("Billing",), start=T0 + timedelta(days=1))
        html = client.get(reverse("status:page", kwargs={"slug": page.slug})).content.decode()
    assert "Scheduled maintenance" in html
    assert html.count("Database upgrade") == 2
    assert "In progress" in html and "Scheduled" in html
    assert "Affects Billing" in html


@pytest.mark.django_db
def test_scheduling_and_cancelling_refresh_the_cached_page(
    client, page, django_capture_on_commit_callbacks
):
    url = reverse("status:page", kwargs={"slug": page.slug})
    assert "Database upgrade" not in client.get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        maintenance = schedule(page, start=datetime.now(UTC) + timedelta(days=1))
    assert "Database upgrade" in client.get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        maintenance_cancel(maintenance=maintenance)
    assert "Database upgrade" not in client.get(url).content.decode()


@pytest.mark.django_db
def test_a_notice_more_than_a_day_ahead_is_refused(page):
    with pytest.raises(MaintenanceRefused, match="at most a day"):
        schedule(page, notice_minutes=24 * 60 + 1)
    assert not ScheduledMaintenance.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_one_failing_window_does_not_hold_back_the_others(page, monkeypatch):
    from incidents.statuspages import services as status_services

    broken = schedule(page, names=("Billing",), start=T0 + timedelta(hours=1), hours=3)
    fine = schedule(page, names=("API",), start=T0 + timedelta(hours=1, minutes=1), hours=3)
    real = status_services.component_status_set

    def refuse_billing(*, component, **kwargs):
        if component.name == "Billing":
            raise RuntimeError("database hiccup")
        return real(component=component, **kwargs)

    monkeypatch.setattr(status_services, "component_status_set", refuse_billing)
    with time_machine.travel(T0 + timedelta(hours=2), tick=False):
        counts = status_tick()
    assert counts["failed"] == 1 and counts["started"] == 1
    broken.refresh_from_db()
    fine.refresh_from_db()
    assert broken.state == "scheduled"  # rolled back whole, tried again next tick
    assert fine.state == "in_progress"
    assert refreshed(page)["Billing"] == ComponentStatus.OPERATIONAL
    monkeypatch.setattr(status_services, "component_status_set", real)
    with time_machine.travel(T0 + timedelta(hours=2, seconds=30), tick=False):
        status_tick()
    broken.refresh_from_db()
    assert broken.state == "in_progress"


@pytest.mark.django_db
def test_the_json_summary_lists_windows_in_progress_and_upcoming(client, page):
    with time_machine.travel(T0, tick=False):
        running = schedule(page, start=T0 + timedelta(minutes=1))
        ScheduledMaintenance.objects.filter(pk=running.pk).update(state="in_progress")
        schedule(page, names=("Billing",), start=T0 + timedelta(days=1))
        data = client.get(reverse("status:summary", kwargs={"slug": page.slug})).json()
    windows = data["scheduled_maintenances"]
    assert [m["name"] for m in windows["in_progress"]] == ["Database upgrade"]
    assert [m["components"] for m in windows["upcoming"]] == [["Billing"]]
    assert windows["upcoming"][0]["scheduled_for"].startswith("2026-06-02T09:00")
