"""The incident page's status-page panel, for the incidents template to include:

{% load status_pages %}{% incident_status_panel incident user %}
"""

from __future__ import annotations

from django import template

from incidents.statuspages.views import PANEL_TEMPLATE, panel_context

register = template.Library()


@register.inclusion_tag(PANEL_TEMPLATE, takes_context=True)
def incident_status_panel(context, incident, user):
    return panel_context(
        request=context.get("request"), incident=incident, user=user, roles=context.get("roles")
    )
