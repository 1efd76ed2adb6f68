"""The schedule engine, case by case: rotations, restrictions, layers, overrides, DST.

Plain functions over dataclasses: no database.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from oncall.scheduling import (
    OverrideSpan,
    Restriction,
    Rotation,
    Shift,
    final_schedule,
    gaps,
    layer_shifts,
    next_shift_start_for,
    on_call_at,
)

ALICE, BOB, CARA, DAN = 1, 2, 3, 4
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def rotation(**fields) -> Rotation:
    defaults = {
        "layer_id": 1,
        "level": 1,
        "participants": (ALICE, BOB, CARA),
        "shift_unit": "weeks",
        "shift_count": 1,
        "start_date": date(2025, 1, 6),  # a Monday
        "handoff_time": time(9, 0),
    }
    return Rotation(**{**defaults, **fields})


def override(override_id: int, user_id: int, start: datetime, end: datetime, order: int = 0):
    return OverrideSpan(
        override_id=override_id, user_id=user_id, start=start, end=end, created_order=order
    )


def final(rotations, overrides=(), *, start, end, zone="UTC") -> list[Shift]:
    return final_schedule(zone=zone, rotations=rotations, overrides=overrides, start=start, end=end)


def who(shifts: list[Shift]) -> list[tuple[datetime, datetime, int | None]]:
    return [(s.start, s.end, s.user_id) for s in shifts]


def assert_covers(shifts: list[Shift], start: datetime, end: datetime) -> None:
    assert shifts[0].start == start
    assert shifts[-1].end == end
    for before, after in zip(shifts, shifts[1:], strict=False):
        assert before.end == after.start
        assert before.start < before.end


# --- Rotations -----------------------------------------------------------------------------


def test_weekly_rotation_hands_off_every_week_at_the_handoff_time():
    shifts = final([rotation()], start=utc(2025, 1, 6, 9), end=utc(2025, 2, 3, 9))
    assert who(shifts) == [
        (utc(2025, 1, 6, 9), utc(2025, 1, 13, 9), ALICE),
        (utc(2025, 1, 13, 9), utc(2025, 1, 20, 9), BOB),
        (utc(2025, 1, 20, 9), utc(2025, 1, 27, 9), CARA),
        (utc(2025, 1, 27, 9), utc(2025, 2, 3, 9), ALICE),
    ]
    assert {s.layer_id for s in shifts} == {1}
    assert {s.override_id for s in shifts} == {None}


def test_daily_rotation_hands_off_every_day():
    layer = rotation(shift_unit="days", participants=(ALICE, BOB), handoff_time=time(8, 30))
    shifts = final([layer], start=utc(2025, 1, 6), end=utc(2025, 1, 9))
    assert who(shifts) == [
        (utc(2025, 1, 6), utc(2025, 1, 6, 8, 30), BOB),  # the rotation extends backwards
        (utc(2025, 1, 6, 8, 30), utc(2025, 1, 7, 8, 30), ALICE),
        (utc(2025, 1, 7, 8, 30), utc(2025, 1, 8, 8, 30), BOB),
        (utc(2025, 1, 8, 8, 30), utc(2025, 1, 9), ALICE),
    ]


def test_twelve_hour_shifts_stay_at_eight_and_twenty_local():
    layer = rotation(shift_unit="hours", shift_count=12, handoff_time=time(8), participants=(1, 2))
    shifts = layer_shifts(
        rotation=layer, zone="America/Chicago", start=utc(2025, 1, 6, 14), end=utc(2025, 1, 8, 14)
    )
    assert who(shifts) == [  # CST is UTC-6
        (utc(2025, 1, 6, 14), utc(2025, 1, 7, 2), 1),
        (utc(2025, 1, 7, 2), utc(2025, 1, 7, 14), 2),
        (utc(2025, 1, 7, 14), utc(2025, 1, 8, 2), 1),
        (utc(2025, 1, 8, 2), utc(2025, 1, 8, 14), 2),
    ]


def test_custom_hour_shifts_rotate_through_everyone():
    layer = rotation(shift_unit="hours", shift_count=5, handoff_time=time(6))
    shifts = layer_shifts(
        rotation=layer, zone="UTC", start=utc(2025, 1, 6, 6), end=utc(2025, 1, 7, 8)
    )
    assert [s.start for s in shifts] == [utc(2025, 1, 6, 6) + 5 * k * HOUR for k in range(6)]
    assert [s.user_id for s in shifts] == [ALICE, BOB, CARA, ALICE, BOB, CARA]


def test_two_week_shifts():
    layer = rotation(shift_count=2, participants=(ALICE, BOB))
    shifts = final([layer], start=utc(2025, 1, 6, 9), end=utc(2025, 2, 17, 9))
    assert [(s.start, s.user_id) for s in shifts] == [
        (utc(2025, 1, 6, 9), ALICE),
        (utc(2025, 1, 20, 9), BOB),
        (utc(2025, 2, 3, 9), ALICE),
    ]


def test_the_rotation_extends_into_the_past_before_its_start_date():
    layer = rotation()
    at = utc(2025, 1, 1, 12)  # before the first handoff on 6 January
    assert on_call_at(zone="UTC", rotations=[layer], overrides=[], at=at) == CARA
    assert on_call_at(zone="UTC", rotations=[layer], overrides=[], at=utc(2024, 12, 29)) == BOB


def test_one_person_rotation_is_one_merged_shift_in_the_final_schedule():
    layer = rotation(participants=(ALICE,), shift_unit="days")
    assert (
        len(layer_shifts(rotation=layer, zone="UTC", start=utc(2025, 1, 6), end=utc(2025, 1, 9)))
        == 4
    )
    shifts = final([layer], start=utc(2025, 1, 6), end=utc(2025, 1, 9))
    assert who(shifts) == [(utc(2025, 1, 6), utc(2025, 1, 9), ALICE)]


def test_a_layer_with_nobody_leaves_a_gap():
    shifts = final([rotation(participants=())], start=utc(2025, 1, 6), end=utc(2025, 1, 7))
    assert who(shifts) == [(utc(2025, 1, 6), utc(2025, 1, 7), None)]
    assert final([], start=utc(2025, 1, 6), end=utc(2025, 1, 7)) == shifts


# --- Restrictions --------------------------------------------------------------------------


def test_weekdays_only_layer_is_empty_at_the_weekend():
    layer = rotation(participants=(ALICE,), restriction=Restriction(weekdays=frozenset(range(5))))
    shifts = final([layer], start=utc(2025, 1, 6), end=utc(2025, 1, 20), zone="UTC")
    assert who(shifts) == [
        (utc(2025, 1, 6), utc(2025, 1, 11), ALICE),
        (utc(2025, 1, 11), utc(2025, 1, 13), None),
        (utc(2025, 1, 13), utc(2025, 1, 18), ALICE),
        (utc(2025, 1, 18), utc(2025, 1, 20), None),
    ]


def test_business_hours_layer_sits_on_a_round_the_clock_layer():
    base = rotation(layer_id=1, level=1, participants=(ALICE,))
    office = rotation(
        layer_id=2,
        level=2,
        participants=(BOB,),
        restriction=Restriction(weekdays=frozenset(range(5)), start=time(9), end=time(17)),
    )
    shifts = final([office, base], start=utc(2025, 1, 10), end=utc(2025, 1, 14), zone="UTC")
    assert who(shifts) == [
        (utc(2025, 1, 10), utc(2025, 1, 10, 9), ALICE),
        (utc(2025, 1, 10, 9), utc(2025, 1, 10, 17), BOB),  # Friday
        (utc(2025, 1, 10, 17), utc(2025, 1, 13, 9), ALICE),  # the weekend shows through
        (utc(2025, 1, 13, 9), utc(2025, 1, 13, 17), BOB),  # Monday
        (utc(2025, 1, 13, 17), utc(2025, 1, 14), ALICE),
    ]
    assert [s.layer_id for s in shifts] == [1, 2, 1, 2, 1]


def test_a_wrapping_night_window_belongs_to_the_day_it_starts_on():
    nights = rotation(
        participants=(CARA,),
        restriction=Restriction(weekdays=frozenset(range(5)), start=time(18), end=time(8)),
    )
    shifts = final([nights], start=utc(2025, 1, 10, 12), end=utc(2025, 1, 14), zone="UTC")
    assert who(shifts) == [
        (utc(2025, 1, 10, 12), utc(2025, 1, 10, 18), None),
        (utc(2025, 1, 10, 18), utc(2025, 1, 11, 8), CARA),  # Friday night runs into Saturday
        (utc(2025, 1, 11, 8), utc(2025, 1, 13, 18), None),  # Sunday night is not Sunday's
        (utc(2025, 1, 13, 18), utc(2025, 1, 14), CARA),
    ]


def test_a_window_from_start_only_runs_to_midnight():
    late = rotation(participants=(CARA,), restriction=Restriction(start=time(20), end=None))
    shifts = final([late], start=utc(2025, 1, 6), end=utc(2025, 1, 7, 12))
    assert who(shifts) == [
        (utc(2025, 1, 6), utc(2025, 1, 6, 20), None),
        (utc(2025, 1, 6, 20), utc(2025, 1, 7), CARA),
        (utc(2025, 1, 7), utc(2025, 1, 7, 12), None),
    ]


def test_a_restricted_window_cuts_through_a_handoff():
    layer = rotation(
        shift_unit="days",
        participants=(ALICE, BOB),
        handoff_time=time(12),
        restriction=Restriction(start=time(9), end=time(17)),
    )
    shifts = layer_shifts(rotation=layer, zone="UTC", start=utc(2025, 1, 6), end=utc(2025, 1, 7))
    assert who(shifts) == [
        (utc(2025, 1, 6, 9), utc(2025, 1, 6, 12), BOB),
        (utc(2025, 1, 6, 12), utc(2025, 1, 6, 17), ALICE),
    ]


# --- Layers --------------------------------------------------------------------------------


def test_higher_layer_wins_only_where_it_has_someone():
    low = rotation(layer_id=1, level=1, participants=(ALICE,))
    high_empty = rotation(layer_id=2, level=5, participants=())
    high = rotation(
        layer_id=3,
        level=3,
        participants=(BOB,),
        restriction=Restriction(start=time(0), end=time(6)),
    )
    shifts = final([low, high_empty, high], start=utc(2025, 1, 6), end=utc(2025, 1, 7))
    assert who(shifts) == [
        (utc(2025, 1, 6), utc(2025, 1, 6, 6), BOB),
        (utc(2025, 1, 6, 6), utc(2025, 1, 7), ALICE),
    ]


def test_of_two_layers_at_the_same_level_the_later_created_wins():
    first = rotation(layer_id=7, level=2, participants=(ALICE,))
    second = rotation(layer_id=9, level=2, participants=(BOB,))
    for order in ([first, second], [second, first]):
        assert on_call_at(zone="UTC", rotations=order, overrides=[], at=utc(2025, 1, 6)) == BOB


# --- Overrides -----------------------------------------------------------------------------


def test_override_partially_overlapping_two_shifts():
    layer = rotation(shift_unit="days", participants=(ALICE, BOB), handoff_time=time(9))
    cover = override(50, DAN, utc(2025, 1, 6, 18), utc(2025, 1, 7, 12))
    shifts = final([layer], [cover], start=utc(2025, 1, 6, 9), end=utc(2025, 1, 8, 9))
    assert who(shifts) == [
        (utc(2025, 1, 6, 9), utc(2025, 1, 6, 18), ALICE),
        (utc(2025, 1, 6, 18), utc(2025, 1, 7, 12), DAN),
        (utc(2025, 1, 7, 12), utc(2025, 1, 8, 9), BOB),
    ]
    assert shifts[1].override_id == 50 and shifts[1].layer_id is None


def test_an_override_of_an_override_wins_where_they_overlap():
    layer = rotation(participants=(ALICE,))
    older = override(1, BOB, utc(2025, 1, 6, 10), utc(2025, 1, 6, 20), order=1)
    newer = override(2, CARA, utc(2025, 1, 6, 12), utc(2025, 1, 6, 14), order=2)
    shifts = final([layer], [newer, older], start=utc(2025, 1, 6), end=utc(2025, 1, 7))
    assert who(shifts) == [
        (utc(2025, 1, 6), utc(2025, 1, 6, 10), ALICE),
        (utc(2025, 1, 6, 10), utc(2025, 1, 6, 12), BOB),
        (utc(2025, 1, 6, 12), utc(2025, 1, 6, 14), CARA),
        (utc(2025, 1, 6, 14), utc(2025, 1, 6, 20), BOB),
        (utc(2025, 1, 6, 20), utc(2025, 1, 7), ALICE),
    ]


def test_an_older_override_does_not_undo_a_newer_one():
    newer = override(1, CARA, utc(2025, 1, 6, 12), utc(2025, 1, 6, 14), order=5)
    older = override(2, BOB, utc(2025, 1, 6, 10), utc(2025, 1, 6, 20), order=4)
    shifts = final([], [older, newer], start=utc(2025, 1, 6), end=utc(2025, 1, 7))
    assert [s.user_id for s in shifts] == [None, BOB, CARA, BOB, None]


def test_override_fills_a_gap_and_is_clipped_to_the_window():
    cover = override(3, DAN, utc(2025, 1, 5), utc(2025, 1, 6, 6))
    outside = override(4, BOB, utc(2025, 2, 1), utc(2025, 2, 2))
    shifts = final([], [cover, outside], start=utc(2025, 1, 6), end=utc(2025, 1, 7))
    assert who(shifts) == [
        (utc(2025, 1, 6), utc(2025, 1, 6, 6), DAN),
        (utc(2025, 1, 6, 6), utc(2025, 1, 7), None),
    ]


def test_override_in_another_offset_is_the_same_instant():
    plus_two = timezone_offset(2)
    cover = override(5, DAN, datetime(2025, 1, 6, 14, tzinfo=plus_two), utc(2025, 1, 6, 13))
    shifts = final([], [cover], start=utc(2025, 1, 6), end=utc(2025, 1, 7))
    assert who(shifts)[1] == (utc(2025, 1, 6, 12), utc(2025, 1, 6, 13), DAN)


def timezone_offset(hours: int):
    from datetime import timezone

    return timezone(timedelta(hours=hours))


# --- Reading a schedule --------------------------------------------------------------------


def test_gaps_are_reported_from_the_final_schedule_and_from_holes():
    office = rotation(participants=(BOB,), restriction=Restriction(start=time(9), end=time(17)))
    shifts = final([office], start=utc(2025, 1, 6), end=utc(2025, 1, 8))
    assert who(gaps(shifts)) == [
        (utc(2025, 1, 6), utc(2025, 1, 6, 9), None),
        (utc(2025, 1, 6, 17), utc(2025, 1, 7, 9), None),
        (utc(2025, 1, 7, 17), utc(2025, 1, 8), None),
    ]
    raw = layer_shifts(rotation=office, zone="UTC", start=utc(2025, 1, 6), end=utc(2025, 1, 8))
    assert who(gaps(raw)) == [(utc(2025, 1, 6, 17), utc(2025, 1, 7, 9), None)]
    assert gaps(final([rotation()], start=utc(2025, 1, 6), end=utc(2025, 1, 8))) == []


def test_on_call_at_a_handoff_instant_is_the_incoming_person():
    layer = rotation(participants=(ALICE, BOB))
    handoff = utc(2025, 1, 13, 9)
    assert on_call_at(zone="UTC", rotations=[layer], overrides=[], at=handoff) == BOB
    just_before = handoff - timedelta(microseconds=1)
    assert on_call_at(zone="UTC", rotations=[layer], overrides=[], at=just_before) == ALICE


def test_on_call_at_follows_overrides_and_reports_gaps():
    office = rotation(participants=(BOB,), restriction=Restriction(start=time(9), end=time(17)))
    cover = override(1, DAN, utc(2025, 1, 6, 10), utc(2025, 1, 6, 11))
    args = {"zone": "UTC", "rotations": [office], "overrides": [cover]}
    assert on_call_at(**args, at=utc(2025, 1, 6, 9, 30)) == BOB
    assert on_call_at(**args, at=utc(2025, 1, 6, 10, 30)) == DAN
    assert on_call_at(**args, at=utc(2025, 1, 6, 20)) is None


def test_next_shift_start_for_finds_the_next_time_someone_goes_on_call():
    layer = rotation(shift_unit="days", participants=(ALICE, BOB, CARA))
    shifts = final([layer], start=utc(2025, 1, 6, 9), end=utc(2025, 1, 16, 9))
    upcoming = next_shift_start_for(user_id=CARA, shifts=shifts, after=utc(2025, 1, 6, 12))
    assert (upcoming.start, upcoming.end) == (utc(2025, 1, 8, 9), utc(2025, 1, 9, 9))
    after_that = next_shift_start_for(user_id=CARA, shifts=shifts, after=upcoming.start)
    assert after_that.start == utc(2025, 1, 11, 9)
    # On call at the start of the computed range is not a start; "after" is strict.
    assert next_shift_start_for(user_id=ALICE, shifts=shifts, after=utc(2025, 1, 6, 9)).start == (
        utc(2025, 1, 9, 9)
    )
    assert next_shift_start_for(user_id=DAN, shifts=shifts, after=utc(2025, 1, 6)) is None
    assert next_shift_start_for(user_id=CARA, shifts=shifts, after=utc(2025, 1, 14, 10)) is None


def test_next_shift_start_for_skips_a_continuation_of_the_same_person():
    layer = rotation(shift_unit="days", participants=(ALICE, BOB))
    # Alice covers the end of Bob's day and then her own day starts: one stretch, one start.
    cover = override(1, ALICE, utc(2025, 1, 8, 3), utc(2025, 1, 8, 9))
    shifts = final([layer], [cover], start=utc(2025, 1, 6, 9), end=utc(2025, 1, 12, 9))
    upcoming = next_shift_start_for(user_id=ALICE, shifts=shifts, after=utc(2025, 1, 6, 12))
    assert upcoming.start == utc(2025, 1, 8, 3) and upcoming.override_id == 1
    later = next_shift_start_for(user_id=ALICE, shifts=shifts, after=upcoming.start)
    assert later.start == utc(2025, 1, 10, 9) and later.layer_id == 1


# --- Contracts -----------------------------------------------------------------------------


def test_naive_datetimes_and_reversed_ranges_are_refused():
    with pytest.raises(ValueError, match="aware"):
        final([rotation()], start=datetime(2025, 1, 6), end=utc(2025, 1, 7))
    with pytest.raises(ValueError, match="before"):
        final([rotation()], start=utc(2025, 1, 7), end=utc(2025, 1, 6))
    assert final([rotation()], start=utc(2025, 1, 7), end=utc(2025, 1, 7)) == []


def test_invalid_rotations_are_refused():
    with pytest.raises(ValueError, match="shift_unit"):
        rotation(shift_unit="months")
    with pytest.raises(ValueError, match="shift_count"):
        rotation(shift_count=0)
    with pytest.raises(ValueError, match="weekdays"):
        Restriction(weekdays=frozenset({7}))


def test_the_result_is_in_utc_whatever_zone_the_window_is_given_in():
    layer = rotation()
    window_start = datetime(2025, 1, 6, 4, tzinfo=timezone_offset(-5))
    shifts = final([layer], start=window_start, end=utc(2025, 1, 20, 9))
    assert shifts[0].start == utc(2025, 1, 6, 9) and shifts[0].start.tzinfo is UTC
    assert_covers(shifts, utc(2025, 1, 6, 9), utc(2025, 1, 20, 9))


# --- Daylight saving -----------------------------------------------------------------------
# 2025 changes. Europe/London: 30 March 01:00 GMT -> 02:00 BST (missing 01:00-02:00 local),
# 26 October 02:00 BST -> 01:00 GMT (01:00-02:00 twice). America/Chicago: 9 March 02:00 CST ->
# 03:00 CDT, 2 November 02:00 CDT -> 01:00 CST. Australia/Lord_Howe (a 30-minute change):
# 6 April 02:00 +11 -> 01:30 +10:30 (01:30-02:00 twice), 5 October 02:00 +10:30 -> 02:30 +11.


def starts(layer: Rotation, zone: str, start: datetime, end: datetime) -> list[datetime]:
    """The handoff instants in [start, end): the starts of the layer's shifts after the first."""
    shifts = layer_shifts(rotation=layer, zone=zone, start=start, end=end)
    assert_covers(shifts, start, end)  # unrestricted: no gap and no overlap across the change
    return [s.start for s in shifts[1:]]


def hours_between(instants: list[datetime]) -> list[float]:
    return [(b - a) / HOUR for a, b in zip(instants, instants[1:], strict=False)]


def dst_case(name, zone, shift, first_handoff, expected_utc, hours):
    """One row: "1 days" shifts from a local "YYYY-MM-DD HH:MM", the UTC handoffs expected."""
    count, unit = shift.split()
    first = datetime.fromisoformat(first_handoff)
    expected = [
        datetime.fromisoformat(f"{day} {at}").replace(tzinfo=UTC)
        for day, at in (instant.split() for instant in expected_utc)
    ]
    return pytest.param(
        zone, unit, int(count), first.date(), first.time(), expected, hours, id=name
    )


LONDON, CHICAGO, LORD_HOWE = "Europe/London", "America/Chicago", "Australia/Lord_Howe"
DST_CASES = [
    dst_case("london-daily-0900-spring", LONDON, "1 days", "2025-03-01 09:00",
             ["2025-03-29 09:00", "2025-03-30 08:00", "2025-03-31 08:00"], [23, 24]),
    dst_case("london-daily-0900-autumn", LONDON, "1 days", "2025-10-01 09:00",
             ["2025-10-25 08:00", "2025-10-26 09:00", "2025-10-27 09:00"], [25, 24]),
    dst_case("london-weekly-monday-0900-spring", LONDON, "1 weeks", "2025-03-24 09:00",
             ["2025-03-24 09:00", "2025-03-31 08:00", "2025-04-07 08:00"], [167, 168]),
    dst_case("london-weekly-monday-0900-autumn", LONDON, "1 weeks", "2025-10-20 09:00",
             ["2025-10-20 08:00", "2025-10-27 09:00", "2025-11-03 09:00"], [169, 168]),
    # London's missing hour is 01:00-02:00: 01:30 becomes 02:00 BST = 01:00 UTC ...
    dst_case("london-daily-0130-in-the-missing-hour", LONDON, "1 days", "2025-03-01 01:30",
             ["2025-03-29 01:30", "2025-03-30 01:00", "2025-03-31 00:30"], [23.5, 23.5]),
    # ... and 02:30 exists that night (02:30 BST): no special case.
    dst_case("london-daily-0230-exists", LONDON, "1 days", "2025-03-01 02:30",
             ["2025-03-29 02:30", "2025-03-30 01:30", "2025-03-31 01:30"], [23, 24]),
    # 01:30 happens twice on 26 October: the first (BST) is the handoff.
    dst_case("london-daily-0130-in-the-repeated-hour", LONDON, "1 days", "2025-10-01 01:30",
             ["2025-10-25 00:30", "2025-10-26 00:30", "2025-10-27 01:30"], [24, 25]),
    dst_case("london-8-hour-spring", LONDON, "8 hours", "2025-03-01 00:00",
             ["2025-03-29 16:00", "2025-03-30 00:00", "2025-03-30 07:00", "2025-03-30 15:00",
              "2025-03-30 23:00"], [8, 7, 8, 8]),
    dst_case("london-8-hour-autumn", LONDON, "8 hours", "2025-10-01 00:00",
             ["2025-10-25 15:00", "2025-10-25 23:00", "2025-10-26 08:00", "2025-10-26 16:00"],
             [8, 9, 8]),
    dst_case("chicago-daily-0900-spring", CHICAGO, "1 days", "2025-03-01 09:00",
             ["2025-03-08 15:00", "2025-03-09 14:00", "2025-03-10 14:00"], [23, 24]),
    dst_case("chicago-daily-0900-autumn", CHICAGO, "1 days", "2025-10-01 09:00",
             ["2025-11-01 14:00", "2025-11-02 15:00", "2025-11-03 15:00"], [25, 24]),
    dst_case("chicago-weekly-sunday-0900-spring", CHICAGO, "1 weeks", "2025-03-02 09:00",
             ["2025-03-02 15:00", "2025-03-09 14:00", "2025-03-16 14:00"], [167, 168]),
    dst_case("chicago-weekly-sunday-0900-autumn", CHICAGO, "1 weeks", "2025-10-26 09:00",
             ["2025-10-26 14:00", "2025-11-02 15:00", "2025-11-09 15:00"], [169, 168]),
    # 02:30 does not exist on 9 March: the handoff is at 03:00 CDT, when the gap ends.
    dst_case("chicago-daily-0230-in-the-missing-hour", CHICAGO, "1 days", "2025-03-01 02:30",
             ["2025-03-08 08:30", "2025-03-09 08:00", "2025-03-10 07:30"], [23.5, 23.5]),
    dst_case("chicago-daily-0130-in-the-repeated-hour", CHICAGO, "1 days", "2025-10-01 01:30",
             ["2025-11-01 06:30", "2025-11-02 06:30", "2025-11-03 07:30"], [24, 25]),
    dst_case("chicago-8-hour-spring", CHICAGO, "8 hours", "2025-03-01 00:00",
             ["2025-03-08 22:00", "2025-03-09 06:00", "2025-03-09 13:00", "2025-03-09 21:00"],
             [8, 7, 8]),
    dst_case("chicago-8-hour-autumn", CHICAGO, "8 hours", "2025-10-01 00:00",
             ["2025-11-01 21:00", "2025-11-02 05:00", "2025-11-02 14:00", "2025-11-02 22:00"],
             [8, 9, 8]),
    dst_case("lord-howe-daily-0900-april", LORD_HOWE, "1 days", "2025-03-01 09:00",
             ["2025-04-04 22:00", "2025-04-05 22:30", "2025-04-06 22:30"], [24.5, 24]),
    dst_case("lord-howe-daily-0900-october", LORD_HOWE, "1 days", "2025-09-01 09:00",
             ["2025-10-03 22:30", "2025-10-04 22:00", "2025-10-05 22:00"], [23.5, 24]),
    dst_case("lord-howe-weekly-sunday-0900-april", LORD_HOWE, "1 weeks", "2025-03-30 09:00",
             ["2025-03-29 22:00", "2025-04-05 22:30", "2025-04-12 22:30"], [168.5, 168]),
    dst_case("lord-howe-weekly-sunday-0900-october", LORD_HOWE, "1 weeks", "2025-09-28 09:00",
             ["2025-09-27 22:30", "2025-10-04 22:00", "2025-10-11 22:00"], [167.5, 168]),
    # Lord Howe's missing half hour is 02:00-02:30: 02:15 becomes 02:30 (+11).
    dst_case("lord-howe-daily-0215-in-the-missing-half-hour", LORD_HOWE, "1 days",
             "2025-09-01 02:15",
             ["2025-10-03 15:45", "2025-10-04 15:30", "2025-10-05 15:15"], [23.75, 23.75]),
    # 01:30-02:00 happens twice on 6 April: 01:30 is first at +11.
    dst_case("lord-howe-daily-0130-in-the-repeated-half-hour", LORD_HOWE, "1 days",
             "2025-03-01 01:30",
             ["2025-04-04 14:30", "2025-04-05 14:30", "2025-04-06 15:00"], [24, 24.5]),
    dst_case("lord-howe-8-hour-april", LORD_HOWE, "8 hours", "2025-03-01 00:00",
             ["2025-04-05 05:00", "2025-04-05 13:00", "2025-04-05 21:30", "2025-04-06 05:30"],
             [8, 8.5, 8]),
    dst_case("lord-howe-8-hour-october", LORD_HOWE, "8 hours", "2025-09-01 00:00",
             ["2025-10-04 05:30", "2025-10-04 13:30", "2025-10-04 21:00", "2025-10-05 05:00"],
             [8, 7.5, 8]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("zone", "unit", "count", "start_date", "handoff", "expected", "durations"), DST_CASES
)
def test_handoffs_keep_their_local_time_across_daylight_saving_changes(
    zone, unit, count, start_date, handoff, expected, durations
):
    layer = rotation(
        shift_unit=unit, shift_count=count, start_date=start_date, handoff_time=handoff
    )
    window_start = expected[0] - timedelta(minutes=1)
    window_end = expected[-1] + timedelta(minutes=1)
    assert starts(layer, zone, window_start, window_end) == expected
    assert hours_between(expected) == durations
    final_starts = [
        s.start for s in final([layer], start=window_start, end=window_end, zone=zone)[1:]
    ]
    assert final_starts == expected


def test_an_hourly_turn_inside_the_missing_hour_is_dropped():
    # Handoffs at 01:00 CST, 02:00 (does not exist: 03:00 CDT) and 03:00 CDT; Bob's turn
    # would last no time at all, so it is dropped and Cara follows Alice without a gap.
    layer = rotation(shift_unit="hours", start_date=date(2025, 3, 9), handoff_time=time(1))
    shifts = layer_shifts(
        rotation=layer, zone="America/Chicago", start=utc(2025, 3, 9, 7), end=utc(2025, 3, 9, 10)
    )
    assert who(shifts) == [
        (utc(2025, 3, 9, 7), utc(2025, 3, 9, 8), ALICE),
        (utc(2025, 3, 9, 8), utc(2025, 3, 9, 9), CARA),
        (utc(2025, 3, 9, 9), utc(2025, 3, 9, 10), ALICE),
    ]


def test_a_window_starting_in_the_second_occurrence_of_the_repeated_hour():
    # Hourly handoffs at :30. On 26 October 01:30 happens twice and the handoff is the first
    # (00:30 UTC), so that turn lasts two hours, and at 01:10 UTC (01:10 GMT, the second
    # 01:10) it is Bob's turn even though 01:30 "has not come yet" on the wall clock.
    layer = rotation(shift_unit="hours", start_date=date(2025, 10, 26), handoff_time=time(0, 30))
    shifts = layer_shifts(
        rotation=layer,
        zone="Europe/London",
        start=utc(2025, 10, 26, 1, 10),
        end=utc(2025, 10, 26, 4),
    )
    assert who(shifts) == [
        (utc(2025, 10, 26, 1, 10), utc(2025, 10, 26, 2, 30), BOB),
        (utc(2025, 10, 26, 2, 30), utc(2025, 10, 26, 3, 30), CARA),
        (utc(2025, 10, 26, 3, 30), utc(2025, 10, 26, 4), ALICE),
    ]
    at = utc(2025, 10, 26, 1, 10)
    assert on_call_at(zone="Europe/London", rotations=[layer], overrides=[], at=at) == BOB
    whole = layer_shifts(
        rotation=layer, zone="Europe/London", start=utc(2025, 10, 25, 23), end=utc(2025, 10, 26, 4)
    )
    assert (whole[2].start, whole[2].end) == (utc(2025, 10, 26, 0, 30), utc(2025, 10, 26, 2, 30))


def test_a_first_handoff_inside_the_missing_hour_starts_when_the_gap_ends():
    layer = rotation(shift_unit="days", start_date=date(2025, 3, 9), handoff_time=time(2, 30))
    assert starts(layer, "America/Chicago", utc(2025, 3, 9), utc(2025, 3, 10)) == [
        utc(2025, 3, 9, 8)
    ]


def test_business_hours_follow_local_time_across_the_change():
    office = rotation(
        participants=(BOB,),
        restriction=Restriction(weekdays=frozenset(range(5)), start=time(9), end=time(17)),
    )
    shifts = final([office], start=utc(2025, 3, 28), end=utc(2025, 4, 1), zone="Europe/London")
    assert [(s.start, s.end) for s in shifts if s.user_id] == [
        (utc(2025, 3, 28, 9), utc(2025, 3, 28, 17)),  # Friday, GMT
        (utc(2025, 3, 31, 8), utc(2025, 3, 31, 16)),  # Monday, BST
    ]


def test_a_night_window_is_an_hour_longer_on_the_night_clocks_go_back():
    nights = rotation(participants=(CARA,), restriction=Restriction(start=time(18), end=time(8)))
    shifts = final([nights], start=utc(2025, 11, 1), end=utc(2025, 11, 4), zone="America/Chicago")
    covered = [(s.start, s.end) for s in shifts if s.user_id]
    assert covered[1] == (utc(2025, 11, 1, 23), utc(2025, 11, 2, 14))  # 18:00 CDT -> 08:00 CST
    assert (covered[1][1] - covered[1][0]) / HOUR == 15
    assert (covered[2][1] - covered[2][0]) / HOUR == 14


def test_a_window_opening_inside_the_missing_hour_opens_when_the_gap_ends():
    early = rotation(participants=(CARA,), restriction=Restriction(start=time(2, 30), end=time(5)))
    shifts = final(
        [early], start=utc(2025, 3, 9, 6), end=utc(2025, 3, 9, 12), zone="America/Chicago"
    )
    assert who(shifts) == [
        (utc(2025, 3, 9, 6), utc(2025, 3, 9, 8), None),
        (utc(2025, 3, 9, 8), utc(2025, 3, 9, 10), CARA),  # 03:00-05:00 CDT
        (utc(2025, 3, 9, 10), utc(2025, 3, 9, 12), None),
    ]


def test_an_override_across_the_change_is_kept_to_the_instant():
    layer = rotation(shift_unit="days", participants=(ALICE, BOB), start_date=date(2025, 3, 1))
    cover = override(1, DAN, utc(2025, 3, 30, 0, 30), utc(2025, 3, 30, 1, 30))
    shifts = final(
        [layer], [cover], start=utc(2025, 3, 30), end=utc(2025, 3, 30, 12), zone="Europe/London"
    )
    assert who(shifts) == [
        (utc(2025, 3, 30), utc(2025, 3, 30, 0, 30), ALICE),
        (utc(2025, 3, 30, 0, 30), utc(2025, 3, 30, 1, 30), DAN),
        (utc(2025, 3, 30, 1, 30), utc(2025, 3, 30, 8), ALICE),  # 09:00 BST
        (utc(2025, 3, 30, 8), utc(2025, 3, 30, 12), BOB),
    ]
