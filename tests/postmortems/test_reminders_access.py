"""Reminders and people pickers never reveal a restricted incident to someone who cannot see it."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.core import mail
from django.db import transaction
from django.test import Client
from django.urls import reverse

from incidents import services as incident_services
from incidents.permissions import incident_grant_access
from postmortems import services
from postmortems.models import Postmortem
from postmortems.tasks import action_item_reminders_sweep, postmortem_policy_sweep
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db

MONDAY_MORNING = dt.datetime(2025, 3, 10, 9, 30, tzinfo=dt.UTC)
TODAY = MONDAY_MORNING.date()


def grant(incident, user, *, respond=False):
    with transaction.atomic():
        incident_grant_access(incident=incident, user=user, respond=respond)


def item(incident, actor, title, *, owner, due, team=None):
    return services.action_item_create(
        incident=incident, actor=actor, title=title, item_type="corrective",
        owner=owner, team=team, due_date=due,
    )  # fmt: skip


@pytest.fixture
def olga(db):
    return make_user("olga", first_name="Olga", email="olga@example.test")


@pytest.fixture
def secret(commander, make_resolved_incident):
    return make_resolved_incident(declared_by=commander, restricted=True, title="Secret breach")


def test_a_manager_is_not_told_about_items_on_incidents_they_cannot_see(
    commander, olga, secret, make_resolved_incident
):
    manager = make_user("mia", email="mia@example.test")  # a responder, no grant on `secret`
    team = make_team("Payments", members=[olga], managers=[manager])
    grant(secret, olga)
    public = make_resolved_incident(declared_by=commander)
    late = TODAY - dt.timedelta(days=9)
    item(secret, commander, "Rotate the leaked signing key", owner=olga, team=team, due=late)
    item(public, commander, "Add a checkout error alert", owner=olga, team=team, due=late)

    with time_machine.travel(MONDAY_MORNING, tick=False):
        assert action_item_reminders_sweep()["escalations"] == 1
    [escalation] = [m for m in mail.outbox if m.to == ["mia@example.test"]]
    html = escalation.alternatives[0][0]
    for text in (escalation.subject, escalation.body, html):
        assert "leaked signing key" not in text
        assert secret.reference not in text
    assert "Add a checkout error alert" in escalation.body
    assert escalation.subject.startswith("Escalation: 1 action item ")

    grant(secret, manager)  # given access later: told then
    mail.outbox.clear()
    with time_machine.travel(MONDAY_MORNING + dt.timedelta(hours=1), tick=False):
        assert action_item_reminders_sweep()["escalations"] == 1
    assert "Rotate the leaked signing key" in mail.outbox[-1].body


def test_an_owner_who_lost_access_is_told_how_many_items_but_not_which(
    commander, olga, make_resolved_incident
):
    incident = make_resolved_incident(declared_by=commander, title="Payroll export")
    item(incident, commander, "Encrypt the payroll bucket", owner=olga, due=TODAY)
    incident_services.incident_set_restricted(incident=incident, actor=commander, restricted=True)

    with time_machine.travel(MONDAY_MORNING, tick=False):
        assert action_item_reminders_sweep()["digests"] == 1
    [digest] = mail.outbox
    html = digest.alternatives[0][0]
    for text in (digest.subject, digest.body, html):
        assert "payroll" not in text.lower()
        assert incident.reference not in text
    assert "1 item on an incident you can no longer see" in digest.body
    assert "1 item you can no longer see" in digest.subject


def test_a_late_postmortem_the_owner_cannot_see_is_not_named(
    commander, olga, make_resolved_incident
):
    incident = make_resolved_incident(declared_by=commander, title="Payroll export")
    postmortem = services.postmortem_create(incident=incident, actor=commander)
    Postmortem.objects.filter(pk=postmortem.pk).update(owner=olga, due_date=dt.date(2025, 3, 5))
    incident_services.incident_set_restricted(incident=incident, actor=commander, restricted=True)

    with time_machine.travel(MONDAY_MORNING, tick=False):
        assert postmortem_policy_sweep()["reminded"] == 1
    [reminder] = mail.outbox
    for text in (reminder.subject, reminder.body, reminder.alternatives[0][0]):
        assert "payroll" not in text.lower()
        assert incident.reference not in text
    assert "1 late postmortem of an incident you can no longer see" in reminder.body


def _pickers(html: str, field: str) -> list[set[str]]:
    """The options of every <select> for `field` (with or without a form prefix)."""
    selects = re.findall(rf'<select name="(?:\w+-)?{field}"[^>]*>(.*?)</select>', html, re.S)
    return [set(re.findall(r"<option[^>]*>([^<]*)</option>", s)) for s in selects]


def test_owner_and_reviewer_pickers_offer_only_people_who_can_see_the_incident(
    commander, responder, secret
):
    insider = make_user("ina", first_name="Ina")
    grant(secret, insider)
    postmortem = services.postmortem_create(incident=secret, actor=commander)
    client = Client()
    client.force_login(commander)
    page = client.get(reverse("postmortems:detail", args=[postmortem.pk])).content.decode()
    pickers = _pickers(page, "owner") + _pickers(page, "reviewers")
    assert len(pickers) == 3  # the details' owner, a new item's owner, the reviewers
    for people in pickers:
        assert "Ina" in people and "Ivy" in people
        assert "Raj" not in people  # a responder without access to this incident

    url = reverse("postmortems:submit", args=[postmortem.pk])
    assert client.post(url, {"reviewers": [responder.pk]}).status_code == 422
    response = client.post(
        reverse("postmortems:action_item_create", args=[postmortem.pk]),
        {
            "item-title": "Rotate keys",
            "item-item_type": "corrective",
            "item-priority": 2,
            "item-owner": responder.pk,
        },
    )  # fmt: skip
    assert response.status_code == 422
    assert not postmortem.incident.action_items.exists()
