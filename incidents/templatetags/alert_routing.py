"""The routing panel on a service's page: its rules, what happens to alerts no rule
matches, and its maintenance windows. A tag, so every view that renders the service page
shows the same panel without assembling its context."""

from __future__ import annotations

from django import template
from django.conf import settings
from django.utils import timezone

from incidents.alerting.matchers import format_matchers
from incidents.alerting.services import PAGING_SEVERITIES, default_severity_for
from incidents.models import AlertSeverity, MaintenanceWindow
from incidents.permissions import incident_can_declare

register = template.Library()


@register.inclusion_tag("incidents/_alert_routing.html")
def alert_routing_panel(service, user):
    if not incident_can_declare(user):
        return {"allowed": False}
    now = timezone.now()
    rules = list(service.alert_rules.select_related("severity").order_by("position", "pk"))
    for rule in rules:
        rule.matcher_text = format_matchers(rule.matchers)
    defaults = []
    for value, label in AlertSeverity.choices:
        severity = default_severity_for(value) if value in PAGING_SEVERITIES else None
        defaults.append({"alert_severity": label, "severity": severity})
    windows = list(
        MaintenanceWindow.objects.filter(
            service=service, cancelled_at__isnull=True, ends_at__gt=now
        ).select_related("created_by")
    )
    for window in windows:
        window.active = window.starts_at <= now
    return {
        "allowed": True,
        "service": service,
        "rules": rules,
        "defaults": defaults,
        "default_window": settings.ALERT_GROUPING_WINDOW_MINUTES,
        "windows": windows,
        "active_window": next((w for w in windows if w.active), None),
        "zone": timezone.get_current_timezone_name(),
    }
