"""Create an integration for a service and print its secret URL (shown only now)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from incidents.alerting.heartbeats import heartbeat_create
from incidents.alerting.services import integration_create
from incidents.alerting.views import integration_url
from incidents.models import IntegrationKind, Service


class Command(BaseCommand):
    help = "Create an alert integration for a service; the last line printed is its URL."

    def add_arguments(self, parser):
        parser.add_argument("service_slug")
        parser.add_argument("--kind", required=True, choices=IntegrationKind.values)
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--interval", type=int, default=60, help="Heartbeats: minutes between pings."
        )
        parser.add_argument(
            "--grace", type=int, default=5, help="Heartbeats: minutes a ping may be late."
        )
        parser.add_argument(
            "--base-url",
            default=settings.SITE_URL,
            help="Where Firebreak is reached by the monitoring tool (default: SITE_URL).",
        )

    def handle(self, *args, service_slug, kind, name, base_url, interval, grace, **options):
        service = Service.objects.filter(slug=service_slug).first()
        if service is None:
            raise CommandError(f"No service with slug {service_slug!r}.")
        if kind == IntegrationKind.HEARTBEAT:
            if not 1 <= interval <= 60 * 24 * 31 or not 0 <= grace <= 60 * 24 * 7:
                raise CommandError("--interval must be 1 to 44640 minutes, --grace 0 to 10080.")
            monitor, token = heartbeat_create(
                service=service,
                name=name or "Heartbeat",
                interval_minutes=interval,
                grace_minutes=grace,
            )
            integration = monitor.integration
        else:
            integration, token = integration_create(service=service, kind=kind, name=name)
        self.stdout.write(f"Created {integration} (id {integration.pk}).")
        self.stdout.write(base_url.rstrip("/") + integration_url(None, integration, token))
