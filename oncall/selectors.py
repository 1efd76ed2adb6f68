"""Reads for on-call: who is on call, from the schedule engine fed by the models."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Prefetch

from oncall.models import (
    LayerParticipant,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
    TeamMembership,
    User,
)


def schedules_with_layers():
    return Schedule.objects.prefetch_related(
        Prefetch(
            "layers",
            queryset=ScheduleLayer.objects.prefetch_related(
                Prefetch("participants", queryset=LayerParticipant.objects.order_by("position"))
            ),
        ),
        Prefetch("overrides", queryset=ScheduleOverride.objects.order_by("created_at", "pk")),
    )


def schedule_rotations(schedule: Schedule) -> list:
    from oncall import scheduling

    rotations = []
    for layer in schedule.layers.all():
        participants = tuple(p.user_id for p in layer.participants.all())
        restriction = None
        if layer.restrict_weekdays or layer.restrict_start or layer.restrict_end:
            restriction = scheduling.Restriction(
                weekdays=frozenset(int(d) for d in layer.restrict_weekdays),
                start=layer.restrict_start,
                end=layer.restrict_end,
            )
        rotations.append(
            scheduling.Rotation(
                layer_id=layer.pk,
                level=layer.level,
                participants=participants,
                shift_unit=layer.shift_unit,
                shift_count=layer.shift_count,
                start_date=layer.start_date,
                handoff_time=layer.handoff_time,
                restriction=restriction,
            )
        )
    return rotations


def schedule_overrides(schedule: Schedule) -> list:
    from oncall import scheduling

    return [
        scheduling.OverrideSpan(
            override_id=o.pk,
            user_id=o.user_id,
            start=o.starts_at,
            end=o.ends_at,
            created_order=index,
            replaces_user_id=o.replaces_id,
        )
        for index, o in enumerate(schedule.overrides.all())
    ]


def schedule_final(*, schedule: Schedule, start: datetime, end: datetime) -> list:
    """The final schedule; `schedule` should come from schedules_with_layers()."""
    from oncall import scheduling

    return scheduling.final_schedule(
        zone=schedule.time_zone,
        rotations=schedule_rotations(schedule),
        overrides=schedule_overrides(schedule),
        start=start,
        end=end,
    )


def schedule_on_call_at(*, schedule: Schedule, at: datetime) -> int | None:
    from oncall import scheduling

    return scheduling.on_call_at(
        zone=schedule.time_zone,
        rotations=schedule_rotations(schedule),
        overrides=schedule_overrides(schedule),
        at=at,
    )


def team_member_ids(*, team_id: int) -> list[int]:
    return list(
        TeamMembership.objects.filter(team_id=team_id, user__is_active=True)
        .order_by("role", "user__first_name", "user_id")
        .values_list("user_id", flat=True)
    )


def users_by_id(ids: Iterable[int]) -> dict[int, User]:
    return {u.pk: u for u in User.objects.filter(pk__in=list(ids), is_active=True)}


# --- Pages ---------------------------------------------------------------------------------


def schedules_for_pages():
    """Schedules with everything the engine needs and their team, in name order."""
    return schedules_with_layers().select_related("team")


def schedules_on_call(*, schedules: Iterable[Schedule], at: datetime) -> dict[int, User | None]:
    """Schedule id -> the person on call at `at` (None for nobody)."""
    schedules = list(schedules)
    ids = {s.pk: schedule_on_call_at(schedule=s, at=at) for s in schedules}
    people = users_by_id(i for i in ids.values() if i is not None)
    return {pk: people.get(uid) if uid is not None else None for pk, uid in ids.items()}


def schedule_layer_shifts(*, schedule: Schedule, start: datetime, end: datetime) -> dict:
    """Layer id -> that layer's own shifts over [start, end), restriction applied."""
    from oncall import scheduling

    return {
        rotation.layer_id: scheduling.layer_shifts(
            rotation=rotation, zone=schedule.time_zone, start=start, end=end
        )
        for rotation in schedule_rotations(schedule)
    }


def merged_turns(shifts: Iterable, *, user_id: int) -> list[tuple[datetime, datetime]]:
    """`user_id`'s time on call as (start, end) spans, consecutive shifts joined."""
    spans: list[tuple[datetime, datetime]] = []
    for shift in shifts:
        if shift.user_id != user_id:
            continue
        if spans and spans[-1][1] == shift.start:
            spans[-1] = (spans[-1][0], shift.end)
        else:
            spans.append((shift.start, shift.end))
    return spans


def user_shifts(
    *, user: User, start: datetime, end: datetime, schedules: Iterable[Schedule] | None = None
) -> list[tuple[Schedule, datetime, datetime]]:
    """(schedule, start, end) of every stretch `user` is on call within [start, end), in
    time order, across every schedule (or the given ones, from schedules_with_layers())."""
    if schedules is None:
        schedules = schedules_for_pages()
    found = []
    for schedule in schedules:
        shifts = schedule_final(schedule=schedule, start=start, end=end)
        for a, b in merged_turns(shifts, user_id=user.pk):
            found.append((schedule, a, b))
    found.sort(key=lambda item: (item[1], item[0].name))
    return found
