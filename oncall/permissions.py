"""Who may change on-call configuration: the one place that answers it.

Any signed-in person reads schedules and escalation policies: knowing who is on call is
what the pages are for. Changing a team's schedule or policy needs membership of the owning
team (members and managers alike) or staff; something owned by no team only staff.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from oncall.models import EscalationPolicy, Schedule, Team, TeamMembership, User


def team_can_edit_oncall(user: User, team: Team | int | None) -> bool:
    """May `user` change schedules and policies owned by `team`?"""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff:
        return True
    if team is None:
        return False
    team_id = team if isinstance(team, int) else team.pk
    return TeamMembership.objects.filter(
        team_id=team_id,
        user=user,
        role__in=(TeamMembership.Role.MEMBER, TeamMembership.Role.MANAGER),
    ).exists()


def teams_user_can_edit(user: User):
    """The teams whose schedules and policies `user` may create or change."""
    if user.is_staff:
        return Team.objects.all()
    return Team.objects.filter(memberships__user=user).distinct()


def schedule_can_edit(user: User, schedule: Schedule) -> bool:
    return team_can_edit_oncall(user, schedule.team_id)


def policy_can_edit(user: User, policy: EscalationPolicy) -> bool:
    return team_can_edit_oncall(user, policy.team_id)


def schedule_get_for_edit(user: User, slug: str, *, queryset=None) -> Schedule:
    """The schedule, or 404 when there is none, or PermissionDenied when `user` may not
    change it (schedules are readable by everyone, so their existence is no secret)."""
    schedule = get_object_or_404(queryset if queryset is not None else Schedule, slug=slug)
    if not schedule_can_edit(user, schedule):
        raise PermissionDenied("Only members of the owning team (or staff) change this schedule.")
    return schedule


def policy_get_for_edit(user: User, pk: int) -> EscalationPolicy:
    policy = get_object_or_404(EscalationPolicy, pk=pk)
    if not policy_can_edit(user, policy):
        raise PermissionDenied("Only members of the owning team (or staff) change this policy.")
    return policy
