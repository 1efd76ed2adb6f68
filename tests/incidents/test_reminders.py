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
