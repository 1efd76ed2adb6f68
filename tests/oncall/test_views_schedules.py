"""Schedule pages: who is on call, the calendar of the final schedule, layers, overrides,
"take this shift", gap warnings and who may change what."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from oncall.models import LayerParticipant, Schedule, ScheduleLayer, ScheduleOverride
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db

# Wednesday 4 March 2026, 12:00 UTC (12:00 in London, 06:00 in Chicago).
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
        "raj": make_user("raj", first_name="Raj", time_zone="America/Chicago"),
    }


@pytest.fixture
def schedule(people):
    team = make_team("Platform", members=[people["ivy"]], managers=[people["mia"]])
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


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def detail(schedule) -> str:
    return reverse("oncall:schedule_detail", args=[schedule.slug])


def layer_data(**overrides) -> dict:
    data = {
        "name": "Business hours",
        "level": "2",
        "shift_unit": "days",
        "shift_count": "1",
        "start_date": "2026-03-02",
        "handoff_time": "09:00",
        "restrict_start": "",
        "restrict_end": "",
        "participant_0": "",
        "participant_1": "",
        "participant_2": "",
    }
    data.update(overrides)
    return data


def test_anyone_signed_in_sees_who_is_on_call_now(schedule, people):
    body = client_for(people["raj"]).get(reverse("oncall:schedule_list")).content.decode()
    assert "Platform primary" in body and "Ivy" in body
    page = client_for(people["raj"]).get(detail(schedule)).content.decode()
    assert "On call now" in page and ">Ivy<" in page
    assert "Add an override" not in page  # reading, not changing


def test_the_calendar_shows_times_in_the_viewers_zone_and_names_both_zones(schedule, people):
    body = client_for(people["raj"]).get(detail(schedule)).content.decode()
    assert "America/Chicago" in body and "Europe/London" in body
    assert "2 Mar – 8 Mar 2026" in body
    # Ivy's week began Monday 09:00 London, which is 03:00 in Chicago.
    assert "2 Mar 03:00 CST" in body
    assert "9 Mar 04:00 CDT" in body  # Chicago has sprung forward by then; London has not


def test_prev_next_and_today_swap_only_the_calendar(schedule, people):
    client = client_for(people["ivy"])
    page = client.get(detail(schedule)).content.decode()
    assert 'href="?view=week&amp;date=2026-03-09"' in page
    assert f'hx-get="{detail(schedule)}?view=week&amp;date=2026-03-09"' in page
    fragment = client.get(
        detail(schedule) + "?view=week&date=2026-03-09",
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="calendar",
    )
    body = fragment.content.decode()
    assert body.lstrip().startswith('<section id="calendar"')
    assert "9 Mar – 15 Mar 2026" in body and "Mia" in body
    assert "<html" not in body
    month = client.get(detail(schedule) + "?view=month&date=2026-03-09").content.decode()
    assert "March 2026" in month and 'class="cal-weeks cal-month"' in month


def test_a_nonsense_date_falls_back_to_today(schedule, people):
    body = client_for(people["ivy"]).get(detail(schedule) + "?date=yesterday&view=x")
    assert body.status_code == 200
    assert "2 Mar – 8 Mar 2026" in body.content.decode()


def test_gaps_in_the_next_fortnight_are_warned_about(schedule, people):
    ScheduleLayer.objects.filter(schedule=schedule).update(restrict_weekdays="01234")
    body = client_for(people["ivy"]).get(detail(schedule)).content.decode()
    assert "Gaps in the next 14 days" in body
    assert "Nobody is on call 2 times" in body
    assert "7 Mar 00:00 GMT" in body  # the first weekend
    assert "seg-gap" in body
    listing = client_for(people["ivy"]).get(reverse("oncall:schedule_list")).content.decode()
    assert "2 gaps" in listing


def test_a_member_adds_a_layer_with_people_in_order(schedule, people):
    response = client_for(people["ivy"]).post(
        reverse("oncall:layer_create", args=[schedule.slug]),
        layer_data(
            participant_0=people["raj"].pk,
            participant_2=people["ivy"].pk,
            restrict_weekdays=["0", "1", "2", "3", "4"],
            restrict_start="09:00",
            restrict_end="17:00",
        ),
    )
    assert response.status_code == 302
    layer = schedule.layers.get(name="Business hours")
    assert [p.user.username for p in layer.participants.order_by("position")] == ["raj", "ivy"]
    assert layer.restrict_weekdays == "01234"
    body = client_for(people["ivy"]).get(detail(schedule)).content.decode()
    assert "Only on Mon, Tue, Wed, Thu, Fri, 09:00–17:00" in body
    assert ">Raj<" in body  # business hours on Wednesday: Raj's turn wins over the weekly layer


@pytest.mark.parametrize(
    ("changes", "field", "error"),
    [
        ({"shift_count": "0"}, "shift_count", "at least one hour, day or week"),
        ({}, "participant_0", "at least one person"),
        ({"restrict_start": "09:00", "restrict_end": "09:00"}, "restrict_end", "no length"),
        ({"restrict_start": "09:00"}, "restrict_end", "both ends"),
    ],
)
def test_impossible_layers_are_refused_on_the_field(schedule, people, changes, field, error):
    data = layer_data(participant_0=people["ivy"].pk)
    if field == "participant_0":
        data["participant_0"] = ""
    data.update(changes)
    response = client_for(people["ivy"]).post(
        reverse("oncall:layer_create", args=[schedule.slug]), data
    )
    assert response.status_code == 422
    assert error in response.context["form"].errors[field][0]
    assert error in response.content.decode()
    assert not schedule.layers.filter(name="Business hours").exists()


def test_an_override_must_end_after_it_starts(schedule, people):
    response = client_for(people["ivy"]).post(
        reverse("oncall:override_create", args=[schedule.slug]),
        {"user": people["mia"].pk, "starts_at": "2026-03-05T10:00", "ends_at": "2026-03-05T09:00"},
    )
    assert response.status_code == 422
    assert "must end after it starts" in response.content.decode()
    assert not ScheduleOverride.objects.exists()


def test_an_override_is_read_in_the_viewers_zone_and_wins(schedule, people):
    # Mia types Chicago times: 05:00-08:00 CST is 11:00-14:00 UTC.
    response = client_for(people["mia"]).post(
        reverse("oncall:override_create", args=[schedule.slug]),
        {"user": people["mia"].pk, "starts_at": "2026-03-04T05:00", "ends_at": "2026-03-04T08:00"},
    )
    assert response.status_code == 302
    override = ScheduleOverride.objects.get()
    assert override.starts_at == datetime(2026, 3, 4, 11, 0, tzinfo=UTC)
    assert override.created_by == people["mia"]
    body = client_for(people["raj"]).get(detail(schedule)).content.decode()
    assert 'class="current">Mia<' in body
    assert "seg-override" in body


def test_take_this_shift_covers_that_shift_from_now(schedule, people):
    client = client_for(people["ivy"])
    page = client.get(detail(schedule) + "?date=2026-03-09").content.decode()
    assert "Take this shift" in page
    response = client.post(
        reverse("oncall:shift_take", args=[schedule.slug]),
        {
            "start": "2026-03-09T09:00:00+00:00",
            "end": "2026-03-16T09:00:00+00:00",
            "replaces": people["mia"].pk,
            "view": "week",
            "date": "2026-03-09",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="calendar"')
    assert "You have that shift now" in body
    override = ScheduleOverride.objects.get()
    assert (override.user, override.replaces, override.created_by) == (
        people["ivy"],
        people["mia"],
        people["ivy"],
    )
    assert override.starts_at == datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
    # A shift already under way is taken from now, not from its start.
    client.post(
        reverse("oncall:shift_take", args=[schedule.slug]),
        {"start": "2026-03-02T09:00:00+00:00", "end": "2026-03-09T09:00:00+00:00"},
    )
    assert ScheduleOverride.objects.order_by("pk").last().starts_at == NOW


def test_take_this_shift_without_javascript_redirects_back_to_the_same_week(schedule, people):
    response = client_for(people["ivy"]).post(
        reverse("oncall:shift_take", args=[schedule.slug]),
        {
            "start": "2026-03-09T09:00:00+00:00",
            "end": "2026-03-16T09:00:00+00:00",
            "view": "week",
            "date": "2026-03-09",
        },
    )
    assert response.status_code == 302
    assert response["Location"].endswith("?view=week&date=2026-03-09")


def test_outsiders_cannot_take_shifts_or_change_the_schedule(schedule, people):
    client = client_for(people["raj"])
    response = client.post(
        reverse("oncall:shift_take", args=[schedule.slug]),
        {"start": "2026-03-09T09:00:00+00:00", "end": "2026-03-16T09:00:00+00:00"},
    )
    assert response.status_code == 403
    assert client.get(reverse("oncall:layer_create", args=[schedule.slug])).status_code == 403
    assert "Take this shift" not in client.get(detail(schedule)).content.decode()
    assert not ScheduleOverride.objects.exists()


def test_a_member_creates_a_schedule_only_for_their_own_teams(people, schedule):
    other = make_team("Payments")
    client = client_for(people["ivy"])
    refused = client.post(
        reverse("oncall:schedule_create"),
        {"name": "Payments", "team": other.pk, "time_zone": "America/New_York"},
    )
    assert refused.status_code == 422
    created = client.post(
        reverse("oncall:schedule_create"),
        {"name": "Platform secondary", "team": schedule.team.pk, "time_zone": "Europe/Berlin"},
    )
    assert created.status_code == 302
    assert Schedule.objects.get(slug="platform-secondary").time_zone == "Europe/Berlin"
    assert client_for(people["raj"]).get(reverse("oncall:schedule_create")).status_code == 403


def test_the_team_page_and_the_oncall_page_say_who_is_on_call(schedule, people):
    teams = client_for(people["raj"]).get(reverse("team_list")).content.decode()
    assert "On call now" in teams and "Platform primary" in teams
    home = client_for(people["mia"]).get(reverse("oncall:home")).content.decode()
    assert "Your upcoming shifts" in home
    assert "9 Mar 04:00 CDT" in home  # Mia's week starts Monday 09:00 London (CDT by then)


def test_the_profile_lists_my_upcoming_shifts(schedule, people):
    body = client_for(people["ivy"]).get(reverse("profile")).content.decode()
    assert "Your upcoming shifts" in body
    assert "<strong>Now</strong>" in body  # Ivy is on call this week
    assert "16 Mar 09:00 GMT" in body  # and again a fortnight on
