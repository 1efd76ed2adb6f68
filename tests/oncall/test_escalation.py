"""Escalation: who is paged, when, exactly once, and what stops it."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents import paging
from incidents import services as incident_services
from oncall import services
from oncall.models import (
    ContactMethod,
    Escalation,
    EscalationPolicy,
    EscalationStep,
    Notification,
    NotificationRule,
    Page,
    StepTarget,
)
from oncall.tasks import notification_deliver, oncall_tick
from tests.factories import make_incident, make_service, make_user

pytestmark = pytest.mark.django_db


def policy_of(*steps, repeat=0, name="Payments on-call"):
    """steps: (delay_minutes, [users])"""
    policy = EscalationPolicy.objects.create(name=name, repeat_count=repeat)
    for position, (delay, users) in enumerate(steps):
        step = EscalationStep.objects.create(policy=policy, position=position, delay_minutes=delay)
        for user in users:
            StepTarget.objects.create(step=step, kind="user", user=user)
    return policy


@pytest.fixture
def people():
    return {
        "ivy": make_user("ivy", first_name="Ivy"),
        "raj": make_user("raj", first_name="Raj"),
        "mia": make_user("mia", first_name="Mia"),
    }


def declare_on(policy, declared_by, django_capture_on_commit_callbacks):
    service = make_service("Checkout")
    service.escalation_policy = policy
    service.save()
    with django_capture_on_commit_callbacks(execute=True):
        incident = make_incident(declared_by=declared_by, services_=[service], severity_name="SEV1")
    return incident


def deliver_due(callbacks):
    with callbacks(execute=True):
        oncall_tick()


def timeline_bodies(incident):
    return list(
        incident.timeline.filter(kind="paging").order_by("pk").values_list("body", flat=True)
    )


def test_declaring_on_a_service_pages_its_policy_first_step_at_once(
    people, django_capture_on_commit_callbacks
):
    policy = policy_of((5, [people["raj"]]), (5, [people["mia"]]))
    incident = declare_on(policy, people["ivy"], django_capture_on_commit_callbacks)
    escalation = Escalation.objects.get()
    assert escalation.subject_key == f"incident:{incident.pk}"
    assert list(Page.objects.values_list("user__username", flat=True)) == ["raj"]
    assert [m.to for m in mail.outbox] == [["raj@example.test"]]
    message = mail.outbox[0]
    assert f"[SEV1] {incident.reference}" in message.subject
    assert "/oncall/ack/" in message.body
    bodies = timeline_bodies(incident)
    assert bodies[0].startswith("Paging Payments on-call")
    assert any(b.startswith("Paged Raj") for b in bodies)
    assert any("Email to Raj: delivered." in b for b in bodies)


def test_the_next_step_fires_when_nobody_acknowledges_and_stops_when_someone_does(
    people, django_capture_on_commit_callbacks
):
    policy = policy_of((5, [people["raj"]]), (5, [people["mia"]]), repeat=1)
    declare_on(policy, people["ivy"], django_capture_on_commit_callbacks)
    start = timezone.now()
    with time_machine.travel(start + timedelta(minutes=4)):
        deliver_due(django_capture_on_commit_callbacks)
    assert Page.objects.count() == 1
    with time_machine.travel(start + timedelta(minutes=5, seconds=1)):
        deliver_due(django_capture_on_commit_callbacks)
    assert list(Page.objects.order_by("pk").values_list("user__username", flat=True)) == [
        "raj",
        "mia",
    ]
    escalation = Escalation.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        services.escalation_acknowledge(escalation=escalation, user=people["mia"], via="test")
    with time_machine.travel(start + timedelta(hours=2)):
        deliver_due(django_capture_on_commit_callbacks)
    assert Page.objects.count() == 2  # nobody else, ever
    escalation.refresh_from_db()
    assert escalation.state == "acknowledged" and escalation.acknowledged_by == people["mia"]


def test_a_policy_repeats_then_reports_that_nobody_answered(
    people, django_capture_on_commit_callbacks
):
    policy = policy_of((1, [people["raj"]]), repeat=2)
    incident = declare_on(policy, people["ivy"], django_capture_on_commit_callbacks)
    start = timezone.now()
    for minute in (1, 2, 3, 4):
        with time_machine.travel(start + timedelta(minutes=minute, seconds=1)):
            deliver_due(django_capture_on_commit_callbacks)
    assert Page.objects.filter(user=people["raj"]).count() == 3  # once and two repeats
    assert Escalation.objects.get().state == "exhausted"
    assert "Nobody acknowledged" in timeline_bodies(incident)[-1]


def test_editing_a_policy_never_changes_a_running_escalation(
    people, django_capture_on_commit_callbacks
):
    policy = policy_of((5, [people["raj"]]), (5, [people["mia"]]))
    declare_on(policy, people["ivy"], django_capture_on_commit_callbacks)
    StepTarget.objects.filter(user=people["mia"]).update(user=people["ivy"])
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        deliver_due(django_capture_on_commit_callbacks)
    assert Page.objects.filter(user=people["mia"]).exists()
    assert not Page.objects.filter(user=people["ivy"]).exists()


def test_personal_rules_delay_the_sms_and_an_acknowledgement_cancels_it(
    people, django_capture_on_commit_callbacks
):
    raj = people["raj"]
    sms = ContactMethod.objects.create(user=raj, kind="sms", address="+447700900123")
    NotificationRule.objects.create(user=raj, contact_method=sms, delay_minutes=5)
    policy = policy_of((30, [raj]))
    declare_on(policy, people["ivy"], django_capture_on_commit_callbacks)
    pending = Notification.objects.get(contact_method=sms)
    assert pending.state == "pending"
    assert pending.due_at - Page.objects.get().created_at == timedelta(minutes=5)
    with django_capture_on_commit_callbacks(execute=True):
        services.escalation_acknowledge(escalation=Escalation.objects.get(), user=raj, via="test")
    pending.refresh_from_db()
    assert pending.state == "cancelled"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_ticks_at_once_page_each_person_once(people, monkeypatch):
    """Two beats (or a tick and the on-commit task) racing on one due step."""
    monkeypatch.setattr(services, "notifications_enqueue", lambda ids: None)  # count only
    # The start message is lost, so only the racing ticks will run the first step.
    monkeypatch.setattr("oncall.tasks.escalation_advance_task.delay", lambda pk: None)
    policy = policy_of((5, [people["raj"], people["mia"]]))
    service = make_service("Search")
    service.escalation_policy = policy
    service.save()
    incident = make_incident(declared_by=people["ivy"], services_=[service])
    escalation = Escalation.objects.get(subject_key=f"incident:{incident.pk}")
    barrier = threading.Barrier(4)
    results = []

    def tick():
        try:
            barrier.wait()
            results.append(services.escalation_advance(escalation_id=escalation.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [False, False, False, True]
    assert Page.objects.count() == 2
    assert Notification.objects.count() == 2


def test_resolving_the_incident_stops_paging(people, django_capture_on_commit_callbacks):
    policy = policy_of((5, [people["raj"]]), (5, [people["mia"]]))
    incident = declare_on(policy, people["ivy"], django_capture_on_commit_callbacks)
    incident_services.incident_transition(
        incident=incident, actor=people["ivy"], to_status="resolved"
    )
    assert Escalation.objects.get().state == "resolved"
    with time_machine.travel(timezone.now() + timedelta(minutes=30)):
        deliver_due(django_capture_on_commit_callbacks)
    assert not Page.objects.filter(user=people["mia"]).exists()


def test_a_commander_pages_a_person_into_a_running_incident(
    people, django_capture_on_commit_callbacks
):
    incident = make_incident(declared_by=people["ivy"])
    with django_capture_on_commit_callbacks(execute=True):
        paging.incident_page(incident=incident, actor=people["ivy"], user=people["mia"])
    assert [m.to for m in mail.outbox] == [["mia@example.test"]]
    assert "Ivy paged Mia." in timeline_bodies(incident)


class TestAcknowledgeLink:
    def link(self, escalation, user):
        return reverse(
            "oncall:ack",
            kwargs={"token": services.ack_token(escalation_id=escalation.pk, user_id=user.pk)},
        )

    def test_opening_the_link_does_not_acknowledge_but_the_button_does(
        self, people, django_capture_on_commit_callbacks
    ):
        policy = policy_of((5, [people["raj"]]))
        incident = declare_on(policy, people["ivy"], django_capture_on_commit_callbacks)
        escalation = Escalation.objects.get()
        url = self.link(escalation, people["raj"])
        client = Client()
        page = client.get(url)
        assert page.status_code == 200 and b"Acknowledge as Raj" in page.content
        escalation.refresh_from_db()
        assert escalation.state == "active"
        with django_capture_on_commit_callbacks(execute=True):
            done = client.post(url)
        assert done.status_code == 200 and b"Acknowledged." in done.content
        escalation.refresh_from_db()
        assert escalation.state == "acknowledged" and escalation.acknowledged_by == people["raj"]
        assert any("Raj acknowledged the page" in b for b in timeline_bodies(incident))
        again = client.post(url)
        assert again.status_code == 409 and b"Already acknowledged by Raj" in again.content

    def test_tampered_expired_and_borrowed_links_are_refused_alike(
        self, people, django_capture_on_commit_callbacks
    ):
        policy = policy_of((5, [people["raj"]]))
        declare_on(policy, people["ivy"], django_capture_on_commit_callbacks)
        escalation = Escalation.objects.get()
        good = self.link(escalation, people["raj"])
        not_paged = self.link(escalation, people["mia"])
        tampered = good[:-3] + ("AAA" if not good.endswith("AAA/") else "BBB") + "/"
        tampered = good.rstrip("/")[:-2] + "xx/"
        other = Client()
        other.force_login(people["mia"])
        for client, url in ((Client(), tampered), (Client(), not_paged), (other, good)):
            response = client.post(url)
            assert response.status_code == 404
            assert b"This link does not work" in response.content
        with time_machine.travel(timezone.now() + timedelta(hours=25)):
            assert Client().post(good).status_code == 404
        escalation.refresh_from_db()
        assert escalation.state == "active"


def test_a_permanent_failure_is_recorded_and_shown_to_the_owner(
    people, settings, django_capture_on_commit_callbacks
):
    raj = people["raj"]
    hook = ContactMethod.objects.create(user=raj, kind="webhook", address="ftp://nowhere.invalid")
    NotificationRule.objects.create(user=raj, contact_method=hook, delay_minutes=0)
    policy = policy_of((5, [raj]))
    incident = declare_on(policy, people["ivy"], django_capture_on_commit_callbacks)
    failed = Notification.objects.get(contact_method=hook)
    assert failed.state == "failed"
    hook.refresh_from_db()
    assert hook.disabled_reason
    assert any("Signed webhook to Raj failed" in b for b in timeline_bodies(incident))


def test_a_stuck_claim_left_by_a_killed_worker_is_sent_again(
    people, django_capture_on_commit_callbacks, monkeypatch
):
    # The broker loses the delivery message: only the database knows it is due.
    real_enqueue = services.notifications_enqueue
    monkeypatch.setattr(services, "notifications_enqueue", lambda ids: None)
    policy = policy_of((5, [people["raj"]]))
    service = make_service("Login")
    service.escalation_policy = policy
    service.save()
    make_incident(declared_by=people["ivy"], services_=[service])
    services.escalation_advance(escalation_id=Escalation.objects.get().pk)
    notification = Notification.objects.get()
    assert services.notification_claim(notification_id=notification.pk) is not None
    # ...the worker dies here. Nobody else may send it while the claim is fresh:
    assert notification_deliver(notification.pk) == "not claimed"
    monkeypatch.setattr(services, "notifications_enqueue", real_enqueue)
    with time_machine.travel(timezone.now() + timedelta(minutes=3)):
        deliver_due(django_capture_on_commit_callbacks)
    notification.refresh_from_db()
    assert notification.state == "sent" and notification.attempts == 2
    assert len(mail.outbox) == 1


def test_an_alert_storm_is_throttled_and_bundled_not_dropped(
    people, settings, django_capture_on_commit_callbacks
):
    settings.NOTIFY_THROTTLE_COUNT = 3
    raj = people["raj"]
    for n in range(5):
        incident = make_incident(declared_by=people["ivy"], title=f"Storm {n}")
        with django_capture_on_commit_callbacks(execute=True):
            paging.incident_page(incident=incident, actor=people["ivy"], user=raj)
    assert len(mail.outbox) == 3
    assert Notification.objects.filter(state="throttled").count() == 2
    with time_machine.travel(
        timezone.now() + timedelta(seconds=settings.NOTIFY_THROTTLE_WINDOW_SECONDS + 1)
    ):
        deliver_due(django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 4
    bundle = mail.outbox[-1]
    assert "Storm 3" in bundle.body and "Storm 4" in bundle.body
    assert Notification.objects.filter(state="throttled").count() == 0


def test_acknowledge_versus_send_race_never_loses_the_record_or_sends_after_the_ack(
    people, django_capture_on_commit_callbacks, monkeypatch
):
    """A worker that claimed a notification just before the acknowledgement still records
    what it sent; anything not yet claimed is cancelled and never sent."""
    monkeypatch.setattr(services, "notifications_enqueue", lambda ids: None)
    raj = people["raj"]
    sms = ContactMethod.objects.create(user=raj, kind="sms", address="+447700900123")
    NotificationRule.objects.create(user=raj, contact_method=sms, delay_minutes=0)
    policy = policy_of((5, [raj]))
    declare_on(policy, people["ivy"], django_capture_on_commit_callbacks)
    email, text = Notification.objects.order_by("contact_method__kind")  # email, sms
    claimed = services.notification_claim(notification_id=email.pk)
    assert claimed is not None  # a worker is sending the email right now...
    with django_capture_on_commit_callbacks(execute=True):
        services.escalation_acknowledge(escalation=Escalation.objects.get(), user=raj, via="test")
    services.notification_record_sent(notification=claimed.notification, receipt="250 OK")
    email.refresh_from_db()
    assert email.state == "sent"  # ...and its delivery is recorded, not overwritten
    assert services.notification_claim(notification_id=text.pk) is None
    text.refresh_from_db()
    assert text.state == "cancelled"  # the SMS that had not gone yet never goes


def test_a_step_that_finds_nobody_on_call_says_so(people, django_capture_on_commit_callbacks):
    from oncall.models import Schedule

    empty = Schedule.objects.create(name="Nobody yet", slug="nobody-yet", time_zone="UTC")
    policy = EscalationPolicy.objects.create(name="Gap policy", repeat_count=0)
    step = EscalationStep.objects.create(policy=policy, position=0, delay_minutes=5)
    StepTarget.objects.create(step=step, kind="schedule", schedule=empty)
    incident = declare_on(policy, people["ivy"], django_capture_on_commit_callbacks)
    assert Page.objects.count() == 0
    assert any("found nobody on call" in b for b in timeline_bodies(incident))
    page = Client()
    page.force_login(people["ivy"])
    body = page.get(reverse("incidents:detail", kwargs={"pk": incident.pk})).content.decode()
    assert "Nobody on call to page yet" in body and "Starting…" not in body
