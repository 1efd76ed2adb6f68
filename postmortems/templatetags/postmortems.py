"""The incident page's postmortem panel, for the incidents template to include:

{% load postmortems %}{% incident_postmortem_panel incident user %}
"""

from __future__ import annotations

from django import template
from django.utils import timezone

from incidents.permissions import incident_can_respond
from postmortems.forms import QuickActionItemForm
from postmortems.models import OPEN_ITEM_STATUSES, ActionItem, Postmortem
from postmortems.services import RESOLVED_STATUSES, postmortem_is_required, postmortem_policy_for

register = template.Library()


def panel_context(*, request, incident, user, form=None) -> dict:
    form = form or QuickActionItemForm(incident=incident)
    postmortem = Postmortem.objects.filter(incident=incident).select_related("owner").first()
    items = list(
        ActionItem.objects.filter(incident=incident)
        .select_related("owner")
        .order_by("status", "due_date", "pk")
    )
    policy = postmortem_policy_for(incident)
    today = timezone.localdate()
    return {
        "request": request,
        "incident": incident,
        "postmortem": postmortem,
        "is_late": postmortem.is_late(today) if postmortem else False,
        "can_respond": incident_can_respond(user, incident),
        "is_resolved": incident.status in RESOLVED_STATUSES,
        "required": postmortem_is_required(incident)
        if incident.resolved_at
        else bool(policy and policy.required and not incident.is_drill),
        "policy": policy,
        "items": items[:8],
        "items_more": max(0, len(items) - 8),
        "open_count": sum(1 for i in items if i.status in OPEN_ITEM_STATUSES),
        "followup_form": form,
        # Evaluated once here: a template {% for %} over the field's choices would run a
        # COUNT and then the query itself.
        "owner_choices": list(form.fields["owner"].choices),
        "today": today,
    }


@register.inclusion_tag("postmortems/_incident_panel.html", takes_context=True)
def incident_postmortem_panel(context, incident, user):
    return panel_context(request=context.get("request"), incident=incident, user=user)


@register.filter
def completion(summary) -> str:
    rate = summary.completion_rate
    return "—" if rate is None else f"{rate:.0%}"


@register.filter
def pm_late(postmortem, today) -> bool:
    return postmortem.is_late(today)


@register.filter
def overdue_days(item, today) -> int:
    return item.days_overdue(today)


@register.filter
def percent(value) -> str:
    return "—" if value is None else f"{value:.0%}"
