"""Handoff notices: sent HANDOFF_NOTICE_MINUTES before a shift starts, exactly once."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection

from oncall.handoffs import handoff_notices_send
from oncall.models import (
    ContactMethod,
    HandoffNotice,
    LayerParticipant,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
)
from oncall.tasks import handoff_notices_sweep
from tests.factories import make_user

pytestmark = pytest.mark.django_db

# Daily handoffs at 09:00 London. 2026-03-30 is after the clocks went forward: 09:00 BST is
# 08:00 UTC.
HANDOFF = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)


@pytest.fixture
def people():
    return {
        "ivy": make_user("ivy", first_name="Ivy", time_zone="Europe/London"),
        "raj": make_user("raj", first_name="Raj", time_zone="America/Chicago"),
    }


@pytest.fixture
def schedule(people):
    schedule = Schedule.objects.create(
        name="Platform primary", slug="platform-primary", time_zone="Europe/London"
    )
    layer = ScheduleLayer.objects.create(
        schedule=schedule,
        name="Daily",
        shift_unit="days",
        start_date=date(2026, 3, 2),
        handoff_time=time(9, 0),
    )
    for position, name in enumerate(["ivy", "raj"]):
        LayerParticipant.objects.create(layer=layer, user=people[name], position=position)
    return schedule


def sweep_at(instant: datetime) -> int:
    with time_machine.travel(instant, tick=False):
        return handoff_sweep()


def handoff_sweep() -> int:
    return handoff_notices_sweep.delay().get()


def test_the_notice_goes_out_an_hour_before_in_the_persons_own_zone(schedule, people):
    assert sweep_at(HANDOFF - timedelta(minutes=61)) == 0
    assert sweep_at(HANDOFF - timedelta(minutes=60)) == 1
    [message] = mail.outbox
    assert message.to == ["ivy@example.test"]
    assert message.subject == "You are on call for Platform primary from 09:00 Europe/London"
    assert "until Tuesday 31 March at 09:00" in message.body
    assert "/oncall/schedules/platform-primary/" in message.body
    assert message.extra_headers["X-Firebreak-Kind"] == "handoff"
    notice = HandoffNotice.objects.get()
    assert (notice.user, notice.state, notice.shift_start) == (people["ivy"], "sent", HANDOFF)


def test_every_later_sweep_sends_nothing_more(schedule, people):
    for minutes in (60, 59, 30, 1):
        sweep_at(HANDOFF - timedelta(minutes=minutes))
    assert len(mail.outbox) == 1
    assert HandoffNotice.objects.count() == 1


def test_a_raj_handoff_names_his_own_zone(schedule, people):
    next_day = HANDOFF + timedelta(days=1)
    sweep_at(next_day - timedelta(minutes=30))
    [message] = mail.outbox
    assert message.to == ["raj@example.test"]
    assert message.subject == "You are on call for Platform primary from 03:00 America/Chicago"


def test_the_notice_minutes_come_from_the_setting(schedule, settings):
    settings.HANDOFF_NOTICE_MINUTES = 15
    assert sweep_at(HANDOFF - timedelta(minutes=30)) == 0
    assert sweep_at(HANDOFF - timedelta(minutes=15)) == 1


def test_a_shift_already_under_way_gets_no_notice(schedule):
    assert sweep_at(HANDOFF + timedelta(minutes=1)) == 0
    assert not HandoffNotice.objects.exists()


def test_an_override_handing_back_to_the_same_person_is_not_a_new_shift(schedule, people):
    # Ivy covers the hour before her own shift: one notice, for the override's start.
    ScheduleOverride.objects.create(
        schedule=schedule,
        user=people["ivy"],
        starts_at=HANDOFF - timedelta(hours=1),
        ends_at=HANDOFF,
    )
    sweep_at(HANDOFF - timedelta(hours=2))
    sweep_at(HANDOFF - timedelta(minutes=30))
    assert [n.shift_start for n in HandoffNotice.objects.all()] == [HANDOFF - timedelta(hours=1)]
    assert "until Tuesday 31 March at 09:00" in mail.outbox[0].body


def test_it_uses_the_first_usable_contact_method(schedule, people):
    ivy = people["ivy"]
    ContactMethod.objects.filter(user=ivy).update(
        disabled_at=HANDOFF - timedelta(days=1), disabled_reason="refused"
    )
    backup = ContactMethod.objects.create(user=ivy, kind="email", address="ivy@home.test")
    sweep_at(HANDOFF - timedelta(minutes=60))
    assert mail.outbox[0].to == ["ivy@home.test"]
    assert HandoffNotice.objects.get().contact_method == backup


def test_nobody_reachable_is_recorded_and_not_retried(schedule, people):
    ContactMethod.objects.filter(user=people["ivy"]).delete()
    assert sweep_at(HANDOFF - timedelta(minutes=60)) == 0
    assert sweep_at(HANDOFF - timedelta(minutes=59)) == 0
    assert HandoffNotice.objects.get().state == "unreachable"


def test_a_failed_delivery_is_recorded_and_not_resent(schedule, people, closed_port, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port, 2
    assert sweep_at(HANDOFF - timedelta(minutes=60)) == 0
    notice = HandoffNotice.objects.get()
    assert notice.state == "failed" and "mail server" in notice.error
    assert sweep_at(HANDOFF - timedelta(minutes=59)) == 0
    assert HandoffNotice.objects.count() == 1


def test_real_smtp_receives_it(schedule, smtp_inbox, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp_inbox.port
    sweep_at(HANDOFF - timedelta(minutes=45))
    [received] = smtp_inbox.wait_for(1)
    assert received["Subject"] == "You are on call for Platform primary from 09:00 Europe/London"


# serialized_rollback: the flush after a transactional test would otherwise wipe the rows
# the data migrations wrote, which later tests (the browser ones) rely on.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_sweeps_racing_send_once(schedule, people, settings):
    if connection.vendor == "sqlite":
        pytest.skip("needs a database that takes concurrent writers (PostgreSQL)")
    results: list[int] = []
    barrier = threading.Barrier(2)

    def run():
        barrier.wait()
        try:
            results.append(handoff_notices_send(now=HANDOFF - timedelta(minutes=60)))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1]
    assert len(mail.outbox) == 1
    assert HandoffNotice.objects.count() == 1
