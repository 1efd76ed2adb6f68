"""iCalendar (RFC 5545) feeds of on-call shifts, for calendar applications.

Times are written in UTC (``DTSTART:20260302T090000Z``), which every client understands
and which needs no VTIMEZONE; the client shows them in its own zone. Each event's UID is
made from the schedule, the person and the instant the shift starts, so a calendar that
refreshes the feed updates the same event instead of adding a duplicate; a shift that moves
(an override, an edited layer) becomes a new event and the old one disappears.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from icalendar import Calendar, Event

from oncall import selectors
from oncall.models import Schedule, User

PAST_DAYS = 14
FUTURE_DAYS = 90
PRODID = "-//Firebreak//On-call schedules//EN"


def _uid(schedule: Schedule, user_id: int, start: datetime) -> str:
    stamp = start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"shift-{schedule.pk}-{user_id}-{stamp}@firebreak"


def _calendar(name: str) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    cal.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    return cal


def _event(
    *, schedule: Schedule, user_id: int, name: str, start: datetime, end: datetime, stamp
) -> Event:
    event = Event()
    event.add("uid", _uid(schedule, user_id, start))
    event.add("dtstamp", stamp)
    event.add("dtstart", start.astimezone(UTC))
    event.add("dtend", end.astimezone(UTC))
    event.add("summary", f"{name} on call: {schedule.name}")
    event.add(
        "description",
        f"{name} is on call for {schedule.name} (handoffs in {schedule.time_zone}).",
    )
    event.add("url", settings.SITE_URL + reverse("oncall:schedule_detail", args=[schedule.slug]))
    event.add("transp", "TRANSPARENT")
    return event


def _window(now: datetime) -> tuple[datetime, datetime]:
    return now - timedelta(days=PAST_DAYS), now + timedelta(days=FUTURE_DAYS)


def schedule_calendar(*, schedule: Schedule, now: datetime | None = None) -> bytes:
    """Everyone's shifts on one schedule (`schedule` from schedules_with_layers())."""
    now = now or timezone.now()
    start, end = _window(now)
    shifts = selectors.schedule_final(schedule=schedule, start=start, end=end)
    people = selectors.users_by_id({s.user_id for s in shifts if s.user_id})
    cal = _calendar(f"On call: {schedule.name}")
    for user_id, person in people.items():
        for a, b in selectors.merged_turns(shifts, user_id=user_id):
            cal.add_component(
                _event(
                    schedule=schedule,
                    user_id=user_id,
                    name=person.display_name,
                    start=a,
                    end=b,
                    stamp=now,
                )
            )
    return cal.to_ical()


def user_calendar(*, user: User, now: datetime | None = None) -> bytes:
    """One person's shifts across every schedule."""
    now = now or timezone.now()
    start, end = _window(now)
    cal = _calendar(f"On call: {user.display_name}")
    for schedule, a, b in selectors.user_shifts(user=user, start=start, end=end):
        cal.add_component(
            _event(
                schedule=schedule,
                user_id=user.pk,
                name=user.display_name,
                start=a,
                end=b,
                stamp=now,
            )
        )
    return cal.to_ical()
