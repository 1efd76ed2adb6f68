"""Factories for tests: plain functions over the real services, exposed as make_* fixtures."""

from __future__ import annotations

import itertools

from django.contrib.auth.models import Group

from incidents import services
from incidents.models import DetectionSource, Service, Severity
from oncall.models import Team, TeamMembership, User

_seq = itertools.count(1)


def make_user(
    username: str | None = None,
    *,
    groups: tuple[str, ...] = ("Responders",),
    email: str | None = None,
    time_zone: str = "UTC",
    **fields,
) -> User:
    n = next(_seq)
    username = username or f"user{n}"
    user = User.objects.create_user(
        username=username,
        password="pw",
        email=email if email is not None else f"{username}@example.test",
        first_name=fields.pop("first_name", username.capitalize()),
        time_zone=time_zone,
        **fields,
    )
    user.groups.set(Group.objects.filter(name__in=groups))
    return user


def make_team(name: str | None = None, *, members=(), managers=()) -> Team:
    n = next(_seq)
    name = name or f"Team {n}"
    team = Team.objects.create(name=name, slug=f"team-{n}")
    for user in members:
        TeamMembership.objects.create(team=team, user=user)
    for user in managers:
        TeamMembership.objects.create(team=team, user=user, role=TeamMembership.Role.MANAGER)
    return team


def make_service(name: str | None = None, *, team: Team | None = None) -> Service:
    n = next(_seq)
    return Service.objects.create(
        name=name or f"Service {n}", slug=f"service-{n}", team=team or make_team()
    )


def severity(name: str = "SEV2") -> Severity:
    return Severity.objects.get(name=name)


def make_incident(
    *,
    declared_by: User,
    title: str = "Checkout is failing",
    severity_name: str = "SEV2",
    restricted: bool = False,
    services_=(),
    commander: User | None = None,
    detection_source: str = DetectionSource.INTERNAL_REPORT,
):
    return services.incident_declare(
        declared_by=declared_by,
        title=title,
        severity=severity(severity_name),
        detection_source=detection_source,
        services=services_,
        restricted=restricted,
        commander=commander,
    )
