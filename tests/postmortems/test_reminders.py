"""Reminders with a controlled clock, a real SMTP server and real, restarted workers."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
import zoneinfo
from pathlib import Path

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from postmortems import services
from postmortems.models import Postmortem, ReminderKind, ReminderSent
from postmortems.tasks import action_item_reminders_sweep, postmortem_policy_sweep
from tests.factories import make_team, make_user

# Monday 10 March 2025, 09:30 in London (GMT).
MONDAY_MORNING = dt.datetime(2025, 3, 10, 9, 30, tzinfo=dt.UTC)


def item(incident, actor, title, *, owner, due, team=None, status="open"):
    created = services.action_item_create(
        incident=incident, actor=actor, title=title, item_type="corrective",
        owner=owner, team=team, due_date=due,
    )  # fmt: skip
    if status != "open":
        services.action_item_set_status(item=created, actor=actor, status=status, reason="x")
    return created


@pytest.fixture
def owner(db):
    return make_user(
        "olga", first_name="Olga", email="olga@example.test", time_zone="Europe/London"
    )


@pytest.mark.django_db
def test_one_digest_a_day_lists_overdue_and_due_soon_items(
    commander, owner, make_resolved_incident
):
    incident = make_resolved_incident(declared_by=commander)
    today = MONDAY_MORNING.date()
    item(incident, commander, "Overdue one", owner=owner, due=today - dt.timedelta(days=2))
    item(incident, commander, "Overdue two", owner=owner, due=today - dt.timedelta(days=1))
    item(incident, commander, "Due Wednesday", owner=owner, due=today + dt.timedelta(days=2))
    item(incident, commander, "Next quarter", owner=owner, due=today + dt.timedelta(days=90))
    item(incident, commander, "Finished", owner=owner, due=today, status="done")

    with time_machine.travel(MONDAY_MORNING.replace(hour=6), tick=False):
        assert action_item_reminders_sweep()["digests"] == 0  # 06:00 in London: too early
    with time_machine.travel(MONDAY_MORNING, tick=False):
        assert action_item_reminders_sweep()["digests"] == 1
        assert action_item_reminders_sweep()["digests"] == 0  # the beat runs every 15 min
    with time_machine.travel(MONDAY_MORNING + dt.timedelta(hours=8), tick=False):
        assert action_item_reminders_sweep()["digests"] == 0
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["olga@example.test"]
    assert message.subject.startswith("2 overdue, 1 due soon")
    assert "Overdue one" in message.body and "Due Wednesday" in message.body
    assert "Next quarter" not in message.body and "Finished" not in message.body
    assert "/postmortems/action-items/" in message.body

    with time_machine.travel(MONDAY_MORNING + dt.timedelta(days=1), tick=False):
        assert action_item_reminders_sweep()["digests"] == 1  # Tuesday: a new day
    assert ReminderSent.objects.filter(kind=ReminderKind.DIGEST).count() == 2


@pytest.mark.django_db
def test_the_digest_day_is_the_owners_own(commander, make_resolved_incident):
    sydney = make_user("syd", email="syd@example.test", time_zone="Australia/Sydney")
    incident = make_resolved_incident(declared_by=commander)
    item(incident, commander, "Due", owner=sydney, due=MONDAY_MORNING.date())
    # 22:00 UTC Monday is 09:00 Tuesday in Sydney: Tuesday's digest, sent once.
    with time_machine.travel(MONDAY_MORNING.replace(hour=22), tick=False):
        assert action_item_reminders_sweep()["digests"] == 1
    assert ReminderSent.objects.get().for_date == dt.date(2025, 3, 11)


@pytest.mark.django_db
def test_items_long_overdue_are_escalated_to_the_teams_manager_once(
    commander, owner, make_resolved_incident
):
    manager = make_user("mia", first_name="Mia", email="mia@example.test")
    team = make_team("Payments", members=[owner], managers=[manager])
    incident = make_resolved_incident(declared_by=commander)
    today = MONDAY_MORNING.date()
    late = item(incident, commander, "Very late", owner=owner, team=team,
                due=today - dt.timedelta(days=8))  # fmt: skip
    item(
        incident, commander, "A bit late", owner=owner, team=team, due=today - dt.timedelta(days=2)
    )
    no_team = item(incident, commander, "Late, no team", owner=owner,
                   due=today - dt.timedelta(days=10))  # fmt: skip

    with time_machine.travel(MONDAY_MORNING, tick=False):
        assert action_item_reminders_sweep()["escalations"] == 1
        assert action_item_reminders_sweep()["escalations"] == 0
    with time_machine.travel(MONDAY_MORNING + dt.timedelta(days=3), tick=False):
        assert action_item_reminders_sweep()["escalations"] == 0  # each item once per due date
    escalations = [m for m in mail.outbox if m.to == ["mia@example.test"]]
    assert len(escalations) == 1
    body = escalations[0].body
    assert "Very late" in body and "Late, no team" in body and "A bit late" not in body
    assert escalations[0].subject.startswith("Escalation: 2 action items")
    keys = set(ReminderSent.objects.filter(kind="escalation").values_list("subject_key", flat=True))
    assert keys == {f"item:{late.pk}", f"item:{no_team.pk}"}


@pytest.mark.django_db
def test_owners_of_late_postmortems_are_reminded_once_a_day(commander, make_resolved_incident):
    incident = make_resolved_incident(declared_by=commander)
    postmortem = services.postmortem_create(incident=incident, actor=commander)
    Postmortem.objects.filter(pk=postmortem.pk).update(due_date=dt.date(2025, 3, 5))
    with time_machine.travel(MONDAY_MORNING, tick=False):
        assert postmortem_policy_sweep()["reminded"] == 1
        assert postmortem_policy_sweep()["reminded"] == 0
    assert len(mail.outbox) == 1
    assert incident.reference in mail.outbox[0].subject
    assert "5 days late" in mail.outbox[0].body  # Wed 5 -> Mon 10, calendar days
    services.postmortem_submit_for_review(
        postmortem=postmortem, actor=commander, reviewers=[commander]
    )
    services.postmortem_approve(postmortem=postmortem, actor=commander)
    services.postmortem_publish(postmortem=postmortem, actor=commander)
    with time_machine.travel(MONDAY_MORNING + dt.timedelta(days=1), tick=False):
        assert postmortem_policy_sweep()["reminded"] == 0


@pytest.mark.django_db
def test_a_refused_email_releases_the_claim_so_the_next_sweep_retries(
    commander, owner, make_resolved_incident, settings
):
    incident = make_resolved_incident(declared_by=commander)
    item(incident, commander, "Due", owner=owner, due=MONDAY_MORNING.date())
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    with time_machine.travel(MONDAY_MORNING, tick=False):
        assert action_item_reminders_sweep()["digests"] == 0
        assert not ReminderSent.objects.exists()
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        assert action_item_reminders_sweep()["digests"] == 1


# --- A real SMTP server and real workers, restarted --------------------------------------------


def _zone_in_working_hours() -> str:
    now = timezone.now()
    for name in ("UTC", "Europe/London", "Asia/Kolkata", "Asia/Tokyo", "Pacific/Auckland",
                 "America/New_York", "America/Los_Angeles", "Pacific/Honolulu"):  # fmt: skip
        if 9 <= now.astimezone(zoneinfo.ZoneInfo(name)).hour < 22:
            return name
    return "UTC"


def _start_worker(queue: str, smtp_port: int, log_path: Path) -> subprocess.Popen:
    from django.db import connection

    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings_test",
        FIREBREAK_DB_NAME=str(connection.settings_dict["NAME"]),
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp_port),
    )
    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo",
         "--loglevel=INFO", "-Q", queue, "--hostname", f"{queue}-{uuid.uuid4().hex[:4]}@%h",
         "--without-mingle", "--without-gossip"],
        cwd=root, env=env, stdout=open(log_path, "a"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )  # fmt: skip


def _stop(worker: subprocess.Popen) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=15)
    except subprocess.TimeoutExpired:
        worker.kill()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_restarted_workers_never_send_a_reminder_twice(smtp_inbox, tmp_path):
    from tests.factories import make_incident

    zone = _zone_in_working_hours()
    ivy = make_user("ivy", first_name="Ivy", email="ivy@example.test", time_zone=zone)
    olga = make_user("olga", first_name="Olga", email="olga@example.test", time_zone=zone)
    manager = make_user("mia", first_name="Mia", email="mia@example.test", time_zone=zone)
    team = make_team("Payments", members=[olga], managers=[manager])
    incident = make_incident(declared_by=ivy)
    from incidents import services as incident_services

    incident_services.incident_transition(incident=incident, actor=ivy, to_status="resolved")
    today = timezone.now().astimezone(zoneinfo.ZoneInfo(zone)).date()
    item(incident, ivy, "Overdue a lot", owner=olga, team=team, due=today - dt.timedelta(days=9))
    item(incident, ivy, "Due tomorrow", owner=olga, team=team, due=today + dt.timedelta(days=1))

    queue = f"test-pm-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    worker = _start_worker(queue, smtp_inbox.port, log)
    try:
        for _ in range(3):  # a duplicated beat, a re-delivered message
            action_item_reminders_sweep.apply_async(queue=queue)
        smtp_inbox.wait_for(2, timeout=60)
    finally:
        _stop(worker)
    # A new worker on the same broker and database: it must remember nothing but the table.
    worker = _start_worker(queue, smtp_inbox.port, log)
    try:
        result = action_item_reminders_sweep.apply_async(queue=queue)
        for _ in range(2):
            action_item_reminders_sweep.apply_async(queue=queue)
        time.sleep(6)  # give any duplicate the chance to arrive
    finally:
        _stop(worker)
    assert result is not None
    received = smtp_inbox.messages
    recipients = sorted(m["To"] for m in received)
    assert recipients == ["mia@example.test", "olga@example.test"], log.read_text()[-3000:]
    digest = next(m for m in received if m["To"] == "olga@example.test")
    text = digest.get_body(preferencelist=("plain",)).get_content()
    assert "Overdue a lot" in text and "Due tomorrow" in text
    assert ReminderSent.objects.filter(sent_at__isnull=False).count() == 2
