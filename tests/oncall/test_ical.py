"""iCal feeds, read back the way a calendar application reads them."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time

import icalendar
import pytest
import recurring_ical_events
import time_machine
from django.test import Client
from django.urls import reverse

from oncall.models import LayerParticipant, Schedule, ScheduleLayer, ScheduleOverride
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def people():
    return {
        "ivy": make_user("ivy", first_name="Ivy", time_zone="Europe/London"),
        "mia": make_user("mia", first_name="Mia", time_zone="America/Chicago"),
    }


@pytest.fixture
def schedule(people):
    team = make_team("Platform", members=[people["ivy"]])
    schedule = Schedule.objects.create(
        name="Platform primary", slug="platform-primary", team=team, time_zone="Europe/London"
    )
    layer = ScheduleLayer.objects.create(
        schedule=schedule,
        name="Weekly",
        shift_unit="weeks",
        start_date=date(2026, 3, 2),
        handoff_time=time(9, 0),
    )
    for position, name in enumerate(["ivy", "mia"]):
        LayerParticipant.objects.create(layer=layer, user=people[name], position=position)
    return schedule


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def feed_path(feed_url: str) -> str:
    return feed_url.split("testserver", 1)[1]


def publish_schedule_feed(client, schedule) -> str:
    response = client.post(reverse("oncall:schedule_feed_publish", args=[schedule.slug]))
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    start = page.index("http://testserver/oncall/feeds/schedule/")
    return page[start : page.index("</code>", start)]


def events_between(body: bytes, start, end):
    calendar = icalendar.Calendar.from_ical(body)
    return sorted(
        recurring_ical_events.of(calendar).between(start, end), key=lambda e: e["DTSTART"].dt
    )


def test_a_schedule_feed_is_valid_icalendar_with_every_shift(schedule, people):
    url = publish_schedule_feed(signed_in(people["ivy"]), schedule)
    response = Client().get(feed_path(url))  # no session: the URL is the credential
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    calendar = icalendar.Calendar.from_ical(response.content)
    assert calendar["VERSION"] == "2.0" and calendar["PRODID"]
    events = events_between(
        response.content, datetime(2026, 3, 2, 12, tzinfo=UTC), datetime(2026, 3, 22, tzinfo=UTC)
    )
    assert [(e["SUMMARY"], e["DTSTART"].dt, e["DTEND"].dt) for e in events] == [
        (
            "Ivy on call: Platform primary",
            datetime(2026, 3, 2, 9, tzinfo=UTC),
            datetime(2026, 3, 9, 9, tzinfo=UTC),
        ),
        (
            "Mia on call: Platform primary",
            datetime(2026, 3, 9, 9, tzinfo=UTC),
            datetime(2026, 3, 16, 9, tzinfo=UTC),
        ),
        (
            "Ivy on call: Platform primary",
            datetime(2026, 3, 16, 9, tzinfo=UTC),
            datetime(2026, 3, 23, 9, tzinfo=UTC),
        ),
    ]
    for event in events:
        assert event["DTSTAMP"].dt == NOW
        assert event["UID"].endswith("@firebreak")
    # After London's clocks change, the 09:00 handoff is 08:00 UTC.
    later = events_between(response.content, date(2026, 3, 30), date(2026, 4, 6))
    assert later[-1]["DTSTART"].dt == datetime(2026, 3, 30, 8, tzinfo=UTC)


def test_uids_stay_the_same_when_the_feed_is_fetched_again(schedule, people):
    url = feed_path(publish_schedule_feed(signed_in(people["ivy"]), schedule))
    first = {
        e["UID"]: e["DTSTART"].dt
        for e in events_between(Client().get(url).content, date(2026, 3, 1), date(2026, 5, 1))
    }
    with time_machine.travel(datetime(2026, 3, 5, 12, tzinfo=UTC), tick=False):
        second = Client().get(url).content
    again = {
        e["UID"]: e["DTSTART"].dt
        for e in events_between(second, date(2026, 3, 1), date(2026, 5, 1))
    }
    assert first == again and len(first) >= 6


def test_an_override_shows_in_the_feed(schedule, people):
    ScheduleOverride.objects.create(
        schedule=schedule,
        user=people["mia"],
        starts_at=datetime(2026, 3, 5, 12, tzinfo=UTC),
        ends_at=datetime(2026, 3, 5, 18, tzinfo=UTC),
    )
    url = feed_path(publish_schedule_feed(signed_in(people["ivy"]), schedule))
    events = events_between(Client().get(url).content, date(2026, 3, 5), date(2026, 3, 6))
    assert [e["SUMMARY"] for e in events] == [
        "Ivy on call: Platform primary",
        "Mia on call: Platform primary",
        "Ivy on call: Platform primary",
    ]


def test_only_the_tokens_hash_is_stored_and_revoking_kills_the_url(schedule, people):
    client = signed_in(people["ivy"])
    url = publish_schedule_feed(client, schedule)
    token = url.rsplit("/", 1)[1].removesuffix(".ics")
    schedule.refresh_from_db()
    assert schedule.ical_token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert (
        token
        not in client.get(reverse("oncall:schedule_detail", args=[schedule.slug])).content.decode()
    )
    client.post(reverse("oncall:schedule_feed_revoke", args=[schedule.slug]))
    assert Client().get(feed_path(url)).status_code == 404


def test_a_new_address_replaces_the_old_one(schedule, people):
    client = signed_in(people["ivy"])
    old = publish_schedule_feed(client, schedule)
    new = publish_schedule_feed(client, schedule)
    assert old != new
    assert Client().get(feed_path(old)).status_code == 404
    assert Client().get(feed_path(new)).status_code == 200


def test_wrong_and_empty_tokens_find_nothing(schedule):
    Schedule.objects.filter(pk=schedule.pk).update(ical_token_hash="")
    assert Client().get("/oncall/feeds/schedule/guess.ics").status_code == 404
    assert Client().get("/oncall/feeds/user/guess.ics").status_code == 404


def test_outsiders_cannot_publish_a_teams_schedule(schedule):
    outsider = make_user("olly")
    response = signed_in(outsider).post(
        reverse("oncall:schedule_feed_publish", args=[schedule.slug])
    )
    assert response.status_code == 403
    schedule.refresh_from_db()
    assert schedule.ical_token_hash == ""


def test_a_person_gets_their_own_shifts_across_schedules(schedule, people):
    other = Schedule.objects.create(name="Payments", slug="payments", time_zone="America/New_York")
    layer = ScheduleLayer.objects.create(
        schedule=other,
        name="Daily",
        shift_unit="days",
        start_date=date(2026, 3, 2),
        handoff_time=time(10, 0),
    )
    LayerParticipant.objects.create(layer=layer, user=people["mia"], position=0)
    client = signed_in(people["mia"])
    response = client.post(reverse("oncall:user_feed_publish"), follow=True)
    body = response.content.decode()
    start = body.index("http://testserver/oncall/feeds/user/")
    url = body[start : body.index("</code>", start)]
    events = events_between(
        Client().get(feed_path(url)).content, date(2026, 3, 9), date(2026, 3, 10)
    )
    assert {e["SUMMARY"] for e in events} == {
        "Mia on call: Platform primary",
        "Mia on call: Payments",
    }
    assert url not in client.get(reverse("profile")).content.decode()  # shown once
    client.post(reverse("oncall:user_feed_revoke"))
    assert Client().get(feed_path(url)).status_code == 404
