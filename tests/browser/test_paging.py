"""Paging as the people involved see it: an incident declared on a service pages its
on-call, who acknowledges from the link in the email (not signed in), and the commander's
incident page shows the acknowledgement without a reload."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from oncall.models import EscalationPolicy, EscalationStep, StepTarget
from tests.factories import make_incident, make_service, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_the_paged_person_acknowledges_from_the_email_link_and_the_commander_sees_it(
    page_as, screenshot
):
    ivy = make_user("ivy", first_name="Ivy")
    raj = make_user("raj", first_name="Raj", email="raj@example.test")
    policy = EscalationPolicy.objects.create(name="Payments on-call", repeat_count=0)
    step = EscalationStep.objects.create(policy=policy, position=0, delay_minutes=5)
    StepTarget.objects.create(step=step, kind="user", user=raj)
    service = make_service("Checkout")
    service.escalation_policy = policy
    service.save()
    incident = make_incident(declared_by=ivy, services_=[service], severity_name="SEV1")

    # The email Raj receives carries a one-click acknowledge link.
    assert [m.to for m in mail.outbox] == [["raj@example.test"]]
    link = re.search(r"https?://\S+/oncall/ack/\S+/", mail.outbox[0].body).group(0)
    path = "/oncall/" + link.split("/oncall/", 1)[1]

    commander = page_as(ivy)
    commander.goto(f"/incidents/{incident.pk}/")
    paging = commander.locator("#paging-live")
    expect(paging).to_contain_text("Escalating")
    expect(paging).to_contain_text("Raj")
    commander.evaluate("window.__stayed = true")

    phone = page_as(None)  # not signed in, as on a phone
    phone.goto(path)
    expect(phone.get_by_role("heading", level=1)).to_contain_text(incident.reference)
    screenshot(phone, "paging-ack-link")
    phone.get_by_role("button", name="Acknowledge as Raj").click()
    expect(phone.get_by_role("status")).to_contain_text("Acknowledged")

    expect(paging).to_contain_text("Acknowledged by Raj", timeout=8_000)
    timeline = commander.locator("ol#timeline-entries")
    expect(timeline).to_contain_text("Raj acknowledged the page (from the link)")
    assert commander.evaluate("window.__stayed") is True  # no reload
    screenshot(commander, "paging-acknowledged")
    assert commander.server_errors == [] and phone.server_errors == []
