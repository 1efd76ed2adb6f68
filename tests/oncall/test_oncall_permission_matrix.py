"""Every on-call URL, for every persona, generated from the URLconf.

A URL added to oncall/urls.py must be placed in exactly one group below, or the suite
fails until it is: nobody adds a page without saying who may use it.
"""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from django.test import Client
from django.urls import URLPattern, get_resolver, reverse
from django.utils import timezone

from oncall.models import (
    ContactMethod,
    EscalationPolicy,
    EscalationStep,
    LayerParticipant,
    NotificationRule,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
    StepTarget,
)
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db

# Anyone signed in may read these.
READ = {"home", "schedule_list", "schedule_detail", "policy_list", "policy_detail"}
# Your own things: open to everyone signed in, acting on themselves only.
SELF = {"contact_method_create", "rule_create", "user_feed_publish", "user_feed_revoke"}
# Someone's own objects by id: another person's answer 404, like a missing one.
OWNED = {
    "contact_method_edit",
    "contact_method_delete",
    "contact_method_test",
    "contact_method_secret",
    "rule_delete",
}
# Changing a team's schedules and policies: its members, or staff.
TEAM_EDIT = {
    "schedule_create",
    "schedule_edit",
    "layer_create",
    "layer_edit",
    "layer_delete",
    "override_create",
    "override_delete",
    "shift_take",
    "schedule_feed_publish",
    "schedule_feed_revoke",
    "policy_create",
    "policy_edit",
}
# The secret URL (or signed token) is the credential: no session needed.
PUBLIC = {"ack", "schedule_feed", "user_feed"}
GET_OK = READ | {
    "contact_method_create",
    "contact_method_edit",
    "schedule_create",
    "schedule_edit",
    "layer_create",
    "layer_edit",
    "override_create",
    "policy_create",
    "policy_edit",
}


def oncall_patterns() -> list[URLPattern]:
    namespace = get_resolver().namespace_dict["oncall"][1]
    return [p for p in namespace.url_patterns if isinstance(p, URLPattern) and p.name]


def names(*groups) -> list[str]:
    wanted = set().union(*groups) if groups else None
    return sorted(p.name for p in oncall_patterns() if wanted is None or p.name in wanted)


@pytest.fixture
def world():
    ivy = make_user("ivy", first_name="Ivy")
    mia = make_user("mia", first_name="Mia")
    olly = make_user("olly", first_name="Olly")
    ada = make_user("ada", first_name="Ada", is_staff=True)
    team = make_team("Platform", members=[ivy], managers=[mia])
    schedule = Schedule.objects.create(name="Platform primary", slug="platform-primary", team=team)
    layer = ScheduleLayer.objects.create(
        schedule=schedule, name="Weekly", start_date=date(2026, 3, 2), handoff_time=time(9)
    )
    LayerParticipant.objects.create(layer=layer, user=ivy, position=0)
    now = timezone.now()
    override = ScheduleOverride.objects.create(
        schedule=schedule, user=mia, starts_at=now, ends_at=now + timedelta(hours=2)
    )
    policy = EscalationPolicy.objects.create(name="Platform on-call", team=team)
    step = EscalationStep.objects.create(policy=policy, position=0, delay_minutes=5)
    StepTarget.objects.create(step=step, kind="schedule", schedule=schedule)
    method = ContactMethod.objects.get(user=ivy)
    rule = NotificationRule.objects.get(user=ivy)
    return {
        "ivy": ivy,
        "mia": mia,
        "olly": olly,
        "ada": ada,
        "schedule": schedule,
        "layer": layer,
        "override": override,
        "policy": policy,
        "method": method,
        "rule": rule,
    }


def url_for(name: str, world) -> str:
    pattern = next(p for p in oncall_patterns() if p.name == name)
    kwargs = {}
    for arg in pattern.pattern.regex.groupindex:
        if arg == "slug":
            kwargs[arg] = world["schedule"].slug
        elif arg == "layer_id":
            kwargs[arg] = world["layer"].pk
        elif arg == "override_id":
            kwargs[arg] = world["override"].pk
        elif arg == "token":
            kwargs[arg] = "not-a-real-token"
        elif arg == "pk" and name.startswith("contact_method"):
            kwargs[arg] = world["method"].pk
        elif arg == "pk" and name.startswith("rule"):
            kwargs[arg] = world["rule"].pk
        elif arg == "pk" and name.startswith("policy"):
            kwargs[arg] = world["policy"].pk
        else:
            raise AssertionError(f"teach the permission matrix how to fill {arg} in {name}")
    return reverse(f"oncall:{name}", kwargs=kwargs)


def signed_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def hit(client: Client, name: str, world):
    url = url_for(name, world)
    return client.get(url) if name in GET_OK else client.post(url, {})


def test_every_url_is_in_exactly_one_group():
    groups = [READ, SELF, OWNED, TEAM_EDIT, PUBLIC]
    for name in names():
        homes = [g for g in groups if name in g]
        assert len(homes) == 1, f"{name} must be in exactly one group, not {len(homes)}"
    assert set().union(*groups) == set(names()), "a group names a URL that no longer exists"


@pytest.mark.parametrize("name", names(READ, SELF, OWNED, TEAM_EDIT))
def test_anonymous_visitors_are_sent_to_sign_in(name, world):
    response = hit(Client(), name, world)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", names(PUBLIC))
def test_public_urls_with_a_wrong_secret_find_nothing(name, world):
    for client in (Client(), signed_in(world["ivy"])):
        assert client.get(url_for(name, world)).status_code == 404


@pytest.mark.parametrize("name", names(READ))
def test_anyone_signed_in_reads(name, world):
    assert signed_in(world["olly"]).get(url_for(name, world)).status_code == 200


@pytest.mark.parametrize("name", names(TEAM_EDIT))
def test_people_outside_the_team_cannot_change_it(name, world):
    before = (ScheduleOverride.objects.count(), ScheduleLayer.objects.count())
    response = hit(signed_in(world["olly"]), name, world)
    assert response.status_code == 403, (name, response.status_code)
    assert (ScheduleOverride.objects.count(), ScheduleLayer.objects.count()) == before
    world["schedule"].refresh_from_db()
    assert world["schedule"].ical_token_hash == ""


@pytest.mark.parametrize("name", names(TEAM_EDIT))
@pytest.mark.parametrize("who", ["ivy", "mia", "ada"])
def test_members_managers_and_staff_can_change_it(name, who, world):
    response = hit(signed_in(world[who]), name, world)
    assert response.status_code in (200, 302, 422), (who, name, response.status_code)


@pytest.mark.parametrize("name", names(OWNED))
def test_another_persons_things_answer_as_missing(name, world):
    response = hit(signed_in(world["mia"]), name, world)
    assert response.status_code == 404
    assert ContactMethod.objects.filter(pk=world["method"].pk).exists()
    assert NotificationRule.objects.filter(pk=world["rule"].pk).exists()


@pytest.mark.parametrize("name", names(OWNED | SELF))
def test_the_owner_reaches_their_own(name, world, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    if name == "contact_method_secret":  # only signed webhooks have a secret to replace
        ContactMethod.objects.filter(pk=world["method"].pk).update(
            kind="webhook", address="https://hooks.example.test/x", secret="s" * 43
        )
    response = hit(signed_in(world["ivy"]), name, world)
    assert response.status_code in (200, 302, 422), (name, response.status_code)


@pytest.mark.parametrize("name", sorted(set(names()) - GET_OK - PUBLIC))
def test_state_changes_without_a_csrf_token_are_refused(name, world):
    client = signed_in(world["ada"], enforce_csrf_checks=True)
    assert client.post(url_for(name, world), {}).status_code == 403


@pytest.mark.parametrize("name", sorted(set(names()) - GET_OK - PUBLIC))
def test_state_changes_refuse_get(name, world):
    assert signed_in(world["ada"]).get(url_for(name, world)).status_code == 405
