"""Create an integration for a service and print its secret URL (shown only now)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

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
            "--base-url",
            default=getattr(settings, "FIREBREAK_BASE_URL", "") or "http://127.0.0.1:8000",
            help="Where Firebreak is reached by the monitoring tool.",
        )

    def handle(self, *args, service_slug, kind, name, base_url, **options):
        service = Service.objects.filter(slug=service_slug).first()
        if service is None:
            raise CommandError(f"No service with slug {service_slug!r}.")
        integration, token = integration_create(service=service, kind=kind, name=name)
        self.stdout.write(f"Created {integration} (id {integration.pk}).")
        self.stdout.write(base_url.rstrip("/") + integration_url(None, integration, token))
