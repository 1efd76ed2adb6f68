"""The on-call schedule engine: who is on call when, from rotations and overrides.

Pure computation with no ORM and no Django: the selectors turn models into the frozen
dataclasses below, and everything here is plain Python and `zoneinfo`, so it is fast and
property-testable.

How a schedule is read
----------------------
* A rotation hands off at the same **local wall-clock time** through daylight-saving changes.
  Handoff ``k`` happens at the naive local time ``combine(start_date, handoff_time) + k *
  shift`` (wall-clock arithmetic, for "hours" too, so 12-hour shifts stay 08:00/20:00 local),
  turned into an instant in the schedule's zone. The person on call from handoff ``k`` is
  ``participants[k % len(participants)]``. ``k`` may be negative: the rotation extends into
  the past before ``start_date``, as users (and PagerDuty) expect.
* Local times become instants deterministically (see `_local_to_utc`): a wall time that does
  not exist (the spring-forward gap) is the instant the gap ends; an ambiguous wall time (the
  repeated hour when clocks fall back) is its first occurrence. Local-to-instant is monotone,
  so consecutive shifts share their boundaries exactly; a shift whose two ends resolve to the
  same instant (two handoffs inside one gap) is dropped and that participant misses a turn.
* A restriction limits a layer to windows of local time on some weekdays. The window of day
  ``d`` is the instants from ``d`` at ``start`` to ``d`` (or ``d + 1`` when it wraps) at
  ``end``, both resolved as above; a wrapping window belongs to the weekday it starts on.
  Outside its windows a layer has nobody and lower layers show through.
* At any instant the newest override covering it wins (overrides of overrides); else the
  highest layer with someone on call; else nobody (a gap). Layers of equal level: the higher
  ``layer_id`` (the layer created later) wins, the same "later wins" rule as overrides.

All instants returned are aware datetimes in UTC. Intervals are half-open, ``[start, end)``.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from operator import itemgetter
from zoneinfo import ZoneInfo

SHIFT_UNITS = ("hours", "days", "weeks")

_MIDNIGHT = time(0, 0)
_ONE_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)
_TICK = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Restriction:
    """When a layer applies: on these local weekdays, between these local times.

    ``weekdays``: 0=Monday … 6=Sunday; empty means every day.
    ``start``/``end``: the local window of each allowed day. ``end <= start`` wraps past
    midnight into the next day (18:00–08:00), and the window belongs to the day it starts on.
    ``None`` for ``start`` means 00:00 and ``None`` for ``end`` means the end of the day, so
    ``None``/``None`` is the whole day.
    """

    weekdays: frozenset[int] = frozenset()
    start: time | None = None
    end: time | None = None

    def __post_init__(self) -> None:
        if not all(isinstance(d, int) and 0 <= d <= 6 for d in self.weekdays):
            raise ValueError(f"weekdays must be 0 (Monday) to 6 (Sunday), not {self.weekdays}")

    @property
    def is_unrestricted(self) -> bool:
        return not self.weekdays and self.start is None and self.end is None


@dataclass(frozen=True, slots=True)
class Rotation:
    """One schedule layer: participants taking turns of ``shift_count`` ``shift_unit``.

    ``level``: higher layers win where they have someone on call. ``participants``: user ids
    in rotation order (may be empty: the layer then never has anyone). ``start_date`` and
    ``handoff_time``: the first handoff, as wall-clock date and time in the schedule's zone.
    """

    layer_id: int
    level: int
    participants: tuple[int, ...]
    shift_unit: str
    shift_count: int
    start_date: date
    handoff_time: time
    restriction: Restriction | None = None

    def __post_init__(self) -> None:
        if self.shift_unit not in SHIFT_UNITS:
            raise ValueError(f"shift_unit must be one of {SHIFT_UNITS}, not {self.shift_unit!r}")
        if self.shift_count < 1:
            raise ValueError(f"shift_count must be at least 1, not {self.shift_count}")

    @property
    def shift_length(self) -> timedelta:
        """The wall-clock length of one shift (elapsed time differs across DST changes)."""
        return timedelta(**{self.shift_unit: self.shift_count})


@dataclass(frozen=True, slots=True)
class OverrideSpan:
    """Someone covers ``[start, end)`` (aware datetimes), whatever the layers say.

    ``created_order``: larger means created later, and the later override wins where two
    overlap (equal orders: the higher ``override_id``). A span with ``end <= start`` covers
    nothing. ``replaces_user_id`` records whom the override was made to cover; it does not
    narrow the span, because a promise to cover a time range must hold even if the layers
    changed since.
    """

    override_id: int
    user_id: int
    start: datetime
    end: datetime
    created_order: int
    replaces_user_id: int | None = None


@dataclass(frozen=True, slots=True)
class Shift:
    """Someone (or nobody) on call over ``[start, end)``; aware UTC datetimes.

    ``user_id`` None is a gap. ``layer_id`` says which layer put them there, ``override_id``
    which override; at most one of the two is set, and neither for a gap.
    """

    start: datetime
    end: datetime
    user_id: int | None
    layer_id: int | None
    override_id: int | None


# --- Local wall-clock time <-> instants ----------------------------------------------------
# Internally instants are naive datetimes in UTC: cheaper to compare and subtract than aware
# ones, and they can never be confused with local times because only the helpers below cross.


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local_to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    """The instant (naive UTC) of a naive local wall time in ``tz``.

    Ambiguous (repeated) wall times give their first occurrence; wall times that do not exist
    give the instant the gap ends (02:30 on Chicago's spring-forward night is 03:00 CDT).
    Monotone: a later wall time never gives an earlier instant.
    """
    before = tz.utcoffset(local)  # fold=0: the offset in force before any transition here
    after = tz.utcoffset(local.replace(fold=1))
    if before >= after:  # ordinary, or repeated (fold=0 is the first occurrence)
        return local - before
    return _gap_end(tz, local - after, local - before, before)


@lru_cache(maxsize=1024)
def _gap_end(tz: ZoneInfo, low: datetime, high: datetime, before: timedelta) -> datetime:
    """The transition instant in ``(low, high]`` where ``tz`` leaves offset ``before``.

    zoneinfo has no public list of transitions, so bisect on whole seconds (transitions in
    the tz database fall on whole seconds); gaps are at most hours, so this is ~15 steps, and
    it only runs for handoffs and windows that land in a gap.
    """
    lo = (low - _EPOCH) // _SECOND  # floor: still before the transition
    hi = -((_EPOCH - high) // _SECOND)  # ceil: at or after it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return _EPOCH + hi * _SECOND


def _utc_to_local(instant: datetime, tz: ZoneInfo) -> datetime:
    """The naive local wall time of a naive UTC instant."""
    return instant.replace(tzinfo=UTC).astimezone(tz).replace(tzinfo=None)


def _naive_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, not {value!r}")
    return value.astimezone(UTC).replace(tzinfo=None)


def _wall(t: time) -> time:
    return t.replace(tzinfo=None) if t.tzinfo is not None else t


# --- One layer ---------------------------------------------------------------------------


def _handoff_segments(
    rotation: Rotation, tz: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, int]]:
    """``(start, end, user_id)`` per handoff overlapping ``[start, end)``, clipped to it."""
    participants = rotation.participants
    count = len(participants)
    if not count or start >= end:
        return []
    step = rotation.shift_length
    base = datetime.combine(rotation.start_date, _wall(rotation.handoff_time))
    # Handoff k is the last one whose wall time is at or before the wall time of `start`, so
    # (instants being monotone in wall time, and a repeated wall time resolving to its first
    # occurrence) it is at or before `start`; DST may put the next one there too: walk on.
    k = (_utc_to_local(start, tz) - base) // step
    next_local = base + (k + 1) * step
    next_at = _local_to_utc(next_local, tz)
    while next_at <= start:
        k += 1
        next_local += step
        next_at = _local_to_utc(next_local, tz)
    segments = [(start, next_at if next_at < end else end, participants[k % count])]
    while next_at < end:
        k += 1
        at = next_at
        next_local += step
        next_at = _local_to_utc(next_local, tz)
        if next_at > at:  # two handoffs in one DST gap: a zero-length turn is dropped
            segments.append((at, next_at if next_at < end else end, participants[k % count]))
    return segments


def _restriction_windows(
    restriction: Restriction, tz: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The restriction's windows as merged, sorted instants, clipped to ``[start, end)``."""
    window_start = _wall(restriction.start) if restriction.start is not None else _MIDNIGHT
    window_end = _wall(restriction.end) if restriction.end is not None else _MIDNIGHT
    wraps = window_end <= window_start
    weekdays = restriction.weekdays
    day = _utc_to_local(start, tz).date() - _ONE_DAY  # yesterday's window may wrap into today
    last_day = _utc_to_local(end, tz).date()
    windows: list[tuple[datetime, datetime]] = []
    while day <= last_day:
        if not weekdays or day.weekday() in weekdays:
            opens = _local_to_utc(datetime.combine(day, window_start), tz)
            closes = _local_to_utc(
                datetime.combine(day + _ONE_DAY if wraps else day, window_end), tz
            )
            if opens < start:
                opens = start
            if closes > end:
                closes = end
            if opens < closes:
                if windows and opens <= windows[-1][1]:
                    windows[-1] = (windows[-1][0], max(closes, windows[-1][1]))
                else:
                    windows.append((opens, closes))
        day += _ONE_DAY
    return windows


def _layer_segments(
    rotation: Rotation, tz: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, int]]:
    segments = _handoff_segments(rotation, tz, start, end)
    restriction = rotation.restriction
    if not segments or restriction is None or restriction.is_unrestricted:
        return segments
    windows = _restriction_windows(restriction, tz, start, end)
    # Intersect two sorted lists of disjoint intervals.
    clipped = []
    i = j = 0
    while i < len(segments) and j < len(windows):
        seg_start, seg_end, user = segments[i]
        win_start, win_end = windows[j]
        lo = seg_start if seg_start > win_start else win_start
        hi = seg_end if seg_end < win_end else win_end
        if lo < hi:
            clipped.append((lo, hi, user))
        if seg_end < win_end:
            i += 1
        else:
            j += 1
    return clipped


def layer_shifts(*, rotation: Rotation, zone: str, start: datetime, end: datetime) -> list[Shift]:
    """The shifts of one layer within ``[start, end)``, restriction applied.

    One `Shift` per handoff (split by restriction windows), in order, clipped to ``[start,
    end)``; times when the layer has nobody are left out rather than returned as gaps. The
    same person on consecutive turns stays as separate shifts, so every start after the first
    is a handoff or a window opening. Empty when the layer has no participants.
    """
    tz = _zone(zone)
    s, e = _naive_utc(start, "start"), _naive_utc(end, "end")
    return [
        Shift(a.replace(tzinfo=UTC), b.replace(tzinfo=UTC), user, rotation.layer_id, None)
        for a, b, user in _layer_segments(rotation, tz, s, e)
    ]


# --- The final schedule --------------------------------------------------------------------


def final_schedule(
    *,
    zone: str,
    rotations: Sequence[Rotation],
    overrides: Sequence[OverrideSpan],
    start: datetime,
    end: datetime,
) -> list[Shift]:
    """Who is on call over ``[start, end)``: layers stacked, then overrides on top.

    The shifts are contiguous and non-overlapping and cover exactly ``[start, end)`` (empty
    when ``start == end``): the first starts at ``start``, each starts where the previous
    ends, the last ends at ``end``. Gaps are shifts with ``user_id`` None. Adjacent shifts
    with the same person from the same layer or override are merged into one, so a boundary
    always means a change of person or of source. ``start`` and ``end`` must be aware.
    """
    tz = _zone(zone)
    s, e = _naive_utc(start, "start"), _naive_utc(end, "end")
    if e < s:
        raise ValueError(f"end {end} is before start {start}")
    if e == s:
        return []

    # Each piece is (start, end, rank, user_id, layer_id, override_id); a higher rank wins.
    pieces: list[tuple[datetime, datetime, int, int, int | None, int | None]] = []
    rank = 0
    for rotation in sorted(rotations, key=lambda r: (r.level, r.layer_id)):
        layer_id = rotation.layer_id
        for a, b, user in _layer_segments(rotation, tz, s, e):
            pieces.append((a, b, rank, user, layer_id, None))
        rank += 1
    for override in sorted(overrides, key=lambda o: (o.created_order, o.override_id)):
        a = max(_naive_utc(override.start, "override start"), s)
        b = min(_naive_utc(override.end, "override end"), e)
        if a < b:
            pieces.append((a, b, rank, override.user_id, None, override.override_id))
        rank += 1
    return [
        Shift(a.replace(tzinfo=UTC), b.replace(tzinfo=UTC), user, layer_id, override_id)
        for a, b, user, layer_id, override_id in _sweep(pieces, s, e)
    ]


def _sweep(
    pieces: list[tuple[datetime, datetime, int, int, int | None, int | None]],
    start: datetime,
    end: datetime,
) -> list[tuple[datetime, datetime, int | None, int | None, int | None]]:
    """Walk the boundary instants once, keeping the pieces in force in a max-heap by rank.

    O(n log k) for n pieces of which at most k overlap (the layers plus overlapping
    overrides); expired pieces are dropped lazily when they reach the top of the heap.
    """
    pieces.sort(key=itemgetter(0))
    boundaries = {start, end}
    for piece in pieces:
        boundaries.add(piece[0])
        boundaries.add(piece[1])
    ordered = sorted(boundaries)
    heap: list[tuple[int, datetime, int | None, int | None, int | None]] = []
    result: list[tuple[datetime, datetime, int | None, int | None, int | None]] = []
    current: tuple[int | None, int | None, int | None] | None = None
    current_start = start
    i, count = 0, len(pieces)
    for at in ordered[:-1]:
        while i < count and pieces[i][0] <= at:
            a, b, rank, user, layer_id, override_id = pieces[i]
            heapq.heappush(heap, (-rank, b, user, layer_id, override_id))
            i += 1
        while heap and heap[0][1] <= at:
            heapq.heappop(heap)
        winner = heap[0][2:] if heap else (None, None, None)
        if winner != current:
            if current is not None:
                result.append((current_start, at, *current))
            current, current_start = winner, at
    if current is not None:
        result.append((current_start, end, *current))
    return result


def on_call_at(
    *,
    zone: str,
    rotations: Sequence[Rotation],
    overrides: Sequence[OverrideSpan],
    at: datetime,
) -> int | None:
    """The user id on call at the instant ``at`` (aware), or None when nobody is.

    Always the same answer as the `final_schedule` shift containing ``at``.
    """
    shifts = final_schedule(
        zone=zone, rotations=rotations, overrides=overrides, start=at, end=at + _TICK
    )
    return shifts[0].user_id


# --- Reading a computed schedule ---------------------------------------------------------


def gaps(shifts: Sequence[Shift]) -> list[Shift]:
    """The stretches where nobody is on call, as shifts with ``user_id`` None.

    ``shifts`` must be in order and non-overlapping (`final_schedule` or `layer_shifts`
    output). Gaps are the shifts with nobody and the holes between consecutive shifts;
    adjacent gaps are merged. Time before the first or after the last shift is not known
    to be a gap and is not reported.
    """
    found: list[Shift] = []

    def add(start: datetime, end: datetime) -> None:
        if found and found[-1].end == start:
            found[-1] = Shift(found[-1].start, end, None, None, None)
        else:
            found.append(Shift(start, end, None, None, None))

    previous_end: datetime | None = None
    for shift in shifts:
        if previous_end is not None and shift.start > previous_end:
            add(previous_end, shift.start)
        if shift.user_id is None:
            add(shift.start, shift.end)
        previous_end = shift.end
    return found


def next_shift_start_for(*, user_id: int, shifts: Sequence[Shift], after: datetime) -> Shift | None:
    """The shift in which ``user_id`` next goes on call strictly after ``after``, or None.

    That is the first shift of theirs starting after ``after`` that does not directly
    continue another shift of theirs (an override handing back to the same person's layer
    shift is not a new start). Its ``end`` is that shift's own end. ``shifts`` must be in
    order and non-overlapping; a shift clipped at the start of the computed range is only
    a start if it begins after ``after``.
    """
    previous: Shift | None = None
    for shift in shifts:
        if (
            shift.user_id == user_id
            and shift.start > after
            and not (
                previous is not None and previous.user_id == user_id and previous.end == shift.start
            )
        ):
            return shift
        previous = shift
    return None
