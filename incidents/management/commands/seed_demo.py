"""Load demo data: a user per persona, teams, services and incidents with rich timelines.

Idempotent: running it again changes nothing that is already there.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from incidents import services as svc
from incidents.models import (
    DetectionSource,
    Incident,
    IncidentRole,
    IncidentStatus,
    IncidentType,
    RoleAssignment,
    Service,
    Severity,
    StakeholderUpdate,
)
from oncall.models import Team, TeamMembership, User

DEMO_PASSWORD = "firebreak-demo"

PEOPLE = [
    # username, first, last, zone, groups, superuser
    ("ada", "Ada", "Admin", "Europe/London", ["Admins", "Responders"], True),
    ("ivy", "Ivy", "Commander", "Europe/London", ["Responders"], False),
    ("raj", "Raj", "Responder", "America/Chicago", ["Responders"], False),
    ("cora", "Cora", "Comms", "Europe/Berlin", ["Responders"], False),
    ("mia", "Mia", "Manager", "America/New_York", ["Responders"], False),
    ("sid", "Sid", "Stakeholder", "Australia/Sydney", ["Viewers"], False),
]

TEAMS = {
    "Platform": (
        "platform",
        "Runs the edge, Kubernetes and the data stores.",
        [("raj", "member"), ("ivy", "member"), ("mia", "manager")],
    ),
    "Payments": (
        "payments",
        "Checkout and everything money touches.",
        [("ivy", "member"), ("cora", "member"), ("mia", "manager")],
    ),
    "Identity": (
        "identity",
        "Login, sessions and single sign-on.",
        [("raj", "member"), ("ada", "manager")],
    ),
}

SERVICES = [
    ("API Gateway", "api-gateway", "platform", "Public HTTPS entry point for every API call."),
    ("Checkout", "checkout", "payments", "Cart to order: the path that earns the money."),
    ("Payments API", "payments-api", "payments", "Card authorisation and capture via our PSPs."),
    ("Login", "login", "identity", "Password and SSO sign-in for customers and staff."),
    ("Search", "search", "platform", "Product search and suggestions."),
    ("Notifications", "notifications", "platform", "Email and push delivery to customers."),
]


class Command(BaseCommand):
    help = "Load idempotent demo data (users, teams, services, incidents)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force",
            action="store_true",
            help="Load demo users (with a public password) even though DEBUG is off.",
        )

    def handle(self, *args, **options):
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "Refusing to load demo users with a public password while DEBUG is off. "
                "Use --force on a throwaway installation."
            )
        with transaction.atomic():
            people = self._people()
            self._teams(people)
            self._services()
        made = self._incidents(people)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready ({made} new incidents). Sign in as ivy / {DEMO_PASSWORD}."
            )
        )

    def _people(self) -> dict[str, User]:
        people = {}
        for username, first, last, zone, groups, superuser in PEOPLE:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "first_name": first,
                    "last_name": last,
                    "email": f"{username}@firebreak.example",
                    "time_zone": zone,
                    "is_staff": superuser,
                    "is_superuser": superuser,
                },
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            for name in groups:
                user.groups.add(Group.objects.get(name=name))
            people[username] = user
        return people

    def _teams(self, people):
        for name, (slug, description, members) in TEAMS.items():
            team, _ = Team.objects.get_or_create(
                slug=slug, defaults={"name": name, "description": description}
            )
            for username, role in members:
                TeamMembership.objects.get_or_create(
                    team=team, user=people[username], defaults={"role": role}
                )

    def _services(self):
        for name, slug, team_slug, description in SERVICES:
            Service.objects.get_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "team": Team.objects.get(slug=team_slug),
                    "description": description,
                    "runbook_url": f"https://runbooks.firebreak.example/{slug}",
                },
            )

    def _incidents(self, p) -> int:
        sev = {s.name: s for s in Severity.objects.all()}
        service = {s.slug: s for s in Service.objects.all()}
        kind = {t.name: t for t in IncidentType.objects.all()}
        scripts = [
            {
                "title": "Checkout failing for EU customers",
                "severity": "SEV1",
                "source": DetectionSource.ALERT,
                "type": "Outage",
                "services": ["checkout", "payments-api"],
                "by": "ivy",
                "ago": 95,
                "summary": "Card payments from EU cards fail at authorisation with 502s.",
                "steps": [
                    ("role", "cora", IncidentRole.COMMUNICATIONS_LEAD),
                    ("role", "raj", IncidentRole.SUBJECT_MATTER_EXPERT),
                    ("role", "mia", IncidentRole.SCRIBE),
                    (
                        "note",
                        "raj",
                        "Error rate on `payments-api` jumped from 0.1% to **38%** at 09:12.",
                    ),
                    ("task", "raj", "Check PSP status page and our EU egress proxy"),
                    ("task", "ivy", "Prepare rollback of payments-api 4.12"),
                    (
                        "update",
                        "cora",
                        "We are investigating failed card payments for customers in the EU. "
                        "Next update in 30 minutes.",
                    ),
                    ("status", "ivy", IncidentStatus.IDENTIFIED),
                    (
                        "note",
                        "raj",
                        "Root cause candidate: TLS cert rotation on the EU egress proxy at "
                        "09:10 broke mTLS to the PSP.",
                    ),
                    ("done", "raj", 0),
                    ("pin", None, -1),
                    (
                        "note",
                        "ivy",
                        "Decision: roll back the proxy cert rather than the app. Raj to execute.",
                    ),
                    ("pin", None, -1),
                ],
            },
            {
                "title": "Search results slow (p95 4s)",
                "severity": "SEV3",
                "source": DetectionSource.INTERNAL_REPORT,
                "type": "Degradation",
                "services": ["search"],
                "by": "raj",
                "ago": 40,
                "summary": "Search latency degraded after index rebuild.",
                "steps": [
                    (
                        "note",
                        "raj",
                        "Index rebuild started at 10:00 is still running; hot shards at 90% CPU.",
                    ),
                    ("task", "raj", "Throttle the rebuild job"),
                ],
            },
            {
                "title": "Suspicious logins on staff SSO",
                "severity": "SEV2",
                "source": DetectionSource.INTERNAL_REPORT,
                "type": "Security",
                "services": ["login"],
                "by": "ada",
                "ago": 25,
                "restricted": True,
                "summary": "Burst of failed then successful staff logins from one ASN.",
                "steps": [
                    ("role", "raj", IncidentRole.SUBJECT_MATTER_EXPERT),
                    ("note", "raj", "Forced a session reset for the three affected accounts."),
                ],
            },
            {
                "title": "Notification emails delayed by up to 2 hours",
                "severity": "SEV2",
                "source": DetectionSource.CUSTOMER_REPORT,
                "type": "Degradation",
                "services": ["notifications"],
                "by": "ivy",
                "ago": 60 * 24 * 3,
                "summary": "Queue backlog after a mail provider rate limit change.",
                "steps": [
                    ("role", "cora", IncidentRole.COMMUNICATIONS_LEAD),
                    (
                        "note",
                        "raj",
                        "Provider lowered our rate limit from 500/s to 50/s without notice.",
                    ),
                    (
                        "update",
                        "cora",
                        "Emails are delayed; nothing is lost. We are working with our provider.",
                    ),
                    ("status", "ivy", IncidentStatus.IDENTIFIED),
                    ("status", "ivy", IncidentStatus.MONITORING),
                    ("update", "cora", "The backlog is draining; delays are now under 10 minutes."),
                    ("status", "ivy", IncidentStatus.RESOLVED),
                ],
            },
            {
                "title": "API Gateway 5xx spike after config push",
                "severity": "SEV1",
                "source": DetectionSource.ALERT,
                "type": "Outage",
                "services": ["api-gateway"],
                "by": "raj",
                "ago": 60 * 24 * 12,
                "summary": "Bad route config pushed to all regions at once.",
                "steps": [
                    ("role", "ivy", IncidentRole.COMMANDER),
                    ("note", "raj", "Config push 2211 removed the default route. Reverting."),
                    ("status", "ivy", IncidentStatus.MONITORING),
                    ("status", "ivy", IncidentStatus.RESOLVED),
                    ("status", "ivy", IncidentStatus.CLOSED),
                ],
            },
        ]
        made = 0
        for script in scripts:
            if Incident.objects.filter(title=script["title"]).exists():
                continue
            self._run_script(script, p, sev, service, kind)
            made += 1
        return made

    def _run_script(self, script, p, sev, service, kind):
        incident = svc.incident_declare(
            declared_by=p[script["by"]],
            title=script["title"],
            severity=sev[script["severity"]],
            detection_source=script["source"],
            services=[service[s] for s in script["services"]],
            incident_type=kind[script["type"]],
            restricted=script.get("restricted", False),
            summary=script["summary"],
        )
        tasks = []
        for step, who, arg in script["steps"]:
            actor = p.get(who) if who else None
            if step == "role":
                svc.role_assign(incident=incident, actor=p[script["by"]], user=p[who], role=arg)
            elif step == "note":
                svc.note_add(incident=incident, author=actor, body=arg)
            elif step == "task":
                tasks.append(svc.task_add(incident=incident, actor=actor, title=arg, owner=actor))
            elif step == "done":
                svc.task_set_done(incident=incident, actor=actor, task_id=tasks[arg].pk, done=True)
            elif step == "update":
                svc.stakeholder_update_post(incident=incident, author=actor, body=arg)
            elif step == "status":
                svc.incident_transition(incident=incident, actor=actor, to_status=arg)
            elif step == "pin":
                entry = incident.timeline.order_by("-pk").first()
                svc.timeline_entry_set_pinned(
                    incident=incident, actor=None, entry_id=entry.pk, pinned=True
                )
        self._backdate(incident, minutes_ago=script["ago"])

    def _backdate(self, incident: Incident, *, minutes_ago: int):
        """Spread the scripted events over the past so the demo timeline reads like a real one.

        The script ran within milliseconds; stretch that interval linearly onto the last
        `minutes_ago` minutes, so every timestamp keeps its order relative to the others.
        """
        incident.refresh_from_db()
        t0 = incident.declared_at
        t1 = timezone.now()
        start = t1 - timedelta(minutes=minutes_ago)
        span = timedelta(minutes=minutes_ago * 0.8)
        ratio = span / max(t1 - t0, timedelta(microseconds=1))

        def moved(value):
            return None if value is None else start + (value - t0) * ratio

        for entry in incident.timeline.all():
            entry.occurred_at = moved(entry.occurred_at)
            entry.save(update_fields=["occurred_at"])
        for field in (
            "declared_at",
            "impact_started_at",
            "detected_at",
            "acknowledged_at",
            "mitigated_at",
            "resolved_at",
            "closed_at",
            "last_stakeholder_update_at",
        ):
            setattr(incident, field, moved(getattr(incident, field)))
        if incident.is_open:
            base = incident.last_stakeholder_update_at or incident.declared_at
            incident.next_update_due_at = base + incident.severity.update_cadence
        incident.save()
        for row in RoleAssignment.objects.filter(incident=incident):
            row.assigned_at = moved(row.assigned_at)
            row.relieved_at = moved(row.relieved_at)
            row.save()
        for update in StakeholderUpdate.objects.filter(incident=incident):
            update.created_at = moved(update.created_at)
            update.save()
        for task in incident.tasks.all():
            task.created_at = moved(task.created_at)
            task.done_at = moved(task.done_at)
            task.save()
