"""Demo postmortems and action items on top of `seed_demo`. Safe to run again."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand
from django.utils import timezone

from incidents.models import Incident, IncidentStatus
from postmortems import services
from postmortems.models import ActionItem

ITEMS = [
    ("Alert on connection-pool saturation, not only on error totals", "detective", 1, -4),
    ("Bound retry concurrency in the checkout client", "preventive", 1, 3),
    ("Make the canary stage impossible to skip for config changes", "preventive", 2, 12),
    ("Restore the pool size to the load-tested value", "corrective", 2, -12),
    ("Runbook: draining a region", "detective", 3, 25),
]


class Command(BaseCommand):
    help = "Create postmortems and action items for the demo's resolved incidents."

    def handle(self, *args, **options):
        today = timezone.localdate()
        resolved = Incident.objects.filter(
            status__in=(IncidentStatus.RESOLVED, IncidentStatus.CLOSED)
        ).select_related("severity", "declared_by")
        for incident in resolved:
            actor = incident.declared_by
            postmortem = services.postmortem_create(incident=incident, actor=actor)
            if ActionItem.objects.filter(incident=incident).exists():
                continue
            owners = [r.user for r in incident.roles.select_related("user")] or [actor]
            for n, (title, kind, priority, due_in) in enumerate(ITEMS):
                owner = owners[n % len(owners)]
                membership = owner.memberships.select_related("team").first() if owner else None
                services.action_item_create(
                    incident=incident, actor=actor, title=title, item_type=kind,
                    owner=owner, team=membership.team if membership else None,
                    due_date=today + dt.timedelta(days=due_in), priority=priority,
                    postmortem=postmortem,
                )  # fmt: skip
            self.stdout.write(f"{incident.reference}: postmortem {postmortem.pk}, 5 action items")
