"""The one place that answers "may this user see or change this postmortem / action item".

Visibility always follows the incident's (restricted incidents stay restricted: lists,
counts, CSV and PDF included). Outsiders get a 404, so nothing leaks about existence.
Changing needs the right to respond to the incident, or a personal stake: the postmortem's
owner, an author or a named reviewer; the action item's owner.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from incidents.models import Incident
from incidents.permissions import incident_can_respond, incident_can_view, incidents_visible_to
from postmortems.models import ActionItem, Postmortem


def postmortems_visible_to(user, queryset: QuerySet[Postmortem] | None = None):
    queryset = Postmortem.objects.all() if queryset is None else queryset
    return queryset.filter(incident__in=incidents_visible_to(user).values("pk"))


def action_items_visible_to(user, queryset: QuerySet[ActionItem] | None = None):
    queryset = ActionItem.objects.all() if queryset is None else queryset
    return queryset.filter(incident__in=incidents_visible_to(user).values("pk"))


def postmortem_can_view(user, postmortem: Postmortem) -> bool:
    return incident_can_view(user, postmortem.incident)


def _has_stake(user, postmortem: Postmortem) -> bool:
    if postmortem.owner_id == user.pk:
        return True
    if postmortem.authors.filter(pk=user.pk).exists():
        return True
    return postmortem.reviewers.filter(user=user).exists()


def postmortem_can_edit(user, postmortem: Postmortem) -> bool:
    if not postmortem_can_view(user, postmortem):
        return False
    return incident_can_respond(user, postmortem.incident) or _has_stake(user, postmortem)


def postmortem_can_create(user, incident: Incident) -> bool:
    return incident_can_respond(user, incident)


def postmortem_get_for_view(user, pk: int, queryset: QuerySet[Postmortem] | None = None):
    queryset = Postmortem.objects.select_related("incident") if queryset is None else queryset
    try:
        postmortem = queryset.get(pk=pk)
    except Postmortem.DoesNotExist:
        raise Http404("No such postmortem.") from None
    if not postmortem_can_view(user, postmortem):
        raise Http404("No such postmortem.")
    return postmortem


def postmortem_get_for_edit(user, pk: int) -> Postmortem:
    postmortem = postmortem_get_for_view(user, pk)
    if not postmortem_can_edit(user, postmortem):
        raise PermissionDenied("You can read this postmortem but not change it.")
    return postmortem


def action_item_can_view(user, item: ActionItem) -> bool:
    return incident_can_view(user, item.incident)


def action_item_can_edit(user, item: ActionItem) -> bool:
    if not action_item_can_view(user, item):
        return False
    return item.owner_id == user.pk or incident_can_respond(user, item.incident)


def action_item_get_for_view(user, pk: int) -> ActionItem:
    try:
        item = ActionItem.objects.select_related(
            "incident", "incident__severity", "postmortem", "owner", "team", "created_by"
        ).get(pk=pk)
    except ActionItem.DoesNotExist:
        raise Http404("No such action item.") from None
    if not action_item_can_view(user, item):
        raise Http404("No such action item.")
    return item


def action_item_get_for_edit(user, pk: int) -> ActionItem:
    item = action_item_get_for_view(user, pk)
    if not action_item_can_edit(user, item):
        raise PermissionDenied("Only the owner or a responder can change this action item.")
    return item
