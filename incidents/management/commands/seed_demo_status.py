"""Load demo status pages: a public page, an internal one and one for the Payments team,
with components linked to the demo services, 90 days of history, update templates and
public updates on the demo incidents.

Run after seed_demo. Idempotent: a page that already exists is left alone.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from incidents.models import Incident, Service
from incidents.statuspages.models import (
    Component,
    ComponentGroup,
    ComponentStatus,
    ComponentStatusInterval,
    StatusPage,
    StatusPageIncident,
    StatusPageVisibility,
    StatusUpdate,
    StatusUpdateTemplate,
)
from incidents.statuspages.services import component_status_set, status_update_publish
from oncall.models import Team, User

TEMPLATES = [
    (
        "Investigating",
        "investigating",
        "We are investigating reports of problems with **{service}**. "
        "We will post an update within 30 minutes.",
    ),
    (
        "Identified",
        "identified",
        "We have identified the cause and are working on a fix. Next update within 30 minutes.",
    ),
    (
        "Monitoring",
        "monitoring",
        "A fix has been applied and we are monitoring the results.",
    ),
    (
        "Resolved",
        "resolved",
        "This incident has been resolved. Thank you for your patience.",
    ),
]

# page slug, title, description, visibility, team slugs, zone, [(group, [(component, services)])]
PAGES = [
    (
        "acme",
        "Acme status",
        "Live status of the Acme shop, its API and sign-in.",
        StatusPageVisibility.PUBLIC,
        [],
        "Europe/London",
        [
            (
                "Shop",
                [
                    ("Website", ["search"]),
                    ("Checkout", ["checkout"]),
                    ("Payments", ["payments-api"]),
                ],
            ),
            ("Platform", [("Public API", ["api-gateway"]), ("Sign-in", ["login"])]),
            (None, [("Email notifications", ["notifications"])]),
        ],
    ),
    (
        "staff",
        "Internal systems",
        "For colleagues: everything we run, including internal tools.",
        StatusPageVisibility.INTERNAL,
        [],
        "Europe/London",
        [
            ("Customer-facing", [("Checkout", ["checkout"]), ("API gateway", ["api-gateway"])]),
            ("Internal", [("Staff SSO", ["login"]), ("Search indexer", ["search"])]),
        ],
    ),
    (
        "payments-team",
        "Payments team",
        "Payment providers and reconciliation, for the Payments team.",
        StatusPageVisibility.RESTRICTED,
        ["payments"],
        "Europe/Berlin",
        [(None, [("Card authorisation", ["payments-api"]), ("Payouts", [])])],
    ),
]

# (page slug, component, days ago, hours long, status): the history bars' past problems.
PAST = [
    ("acme", "Checkout", 41, 3, ComponentStatus.PARTIAL_OUTAGE),
    ("acme", "Public API", 63, 1, ComponentStatus.MAJOR_OUTAGE),
    ("acme", "Website", 17, 5, ComponentStatus.DEGRADED_PERFORMANCE),
    ("acme", "Sign-in", 8, 2, ComponentStatus.UNDER_MAINTENANCE),
    ("acme", "Email notifications", 3, 6, ComponentStatus.DEGRADED_PERFORMANCE),
    ("staff", "Search indexer", 25, 12, ComponentStatus.PARTIAL_OUTAGE),
]


class Command(BaseCommand):
    help = "Load idempotent demo status pages (run after seed_demo)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force",
            action="store_true",
            help="Add demo status pages even though DEBUG is off.",
        )

    def handle(self, *args, **options):
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "Refusing to add demo status pages while DEBUG is off. "
                "Use --force on a throwaway installation."
            )
        for order, (name, status, message) in enumerate(TEMPLATES):
            StatusUpdateTemplate.objects.get_or_create(
                name=name, defaults={"status": status, "message": message, "order": order}
            )
        created = [self._page(order, *spec) for order, spec in enumerate(PAGES)]
        if any(created):
            self._publish()
        self.stdout.write(
            self.style.SUCCESS(f"Status pages ready: {sum(created)} created, at /status/acme/")
        )

    @transaction.atomic
    def _page(self, order, slug, title, description, visibility, teams, zone, groups) -> bool:
        if StatusPage.objects.filter(slug=slug).exists():
            return False
        page = StatusPage.objects.create(
            slug=slug,
            title=title,
            description=description,
            visibility=visibility,
            time_zone=zone,
            order=order,
        )
        page.teams.set(Team.objects.filter(slug__in=teams))
        services = {s.slug: s for s in Service.objects.all()}
        long_ago = timezone.now() - timedelta(days=120)
        for g_order, (group_name, components) in enumerate(groups):
            group = (
                ComponentGroup.objects.create(page=page, name=group_name, order=g_order)
                if group_name
                else None
            )
            for c_order, (name, service_slugs) in enumerate(components):
                component = Component.objects.create(
                    page=page,
                    group=group,
                    name=name,
                    order=g_order * 10 + c_order,
                    created_at=long_ago,
                )
                component.services.set([services[s] for s in service_slugs if s in services])
        # Past problems, written as the intervals the services would have recorded then.
        for page_slug, name, days_ago, hours, status in PAST:
            if page_slug != slug:
                continue
            component = page.components.get(name=name)
            start = timezone.now() - timedelta(days=days_ago)
            ComponentStatusInterval.objects.create(
                component=component, status=status, started_at=start,
                ended_at=start + timedelta(hours=hours),
            )  # fmt: skip
            ComponentStatusInterval.objects.create(
                component=component,
                status=ComponentStatus.OPERATIONAL,
                started_at=start + timedelta(hours=hours),
                ended_at=None,
            )
        return True

    def _publish(self) -> None:
        cora = User.objects.filter(username="cora").first()
        acme = StatusPage.objects.get(slug="acme")
        staff = StatusPage.objects.get(slug="staff")
        checkout = Incident.objects.filter(title="Checkout failing for EU customers").first()
        if checkout is not None and not checkout.status_updates.exists():
            status_update_publish(
                incident=checkout,
                pages=[acme, staff],
                status="investigating",
                title="Card payments failing for some customers in Europe",
                message="Some customers paying with European cards see an error at checkout. "
                "We are investigating.",
                actor=cora,
            )
            status_update_publish(
                incident=checkout,
                pages=[acme, staff],
                status="identified",
                message="The problem is with one of our payment providers. We are moving card "
                "payments to a second provider.\n\n**Next update:** in 30 minutes.",
                actor=cora,
                component_statuses={
                    acme.components.get(name="Checkout").pk: ComponentStatus.PARTIAL_OUTAGE,
                    acme.components.get(name="Payments").pk: ComponentStatus.DEGRADED_PERFORMANCE,
                    staff.components.get(name="Checkout").pk: ComponentStatus.PARTIAL_OUTAGE,
                },
            )
        # A restricted incident: published to the internal page under a neutral title only.
        logins = Incident.objects.filter(title="Suspicious logins on staff SSO").first()
        if logins is not None and not logins.status_updates.exists():
            status_update_publish(
                incident=logins,
                pages=[staff],
                status="monitoring",
                title="Staff sign-in asks some people to sign in again",
                message="A few colleagues were signed out. Sign in again if asked.",
                actor=logins.declared_by or cora,
            )
            component_status_set(
                component=staff.components.get(name="Staff SSO"),
                status=ComponentStatus.DEGRADED_PERFORMANCE,
                actor=logins.declared_by or cora,
                incident=logins,
            )
        emails = Incident.objects.filter(
            title="Notification emails delayed by up to 2 hours"
        ).first()
        if emails is not None and not emails.status_updates.exists() and emails.status != "closed":
            for status, message in (
                ("investigating", "Some emails from us are arriving late."),
                ("monitoring", "Emails are being delivered again; the backlog is clearing."),
                ("resolved", "All delayed emails have been delivered."),
            ):
                status_update_publish(
                    incident=emails,
                    pages=[acme],
                    status=status,
                    title="Emails from Acme arriving late",
                    message=message,
                    actor=cora,
                )
            # Published three days ago, as the demo incident happened then.
            shift = timedelta(days=3)
            for update in StatusUpdate.objects.filter(incident=emails):
                StatusUpdate.objects.filter(pk=update.pk).update(
                    published_at=update.published_at - shift
                )
            for entry in StatusPageIncident.objects.filter(incident=emails):
                StatusPageIncident.objects.filter(pk=entry.pk).update(
                    first_published_at=entry.first_published_at - shift,
                    last_published_at=entry.last_published_at - shift,
                    resolved_at=entry.resolved_at - shift if entry.resolved_at else None,
                )
