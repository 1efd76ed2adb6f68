"""Final schedules of 200 realistic schedules for 90 days, through the pure engine.

    .venv/bin/python -m bench.schedules [--schedules 200] [--days 90] [--seed 7]

Builds the schedules in memory (no database: the engine takes plain dataclasses), each with
2-3 layers in a real zone (weekly primaries, daily secondaries, business-hours and night
layers, 12-hour follow-the-sun shifts) and a few overrides, over a window that crosses the
spring and autumn DST changes. Times `final_schedule` per schedule, after one warm-up pass.

Baselines in the same run:
* raw handoffs: only turning every handoff of every layer into an instant with zoneinfo,
  the least any engine must do;
* per-minute sampling: asking `on_call_at` once a minute, timed over one day for a few
  schedules and scaled to the full run, the approach the sweep replaces.

Target (shared/docs/targets.md): the 200 schedules in < 1 s in total.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time as clock
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bench.common import write_result
from oncall.scheduling import (
    OverrideSpan,
    Restriction,
    Rotation,
    final_schedule,
    gaps,
    on_call_at,
)

TARGET_SECONDS = 1.0
ZONES = [
    "Europe/London",
    "Europe/Berlin",
    "America/Chicago",
    "America/New_York",
    "America/Los_Angeles",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "UTC",
]
WINDOW_START = datetime(2025, 2, 20, tzinfo=UTC)  # 90 days: Europe/US spring, Australia autumn

Schedule = tuple[str, list[Rotation], list[OverrideSpan]]


def build_schedules(*, count: int, days: int, seed: int) -> list[Schedule]:
    rng = random.Random(seed)
    people = iter(range(1, 1_000_000))
    schedules = []
    for n in range(count):
        zone = rng.choice(ZONES)
        team = [next(people) for _ in range(rng.randint(4, 9))]
        layer_ids = iter(range(n * 10, n * 10 + 10))
        start_date = date(2024, 1, 1) + timedelta(days=rng.randint(0, 400))
        rotations = [
            Rotation(
                layer_id=next(layer_ids),
                level=1,
                participants=tuple(rng.sample(team, len(team))),
                shift_unit="weeks",
                shift_count=1,
                start_date=start_date,
                handoff_time=time(rng.choice([9, 10]), rng.choice([0, 0, 30])),
            )
        ]
        rotations.append(
            Rotation(
                layer_id=next(layer_ids),
                level=2,
                participants=tuple(rng.sample(team, rng.randint(2, len(team)))),
                shift_unit=rng.choice(["days", "days", "weeks"]),
                shift_count=rng.choice([1, 1, 2]),
                start_date=start_date,
                handoff_time=time(rng.choice([8, 9, 17])),
            )
        )
        kind = rng.choice(["business", "night", "follow-the-sun", "none"])
        if kind == "business":
            restriction = Restriction(weekdays=frozenset(range(5)), start=time(9), end=time(17))
        elif kind == "night":
            restriction = Restriction(weekdays=frozenset(), start=time(18), end=time(8))
        if kind in ("business", "night"):
            rotations.append(
                Rotation(
                    layer_id=next(layer_ids),
                    level=3,
                    participants=tuple(rng.sample(team, 3)),
                    shift_unit="days",
                    shift_count=1,
                    start_date=start_date,
                    handoff_time=time(9),
                    restriction=restriction,
                )
            )
        elif kind == "follow-the-sun":
            rotations.append(
                Rotation(
                    layer_id=next(layer_ids),
                    level=3,
                    participants=tuple(rng.sample(team, 2)),
                    shift_unit="hours",
                    shift_count=12,
                    start_date=start_date,
                    handoff_time=time(8),
                )
            )
        overrides = []
        for order in range(rng.randint(0, 6)):
            begins = WINDOW_START + timedelta(minutes=rng.randint(0, days * 24 * 60))
            overrides.append(
                OverrideSpan(
                    override_id=n * 100 + order,
                    user_id=rng.choice(team),
                    start=begins,
                    end=begins + timedelta(hours=rng.choice([2, 4, 8, 12, 24, 72])),
                    created_order=order,
                )
            )
        schedules.append((zone, rotations, overrides))
    return schedules


def raw_handoffs(schedule: Schedule, *, start: datetime, end: datetime) -> int:
    """Baseline: every handoff instant of every layer, straight through zoneinfo."""
    zone, rotations, _ = schedule
    tz = ZoneInfo(zone)
    made = 0
    for rotation in rotations:
        step = rotation.shift_length
        local = datetime.combine(rotation.start_date, rotation.handoff_time)
        first = start.astimezone(tz).replace(tzinfo=None)
        local += ((first - local) // step - 1) * step
        while True:
            at = local.replace(tzinfo=tz).astimezone(UTC)
            made += 1
            if at >= end:
                break
            local += step
    return made


def per_minute(schedule: Schedule, *, start: datetime, minutes: int) -> None:
    zone, rotations, overrides = schedule
    for minute in range(minutes):
        on_call_at(
            zone=zone,
            rotations=rotations,
            overrides=overrides,
            at=start + timedelta(minutes=minute),
        )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=200)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    schedules = build_schedules(count=args.schedules, days=args.days, seed=args.seed)
    start, end = WINDOW_START, WINDOW_START + timedelta(days=args.days)
    layers = sum(len(r) for _, r, _ in schedules)
    overrides = sum(len(o) for _, _, o in schedules)

    def compute(schedule: Schedule) -> list:
        zone, rotations, spans = schedule
        return final_schedule(zone=zone, rotations=rotations, overrides=spans, start=start, end=end)

    cold_started = clock.perf_counter()
    for schedule in schedules:  # warm-up: zone files loaded, code paths hot
        compute(schedule)
    cold = clock.perf_counter() - cold_started

    gc.collect()
    per_schedule = []
    shifts = gap_count = 0
    total_started = clock.perf_counter()
    for schedule in schedules:
        began = clock.perf_counter()
        result = compute(schedule)
        per_schedule.append(clock.perf_counter() - began)
        shifts += len(result)
        gap_count += len(gaps(result))
    total = clock.perf_counter() - total_started

    raw_started = clock.perf_counter()
    handoffs = sum(raw_handoffs(s, start=start, end=end) for s in schedules)
    raw_total = clock.perf_counter() - raw_started

    sampled = schedules[:5]
    sample_started = clock.perf_counter()
    for schedule in sampled:
        per_minute(schedule, start=start, minutes=24 * 60)
    per_minute_day = (clock.perf_counter() - sample_started) / len(sampled)
    per_minute_total = per_minute_day * args.days * len(schedules)

    ms = [t * 1000 for t in per_schedule]
    met = total < TARGET_SECONDS
    print(
        f"{len(schedules)} schedules, {layers} layers, {overrides} overrides, "
        f"{args.days} days from {start:%Y-%m-%d} ({shifts:,} final shifts, {gap_count} gaps)"
    )
    print(f"final_schedule total:        {total * 1000:8.1f} ms")
    print(f"  first (cold) pass:         {cold * 1000:8.1f} ms (zone files loaded on first use)")
    print(
        f"  per schedule:              mean {statistics.fmean(ms):.2f} ms, "
        f"p50 {percentile(ms, 0.5):.2f} ms, p99 {percentile(ms, 0.99):.2f} ms, "
        f"max {max(ms):.2f} ms"
    )
    print(
        f"baseline raw handoffs:       {raw_total * 1000:8.1f} ms "
        f"({handoffs:,} zoneinfo conversions; engine = {total / raw_total:.1f}x this)"
    )
    print(
        f"baseline per-minute sampler: {per_minute_total * 1000:8.0f} ms "
        f"(on_call_at each minute: {per_minute_day * 1000:.0f} ms per schedule-day, "
        f"scaled from {len(sampled)} schedules x 1 day; "
        f"{per_minute_total / total:.0f}x the sweep)"
    )
    print(f"target < 1 s total: {'MET' if met else 'MISSED'}")
    path = write_result(
        "schedules",
        {
            "schedules": len(schedules),
            "days": args.days,
            "layers": layers,
            "overrides": overrides,
            "total_ms": total * 1000,
            "cold_total_ms": cold * 1000,
            "p50_ms": percentile(ms, 0.5),
            "p99_ms": percentile(ms, 0.99),
            "raw_handoffs_ms": raw_total * 1000,
            "per_minute_sampler_ms": per_minute_total * 1000,
            "target_met": met,
        },
    )
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
