"""The heartbeats section of a service's page, rendered from the service page's template.

The service page's view decides who sees the alerting sections (responders); this tag only
reads the service's monitors, so the section looks the same whichever view rendered it.
"""

from __future__ import annotations

from django import template

from incidents.alerting.heartbeats import heartbeats_for_service

register = template.Library()


@register.inclusion_tag("incidents/_alert_heartbeats.html", takes_context=True)
def heartbeat_section(context, service):
    return {
        "service": service,
        "heartbeats": heartbeats_for_service(service=service),
        "heartbeat_form": context.get("heartbeat_form"),
        "new_heartbeat_url": context.get("new_heartbeat_url", ""),
        "new_integration": context.get("new_integration"),
        "csrf_token": context.get("csrf_token"),
    }
