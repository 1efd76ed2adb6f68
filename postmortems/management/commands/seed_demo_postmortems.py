"""Demo postmortems and action items on top of `seed_demo`. Safe to run again.

Only ever touches the demo's own resolved incidents, found by their exact titles: a real
incident never gets canned action items (nor the reminder emails they would cause).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from incidents.models import Incident, TimelineEntry
from postmortems import services
from postmortems.models import ActionItem, Postmortem, PostmortemStatus

# The resolved incidents of incidents/management/commands/seed_demo.py, by exact title.
# The first postmortem is shown late: its owner had agreed to an earlier date.
DEMO_INCIDENTS = (
    "API Gateway 5xx spike after config push",
    "Notification emails delayed by up to 2 hours",
)
LATE_DEMO = DEMO_INCIDENTS[0]

# (title, type, priority, due this many days after the incident was resolved)
ITEMS = [
    ("Alert on connection-pool saturation, not only on error totals", "detective", 1, 1),
    ("Bound retry concurrency in the checkout client", "preventive", 1, 6),
    ("Make the canary stage impossible to skip for config changes", "preventive", 2, 14),
    ("Restore the pool size to the load-tested value", "corrective", 2, 2),
    ("Runbook: draining a region", "detective", 3, 30),
]


def _untouched(postmortem: Postmortem) -> bool:
    """Created automatically and never edited: safe to create again from the real facts."""
    return (
        postmortem.status == PostmortemStatus.DRAFT
        and not postmortem.sections.filter(version__gt=0).exists()
        and not postmortem.comments.exists()
        and not postmortem.reviewers.exists()
    )


class Command(BaseCommand):
    help = "Create postmortems and action items for the demo's resolved incidents."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force",
            action="store_true",
            help="Add demo postmortems and action items even though DEBUG is off.",
        )

    def handle(self, *args, **options):
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "Refusing to add demo postmortems while DEBUG is off. "
                "Use --force on a throwaway installation."
            )
        for title in DEMO_INCIDENTS:
            incident = (
                Incident.objects.filter(title=title, status__in=services.RESOLVED_STATUSES)
                .select_related("severity", "declared_by")
                .order_by("pk")
                .first()
            )
            if incident is None or ActionItem.objects.filter(incident=incident).exists():
                continue  # not seeded yet, or already done (or someone is working on it)
            with transaction.atomic():
                self._seed(incident)

    def _seed(self, incident: Incident) -> None:
        actor = incident.declared_by
        existing = Postmortem.objects.filter(incident=incident).first()
        if existing is not None:
            if not _untouched(existing):
                return
            # Resolving the demo incident created its required postmortem before seed_demo
            # moved the incident into the past: its text says "Impact lasted 0 min" and its
            # due date counts from today. Start it again from the backdated milestones.
            TimelineEntry.objects.filter(
                incident=incident, data__postmortem=existing.pk, data__action="created"
            ).delete()
            existing.delete()
        postmortem = services.postmortem_create(incident=incident, actor=actor)
        resolved_day = timezone.localtime(incident.resolved_at).date()
        if incident.title == LATE_DEMO:
            services.postmortem_update_details(
                postmortem=postmortem,
                actor=postmortem.owner or actor,
                title=postmortem.title,
                owner=postmortem.owner,
                due_date=max(resolved_day, timezone.localdate() - dt.timedelta(days=1)),
                tags=["config change"],
            )
        owners = [r.user for r in incident.roles.select_related("user")] or [actor]
        for n, (title, kind, priority, due_after) in enumerate(ITEMS):
            owner = owners[n % len(owners)]
            membership = owner.memberships.select_related("team").first() if owner else None
            services.action_item_create(
                incident=incident, actor=actor, title=title, item_type=kind,
                owner=owner, team=membership.team if membership else None,
                due_date=resolved_day + dt.timedelta(days=due_after), priority=priority,
                postmortem=postmortem,
            )  # fmt: skip
        self.stdout.write(f"{incident.reference}: postmortem {postmortem.pk}, 5 action items")
