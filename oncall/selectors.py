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
