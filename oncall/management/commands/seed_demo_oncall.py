"""Load demo on-call data: schedules, an override, escalation policies and contact methods.

Uses the people, teams and services from `seed_demo` (run that first). Idempotent: running
it again changes nothing that is already there.
"""

from __future__ import annotations

from datetime import time, timedelta

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from oncall.models import (
    ContactMethod,
    EscalationPolicy,
    EscalationStep,
    LayerParticipant,
    NotificationRule,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
    StepTarget,
    Team,
    User,
)

PEOPLE = ("ada", "ivy", "raj", "cora", "mia", "sid")

SCHEDULES = [
    # name, slug, team, zone, description, layers
    (
        "Platform primary",
        "platform-primary",
        "platform",
        "Europe/London",
        "Edge, Kubernetes and data stores. Weekly turns; business hours covered by day.",
        [
            # name, level, unit, count, participants, handoff, weekdays, window
            ("Weekly rotation", 1, "weeks", 1, ["raj", "ivy", "mia"], time(9, 0), "", None),
            ("Business hours", 2, "days", 1, ["ivy", "raj"], time(9, 0), "01234", (9, 17)),
        ],
    ),
    (
        "Payments",
        "payments",
        "payments",
        "America/New_York",
        "Checkout and the payments API.",
        [("Weekly rotation", 1, "weeks", 1, ["cora", "ivy", "mia"], time(10, 0), "", None)],
    ),
    (
        "Identity",
        "identity",
        "identity",
        "Europe/London",
        "Login and sessions. Weekdays only for now: weekends are a known gap.",
        [("Weekdays", 1, "weeks", 1, ["raj", "ada"], time(9, 0), "01234", None)],
    ),
]

POLICIES = [
    # name, team, schedule slug, services
    (
        "Platform on-call",
        "platform",
        "platform-primary",
        ["api-gateway", "search", "notifications"],
    ),
    ("Payments on-call", "payments", "payments", ["checkout", "payments-api"]),
    ("Identity on-call", "identity", "identity", ["login"]),
]


class Command(BaseCommand):
    help = "Load idempotent demo on-call data (after seed_demo)."

    def handle(self, *args, **options):
        people = {u.username: u for u in User.objects.filter(username__in=PEOPLE)}
        teams = {t.slug: t for t in Team.objects.all()}
        missing = [p for p in PEOPLE if p not in people] + [
            t for t in ("platform", "payments", "identity") if t not in teams
        ]
        if missing:
            raise CommandError(f"Run seed_demo first (missing: {', '.join(missing)}).")
        with transaction.atomic():
            made = self._schedules(people, teams)
            self._override(people)
            made += self._policies(people, teams)
            self._contact_methods(people)
        self.stdout.write(self.style.SUCCESS(f"On-call demo data ready ({made} new items)."))

    def _schedules(self, people, teams) -> int:
        made = 0
        today = timezone.localdate()
        monday = today - timedelta(days=today.weekday() + 7)
        for name, slug, team, zone, description, layers in SCHEDULES:
            schedule, created = Schedule.objects.get_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "team": teams[team],
                    "time_zone": zone,
                    "description": description,
                },
            )
            if not created:
                continue
            made += 1
            for layer_name, level, unit, count, who, handoff, weekdays, window in layers:
                layer = ScheduleLayer.objects.create(
                    schedule=schedule,
                    name=layer_name,
                    level=level,
                    shift_unit=unit,
                    shift_count=count,
                    start_date=monday,
                    handoff_time=handoff,
                    restrict_weekdays=weekdays,
                    restrict_start=time(window[0]) if window else None,
                    restrict_end=time(window[1]) if window else None,
                )
                for position, username in enumerate(who):
                    LayerParticipant.objects.create(
                        layer=layer, user=people[username], position=position
                    )
        return made

    def _override(self, people) -> None:
        schedule = Schedule.objects.get(slug="platform-primary")
        if schedule.overrides.exists():
            return
        start = (timezone.now() + timedelta(days=1)).replace(
            hour=12, minute=0, second=0, microsecond=0
        )
        ScheduleOverride.objects.create(
            schedule=schedule,
            user=people["mia"],
            replaces=people["raj"],
            starts_at=start,
            ends_at=start + timedelta(hours=6),
            created_by=people["mia"],
        )

    def _policies(self, people, teams) -> int:
        Service = apps.get_model("incidents", "Service")  # the upper layer, looked up by name
        made = 0
        for name, team_slug, schedule_slug, services in POLICIES:
            team = teams[team_slug]
            policy, created = EscalationPolicy.objects.get_or_create(
                name=name,
                defaults={
                    "team": team,
                    "repeat_count": 2,
                    "description": "The schedule first, then the team's manager.",
                },
            )
            if created:
                made += 1
                first = EscalationStep.objects.create(policy=policy, position=0, delay_minutes=10)
                StepTarget.objects.create(
                    step=first, kind="schedule", schedule=Schedule.objects.get(slug=schedule_slug)
                )
                second = EscalationStep.objects.create(policy=policy, position=1, delay_minutes=15)
                for membership in team.memberships.filter(role="manager"):
                    StepTarget.objects.create(step=second, kind="user", user=membership.user)
            Service.objects.filter(slug__in=services, escalation_policy__isnull=True).update(
                escalation_policy=policy
            )
        return made

    def _contact_methods(self, people) -> None:
        for user in people.values():
            address = user.email or f"{user.username}@firebreak.example"
            method, _ = ContactMethod.objects.get_or_create(
                user=user,
                kind=ContactMethod.Kind.EMAIL,
                address=address,
                defaults={"label": "Work email"},
            )
            if not NotificationRule.objects.filter(user=user).exists():
                NotificationRule.objects.create(user=user, contact_method=method, delay_minutes=0)
        ivy = people["ivy"]
        pager, _ = ContactMethod.objects.get_or_create(
            user=ivy,
            kind=ContactMethod.Kind.EMAIL,
            address="ivy.pager@firebreak.example",
            defaults={"label": "Pager inbox"},
        )
        NotificationRule.objects.get_or_create(user=ivy, contact_method=pager, delay_minutes=5)
