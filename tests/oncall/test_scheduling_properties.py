"""Property-based: for any rotations and overrides, the final schedule is sane and right.

"Right" is checked against an independent oracle that answers "who is on call at this
instant?" from scratch for one instant, with its own (slow, simple) local-time resolution,
so a bug in the engine's sweep, clipping or DST handling cannot hide behind itself.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oncall.scheduling import (
    OverrideSpan,
    Restriction,
    Rotation,
    Shift,
    final_schedule,
    layer_shifts,
    on_call_at,
)

ZONES = ["Europe/London", "America/Chicago", "Australia/Lord_Howe", "UTC"]
# Local dates of DST changes (and for UTC, arbitrary dates), to aim windows and start dates at.
CHANGES = {
    "Europe/London": [date(2024, 3, 31), date(2024, 10, 27), date(2025, 3, 30), date(2025, 10, 26)],
    "America/Chicago": [date(2024, 3, 10), date(2024, 11, 3), date(2025, 3, 9), date(2025, 11, 2)],
    "Australia/Lord_Howe": [
        date(2024, 4, 7),
        date(2024, 10, 6),
        date(2025, 4, 6),
        date(2025, 10, 5),
    ],
    "UTC": [date(2024, 6, 1), date(2025, 1, 1)],
}


def _transition(zone: str, day: date) -> datetime:
    """The instant the clocks change on `day` in `zone` (midnight for UTC)."""
    tz = ZoneInfo(zone)
    lo = datetime.combine(day, time(0)).replace(tzinfo=tz).astimezone(UTC) - timedelta(hours=2)
    hi = lo + timedelta(hours=30)
    if lo.astimezone(tz).utcoffset() == hi.astimezone(tz).utcoffset():
        return lo + timedelta(hours=2)
    while hi - lo > timedelta(minutes=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset():
            lo = mid
        else:
            hi = mid
    return hi.replace(second=0, microsecond=0)


TRANSITIONS = {zone: [_transition(zone, day) for day in days] for zone, days in CHANGES.items()}
TRICKY_TIMES = [time(0), time(1), time(1, 30), time(1, 45), time(2), time(2, 15), time(2, 30)]

SETTINGS = settings(
    max_examples=int(os.environ.get("SCHEDULING_EXAMPLES", "150")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

wall_times = st.one_of(
    st.sampled_from(TRICKY_TIMES),  # in some zone's missing or repeated hour
    st.sampled_from([time(9), time(17), time(18), time(8), time(23, 30)]),
    st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
)
restrictions = st.one_of(
    st.none(),
    st.builds(
        Restriction,
        weekdays=st.frozensets(st.integers(0, 6)),
        start=st.none() | wall_times,
        end=st.none() | wall_times,
    ),
)


@st.composite
def rotation_for(draw, zone: str, layer_id: int, *, restricted: bool = True) -> Rotation:
    unit = draw(st.sampled_from(["hours", "days", "weeks"]))
    count = draw(
        {
            "hours": st.sampled_from([1, 1, 8, 12]) | st.integers(1, 30),
            "days": st.just(1) | st.integers(1, 9),
            "weeks": st.just(1) | st.integers(1, 3),
        }[unit]
    )
    anchor = draw(st.sampled_from(CHANGES[zone]))
    if unit == "hours":
        start_date = anchor + timedelta(days=draw(st.integers(-3, 3)))
    elif draw(st.booleans()):
        start_date = anchor + timedelta(days=draw(st.integers(-40, 40)))
    else:  # aim a handoff at the day the clocks change
        start_date = anchor - draw(st.integers(-6, 6)) * timedelta(**{unit: count})
    return Rotation(
        layer_id=layer_id,
        level=draw(st.integers(1, 3)),
        participants=tuple(draw(st.lists(st.integers(1, 6), min_size=0, max_size=4))),
        shift_unit=unit,
        shift_count=count,
        start_date=start_date,
        handoff_time=draw(wall_times),
        restriction=draw(restrictions) if restricted else None,
    )


@st.composite
def schedules(draw, *, max_layers: int = 3, max_overrides: int = 4):
    zone = draw(st.sampled_from(ZONES))
    tz = ZoneInfo(zone)
    anchor = draw(st.sampled_from(CHANGES[zone]))
    # Counted in UTC from the anchor day's local midnight, so a window may also start in the
    # second occurrence of a repeated hour (a local wall time would always pick the first).
    if draw(st.booleans()):
        midnight = datetime.combine(anchor, time(0)).replace(tzinfo=tz).astimezone(UTC)
        start = midnight + timedelta(minutes=5 * draw(st.integers(-12 * 72, 12 * 72)))
    else:  # right by the change, either side
        start = TRANSITIONS[zone][CHANGES[zone].index(anchor)]
        start += timedelta(minutes=5 * draw(st.integers(-36, 36)))
    end = start + timedelta(minutes=15 * draw(st.integers(1, 4 * 24 * 14)))
    layer_count = draw(st.integers(0, max_layers))
    rotations = [draw(rotation_for(zone, layer_id)) for layer_id in range(1, layer_count + 1)]
    override_count = draw(st.integers(0, max_overrides))
    orders = draw(st.permutations(range(override_count)))
    span = int((end - start) / timedelta(minutes=15))
    overrides = []
    for override_id in range(override_count):
        begins = start + timedelta(minutes=15 * draw(st.integers(-8, span + 8)))
        overrides.append(
            OverrideSpan(
                override_id=100 + override_id,
                user_id=draw(st.integers(10, 12)),
                start=begins,
                end=begins + timedelta(minutes=draw(st.integers(1, 3 * 24 * 60))),
                created_order=orders[override_id],
            )
        )
    return zone, rotations, overrides, start, end


# --- The oracle ------------------------------------------------------------------------------


def oracle_instant(local: datetime, tz: ZoneInfo) -> datetime:
    """A wall time's instant: first occurrence if repeated; the gap's end if missing."""
    occurrences = []
    for fold in (0, 1):
        instant = local.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == local:
            occurrences.append(instant)
    if occurrences:
        return min(occurrences)
    # Missing: walk minute by minute (every change in these zones is on a minute) to the
    # first instant whose wall time is past `local`, which is the end of the gap.
    instant = local.replace(tzinfo=tz, fold=1).astimezone(UTC) - timedelta(hours=3)
    instant = instant.replace(second=0, microsecond=0)
    while instant.astimezone(tz).replace(tzinfo=None) <= local:
        instant += timedelta(minutes=1)
    return instant


def oracle_layer(rotation: Rotation, tz: ZoneInfo, at: datetime) -> int | None:
    if not rotation.participants:
        return None
    step = timedelta(**{rotation.shift_unit: rotation.shift_count})
    base = datetime.combine(rotation.start_date, rotation.handoff_time)
    guess = (at.astimezone(tz).replace(tzinfo=None) - base) // step
    # The last handoff at or before `at`, searched among neighbours of the wall-clock guess.
    k = max(k for k in range(guess - 3, guess + 4) if oracle_instant(base + k * step, tz) <= at)
    if not _oracle_allowed(rotation.restriction, tz, at):
        return None
    return rotation.participants[k % len(rotation.participants)]


def _oracle_allowed(restriction: Restriction | None, tz: ZoneInfo, at: datetime) -> bool:
    if restriction is None:
        return True
    opens = restriction.start or time(0)
    closes = restriction.end or time(0)
    today = at.astimezone(tz).date()
    for day in (today - timedelta(days=1), today, today + timedelta(days=1)):
        if restriction.weekdays and day.weekday() not in restriction.weekdays:
            continue
        close_day = day + timedelta(days=1) if closes <= opens else day
        window_open = oracle_instant(datetime.combine(day, opens), tz)
        window_close = oracle_instant(datetime.combine(close_day, closes), tz)
        if window_open <= at < window_close:
            return True
    return False


def oracle(zone, rotations, overrides, at) -> tuple[int | None, int | None, int | None]:
    """(user_id, layer_id, override_id) on call at `at`, worked out for this instant alone."""
    covering = [o for o in overrides if o.start <= at < o.end]
    if covering:
        newest = max(covering, key=lambda o: (o.created_order, o.override_id))
        return newest.user_id, None, newest.override_id
    tz = ZoneInfo(zone)
    for rotation in sorted(rotations, key=lambda r: (r.level, r.layer_id), reverse=True):
        user = oracle_layer(rotation, tz, at)
        if user is not None:
            return user, rotation.layer_id, None
    return None, None, None


def shift_at(shifts: list[Shift], at: datetime) -> Shift:
    index = bisect.bisect_right([s.start for s in shifts], at) - 1
    assert index >= 0 and shifts[index].start <= at < shifts[index].end
    return shifts[index]


def assert_covers_exactly(shifts: list[Shift], start: datetime, end: datetime) -> None:
    assert shifts, "a non-empty window always has at least one shift"
    assert shifts[0].start == start
    assert shifts[-1].end == end
    for shift in shifts:
        assert shift.start < shift.end
        assert shift.start.tzinfo is UTC and shift.end.tzinfo is UTC
        assert shift.layer_id is None or shift.override_id is None
        if shift.user_id is None:
            assert shift.layer_id is None and shift.override_id is None
    for before, after in zip(shifts, shifts[1:], strict=False):
        assert before.end == after.start  # no gap, no overlap
        key = (before.user_id, before.layer_id, before.override_id)
        assert key != (after.user_id, after.layer_id, after.override_id)  # merged


# --- Properties ------------------------------------------------------------------------------


@SETTINGS
@given(schedule=schedules())
def test_the_final_schedule_covers_the_window_exactly_once(schedule):
    zone, rotations, overrides, start, end = schedule
    shifts = final_schedule(
        zone=zone, rotations=rotations, overrides=overrides, start=start, end=end
    )
    assert_covers_exactly(shifts, start, end)


@SETTINGS
@given(schedule=schedules(), data=st.data())
def test_one_answer_at_every_instant_and_it_is_the_oracles(schedule, data):
    zone, rotations, overrides, start, end = schedule
    shifts = final_schedule(
        zone=zone, rotations=rotations, overrides=overrides, start=start, end=end
    )
    instants = [s.start for s in shifts[:40]] + [
        s.end - timedelta(microseconds=1) for s in shifts[:40]
    ]
    span_us = (end - start) // timedelta(microseconds=1)
    instants += [
        start + timedelta(microseconds=data.draw(st.integers(0, span_us - 1))) for _ in range(10)
    ]
    for change in TRANSITIONS[zone]:
        for delta in (timedelta(0), -timedelta(microseconds=1), timedelta(minutes=20)):
            if start <= change + delta < end:
                instants.append(change + delta)
    for at in instants:
        shift = shift_at(shifts, at)
        assert (shift.user_id, shift.layer_id, shift.override_id) == oracle(
            zone, rotations, overrides, at
        ), at
        assert on_call_at(zone=zone, rotations=rotations, overrides=overrides, at=at) == (
            shift.user_id
        )


@SETTINGS
@given(schedule=schedules())
def test_each_layer_has_ordered_non_empty_shifts_inside_the_window(schedule):
    zone, rotations, _, start, end = schedule
    for rotation in rotations:
        shifts = layer_shifts(rotation=rotation, zone=zone, start=start, end=end)
        for shift in shifts:
            assert start <= shift.start < shift.end <= end
            assert shift.user_id in rotation.participants
            assert (shift.layer_id, shift.override_id) == (rotation.layer_id, None)
        for before, after in zip(shifts, shifts[1:], strict=False):
            assert before.end <= after.start
        if rotation.participants and rotation.restriction is None:
            assert_covers_exactly_layer(shifts, start, end)


@SETTINGS
@given(zone=st.sampled_from(ZONES[:3]), data=st.data())
def test_a_layer_looks_the_same_from_any_window_start_around_a_change(zone, data):
    change_day = data.draw(st.sampled_from(CHANGES[zone]))
    change = TRANSITIONS[zone][CHANGES[zone].index(change_day)]
    unit = data.draw(st.sampled_from(["hours", "hours", "days"]))
    count = data.draw(st.sampled_from([1, 1, 2, 3, 8, 12]) if unit == "hours" else st.just(1))
    rotation = Rotation(
        layer_id=1,
        level=1,
        participants=(1, 2, 3),
        shift_unit=unit,
        shift_count=count,
        start_date=change_day - timedelta(days=data.draw(st.integers(0, 3))),
        handoff_time=data.draw(wall_times),
    )
    end = change + timedelta(days=1)
    reference = layer_shifts(
        rotation=rotation, zone=zone, start=change - timedelta(days=1), end=end
    )
    assert_covers_exactly_layer(reference, change - timedelta(days=1), end)
    cut = change + timedelta(minutes=data.draw(st.integers(-180, 180)))
    expected = [
        Shift(max(s.start, cut), s.end, s.user_id, s.layer_id, s.override_id)
        for s in reference
        if s.end > cut
    ]
    assert layer_shifts(rotation=rotation, zone=zone, start=cut, end=end) == expected


@SETTINGS
@given(schedule=schedules(), data=st.data())
def test_an_unrestricted_layer_with_participants_never_leaves_a_gap(schedule, data):
    zone, rotations, overrides, start, end = schedule
    always = data.draw(rotation_for(zone, 99, restricted=False))
    if not always.participants:
        always = replace(always, participants=(7,))
    shifts = final_schedule(
        zone=zone, rotations=[*rotations, always], overrides=overrides, start=start, end=end
    )
    assert all(s.user_id is not None for s in shifts)
    alone = layer_shifts(rotation=always, zone=zone, start=start, end=end)
    assert_covers_exactly_layer(alone, start, end)


def assert_covers_exactly_layer(shifts: list[Shift], start: datetime, end: datetime) -> None:
    assert shifts[0].start == start and shifts[-1].end == end
    for before, after in zip(shifts, shifts[1:], strict=False):
        assert before.end == after.start
    assert all(s.start < s.end for s in shifts)


@SETTINGS
@given(zone=st.sampled_from(ZONES), data=st.data())
def test_daily_and_weekly_handoffs_keep_their_wall_clock_time(zone, data):
    tz = ZoneInfo(zone)
    change_day = data.draw(st.sampled_from(CHANGES[zone]))
    unit = data.draw(st.sampled_from(["days", "weeks"]))
    shift = timedelta(**{unit: data.draw(st.integers(1, 3))})
    rotation = Rotation(
        layer_id=1,
        level=1,
        participants=(1, 2, 3),
        shift_unit=unit,
        shift_count=shift // timedelta(**{unit: 1}),
        start_date=change_day - data.draw(st.integers(-6, 6)) * shift,  # a handoff that day
        handoff_time=data.draw(wall_times),
    )
    start = TRANSITIONS[zone][CHANGES[zone].index(change_day)] - timedelta(
        minutes=data.draw(st.integers(1, 60 * 24 * 30))
    )
    end = start + timedelta(minutes=data.draw(st.integers(60 * 24 * 30, 60 * 24 * 60)))
    shifts = layer_shifts(rotation=rotation, zone=zone, start=start, end=end)
    assert_covers_exactly_layer(shifts, start, end)
    for shift in shifts[1:]:  # the first one is clipped at the window's start
        local = shift.start.astimezone(tz)
        if local.time() == rotation.handoff_time:
            assert local.fold == 0  # a repeated wall time: its first occurrence
            continue
        # Otherwise the handoff time did not exist that day, and this is where the gap ends.
        wanted = datetime.combine(local.date(), rotation.handoff_time)
        assert (
            wanted.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wanted
        ), f"{wanted} exists, yet the handoff is at {local}"
        just_before = (shift.start - timedelta(seconds=1)).astimezone(tz)
        assert just_before.utcoffset() < local.utcoffset()  # clocks jumped forward here
        assert just_before.replace(tzinfo=None) < wanted <= local.replace(tzinfo=None)


@SETTINGS
@given(schedule=schedules(), data=st.data())
def test_the_newest_override_wins_wherever_it_applies(schedule, data):
    zone, rotations, overrides, start, end = schedule
    shifts = final_schedule(
        zone=zone, rotations=rotations, overrides=overrides, start=start, end=end
    )
    for override in overrides:
        lo, hi = max(override.start, start), min(override.end, end)
        if lo >= hi:
            continue
        span_us = (hi - lo) // timedelta(microseconds=1)
        for at in [lo, hi - timedelta(microseconds=1)] + [
            lo + timedelta(microseconds=data.draw(st.integers(0, span_us - 1))) for _ in range(3)
        ]:
            newer = [
                o
                for o in overrides
                if o.start <= at < o.end and o.created_order > override.created_order
            ]
            shift = shift_at(shifts, at)
            if not newer:
                assert (shift.user_id, shift.override_id) == (
                    override.user_id,
                    override.override_id,
                )
            else:
                assert shift.override_id in {o.override_id for o in newer}


@SETTINGS
@given(schedule=schedules(), data=st.data())
def test_splitting_the_window_changes_nothing(schedule, data):
    zone, rotations, overrides, start, end = schedule
    span_minutes = int((end - start) / timedelta(minutes=1))
    middle = start + timedelta(minutes=data.draw(st.integers(0, span_minutes)))
    whole = final_schedule(
        zone=zone, rotations=rotations, overrides=overrides, start=start, end=end
    )
    parts = [
        *final_schedule(
            zone=zone, rotations=rotations, overrides=overrides, start=start, end=middle
        ),
        *final_schedule(zone=zone, rotations=rotations, overrides=overrides, start=middle, end=end),
    ]
    # Rejoin the piece cut at `middle` if both halves have the same person from the same source.
    joined: list[Shift] = []
    for shift in parts:
        if joined and (joined[-1].user_id, joined[-1].layer_id, joined[-1].override_id) == (
            shift.user_id,
            shift.layer_id,
            shift.override_id,
        ):
            joined[-1] = Shift(
                joined[-1].start, shift.end, shift.user_id, shift.layer_id, shift.override_id
            )
        else:
            joined.append(shift)
    assert joined == whole
