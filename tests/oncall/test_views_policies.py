"""Escalation policy pages: ordered steps with targets, validation, who may edit, and the
promise that editing never changes an escalation already running."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from oncall import services
from oncall.models import EscalationPolicy, Schedule
from tests.factories import make_service, make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    ivy = make_user("ivy", first_name="Ivy")
    mia = make_user("mia", first_name="Mia")
    olly = make_user("olly", first_name="Olly")
    team = make_team("Platform", members=[ivy], managers=[mia])
    schedule = Schedule.objects.create(name="Platform primary", slug="platform-primary", team=team)
    return {"ivy": ivy, "mia": mia, "olly": olly, "team": team, "schedule": schedule}


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def management(total: int, initial: int = 0) -> dict:
    return {
        "steps-TOTAL_FORMS": str(total),
        "steps-INITIAL_FORMS": str(initial),
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "20",
    }


def policy_post(world, **extra) -> dict:
    data = {"name": "Platform on-call", "team": world["team"].pk, "repeat_count": "2"}
    data.update(management(3))
    data.update(
        {
            "steps-0-delay_minutes": "10",
            "steps-0-schedules": [world["schedule"].pk],
            "steps-1-delay_minutes": "15",
            "steps-1-users": [world["mia"].pk],
            "steps-1-teams": [world["team"].pk],
            "steps-2-delay_minutes": "15",  # the untouched extra form
        }
    )
    data.update(extra)
    return data


def test_a_member_creates_a_policy_with_ordered_steps(world):
    response = signed_in(world["ivy"]).post(reverse("oncall:policy_create"), policy_post(world))
    assert response.status_code == 302
    policy = EscalationPolicy.objects.get()
    steps = list(policy.steps.order_by("position"))
    assert [s.delay_minutes for s in steps] == [10, 15]
    assert [t.kind for t in steps[0].targets.all()] == ["schedule"]
    assert sorted(t.kind for t in steps[1].targets.all()) == ["team", "user"]
    page = signed_in(world["olly"]).get(response["Location"]).content.decode()
    assert "whoever is on call on" in page and "Platform primary" in page
    assert "runs 2 more times" in page
    assert "Pages already under way keep the steps they started with" in page
    assert "Edit policy" not in page  # Olly reads, but does not change it


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (
            {"steps-1-users": [], "steps-1-teams": [], "steps-1-delay_minutes": "20"},
            "This step pages nobody",
        ),
        ({"steps-0-delay_minutes": "0"}, "Wait at least one minute"),
        ({"repeat_count": "12"}, "at most 9"),
    ],
)
def test_impossible_policies_are_refused(world, changes, error):
    response = signed_in(world["ivy"]).post(
        reverse("oncall:policy_create"), policy_post(world, **changes)
    )
    assert response.status_code == 422
    assert error in response.content.decode()
    assert not EscalationPolicy.objects.exists()


def test_a_policy_needs_at_least_one_step(world):
    data = {"name": "Empty", "team": world["team"].pk, "repeat_count": "0"}
    data.update(management(1))
    data["steps-0-delay_minutes"] = "15"
    response = signed_in(world["ivy"]).post(reverse("oncall:policy_create"), data)
    assert response.status_code == 422
    assert "at least one step" in response.content.decode()


def test_editing_keeps_unchanged_steps_and_removes_ticked_ones(world):
    client = signed_in(world["ivy"])
    client.post(reverse("oncall:policy_create"), policy_post(world))
    policy = EscalationPolicy.objects.get()
    form = client.get(reverse("oncall:policy_edit", args=[policy.pk]))
    assert form.status_code == 200
    data = policy_post(world)
    data.update(management(3, initial=2))
    data["steps-0-DELETE"] = "on"
    response = client.post(reverse("oncall:policy_edit", args=[policy.pk]), data)
    assert response.status_code == 302
    [step] = policy.steps.all()
    assert step.delay_minutes == 15 and step.position == 0


def test_editing_does_not_change_a_running_escalation(world):
    client = signed_in(world["ivy"])
    client.post(reverse("oncall:policy_create"), policy_post(world))
    policy = EscalationPolicy.objects.get()
    escalation = services.escalation_start(
        policy=policy, subject_key="incident:1", title="Checkout down"
    )
    before = escalation.snapshot
    data = policy_post(world, **{"steps-0-delay_minutes": "30"})
    data.update(management(3, initial=2))
    client.post(reverse("oncall:policy_edit", args=[policy.pk]), data)
    escalation.refresh_from_db()
    assert escalation.snapshot == before
    assert policy.steps.order_by("position").first().delay_minutes == 30


def test_outsiders_cannot_create_or_edit(world):
    client = signed_in(world["ivy"])
    client.post(reverse("oncall:policy_create"), policy_post(world))
    policy = EscalationPolicy.objects.get()
    outsider = signed_in(world["olly"])
    assert outsider.get(reverse("oncall:policy_create")).status_code == 403
    assert outsider.get(reverse("oncall:policy_edit", args=[policy.pk])).status_code == 403
    other_team = make_team("Payments")
    refused = client.post(
        reverse("oncall:policy_create"), policy_post(world, name="X", team=other_team.pk)
    )
    assert refused.status_code == 422  # not a team Ivy may choose


def test_the_list_and_detail_show_which_services_use_each_policy(world):
    signed_in(world["ivy"]).post(reverse("oncall:policy_create"), policy_post(world))
    policy = EscalationPolicy.objects.get()
    service = make_service("Checkout", team=world["team"])
    service.escalation_policy = policy
    service.save()
    listing = signed_in(world["olly"]).get(reverse("oncall:policy_list")).content.decode()
    assert "Platform on-call" in listing and "Checkout" in listing
    detail = signed_in(world["olly"]).get(reverse("oncall:policy_detail", args=[policy.pk]))
    assert "Checkout" in detail.content.decode()
