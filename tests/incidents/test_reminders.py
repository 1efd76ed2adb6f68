from __future__ import annotations

import time
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from incidents import services
from incidents.models import Incident, TimelineKind
from incidents.tasks import stakeholder_update_reminder_send, stakeholder_update_reminders_sweep
from tests.factories import make_incident, make_user


def overdue_incident(commander, comms=None, minutes_overdue=5):
    incident = make_incident(declared_by=commander, severity_name="SEV1")
    if comms:
        services.role_assign(
            incident=incident, actor=commander, user=comms, role="communications_lead"
        )
    Incident.objects.filter(pk=incident.pk).update(
        next_update_due_at=timezone.now() - timedelta(minutes=minutes_overdue)
    )
    return incident


@pytest.mark.django_db
def test_the_communications_lead_is_reminded_once_per_missed_update(commander):
    cora = make_user("cora", first_name="Cora", email="cora@example.test")
    incident = overdue_incident(commander, cora)

    assert stakeholder_update_reminders_sweep() == 1
    assert stakeholder_update_reminders_sweep() == 0  # same missed update: no second email
    assert stakeholder_update_reminder_send(incident.pk) == 0
    assert [m.to for m in mail.outbox] == [["cora@example.test"]]
    assert incident.reference in mail.outbox[0].subject
    assert f"/incidents/{incident.pk}/" in mail.outbox[0].body
    reminder = incident.timeline.get(kind=TimelineKind.REMINDER)
    assert "reminded Cora by email" in reminder.body
    assert incident.update_reminders.get().state == "sent"

    # Another full cadence (30 min for SEV1) passes with no update: that is a second miss.
    with time_machine.travel(timezone.now() + timedelta(minutes=30)):
        assert stakeholder_update_reminders_sweep() == 1
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_without_a_communications_lead_the_commander_is_reminded(commander):
    overdue_incident(commander)
    stakeholder_update_reminders_sweep()
    assert [m.to for m in mail.outbox] == [[commander.email]]


@pytest.mark.django_db
def test_posting_an_update_means_no_reminder(commander):
    incident = overdue_incident(commander)
    services.stakeholder_update_post(incident=incident, author=commander, body="All good now")
    assert stakeholder_update_reminders_sweep() == 0
    assert mail.outbox == []


@pytest.mark.django_db
def test_resolved_incidents_need_no_updates(commander):
    incident = overdue_incident(commander)
    services.incident_transition(incident=incident, actor=commander, to_status="resolved")
    assert stakeholder_update_reminders_sweep() == 0


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_worker_sends_the_overdue_reminder_by_smtp_exactly_once(
    celery_worker_process, smtp_inbox
):
    commander = make_user("ivy", first_name="Ivy", email="ivy@example.test")
    cora = make_user("cora", first_name="Cora", email="cora@example.test")
    incident = overdue_incident(commander, cora)

    # Three deliveries of the sweep, as a duplicated beat or a re-delivered message would.
    for _ in range(3):
        stakeholder_update_reminders_sweep.apply_async(queue=celery_worker_process.queue)
    received = smtp_inbox.wait_for(1, timeout=60)
    time.sleep(3)  # give any duplicate the chance to arrive
    received = smtp_inbox.messages
    assert len(received) == 1, celery_worker_process.log_path.read_text()[-3000:]
    message = received[0]
    assert message["To"] == "cora@example.test"
    assert f"Stakeholder update overdue: {incident.reference}" in message["Subject"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert f"/incidents/{incident.pk}/" in text
    assert incident.timeline.filter(kind=TimelineKind.REMINDER).count() == 1


@pytest.mark.django_db
def test_the_email_is_plain_text_in_the_recipients_zone(commander):
    cora = make_user("cora", first_name="Cora", time_zone="America/Chicago")
    incident = overdue_incident(commander, cora)
    Incident.objects.filter(pk=incident.pk).update(title="Cart & checkout 'down' <EU>")
    stakeholder_update_reminders_sweep()
    message = mail.outbox[0]
    assert message.subject.endswith("Cart & checkout 'down' <EU>")
    assert "Cart & checkout 'down' <EU>" in message.body
    assert "(America/Chicago)" in message.body
    assert " CST " in message.body or " CDT " in message.body


@pytest.mark.django_db
def test_a_failed_send_is_recorded_not_claimed_as_sent(commander, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    incident = overdue_incident(commander)
    assert stakeholder_update_reminders_sweep() == 0
    entry = incident.timeline.get(kind=TimelineKind.REMINDER)
    assert "could not be sent" in entry.body
    assert "reminded" not in entry.body
    assert incident.update_reminders.get().state == "failed"


@pytest.mark.django_db
def test_a_reminder_left_by_a_killed_worker_is_sent_by_the_next_sweep(commander):
    from incidents.services import (
        stakeholder_update_reminder_claim,
        stakeholder_update_reminder_due,
    )

    incident = overdue_incident(commander)
    reminder = stakeholder_update_reminder_due(incident_id=incident.pk)
    assert stakeholder_update_reminder_claim(reminder_id=reminder.pk) is not None
    # ... and the worker dies here, before sending. A second claim now is refused:
    assert stakeholder_update_reminder_claim(reminder_id=reminder.pk) is None
    assert stakeholder_update_reminders_sweep() == 0
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        assert stakeholder_update_reminders_sweep() == 1
    assert len(mail.outbox) == 1
