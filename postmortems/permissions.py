"""The one place that answers "may this user see or change this postmortem / action item".

Visibility always follows the incident's (restricted incidents stay restricted: lists,
counts, CSV and PDF included). Outsiders get a 404, so nothing leaks about existence.
Changing needs the right to respond to the incident, or a personal stake: the postmortem's
owner or an author; the action item's owner. A named reviewer who may not otherwise change
it may read, comment and approve: reviewing is not editing, nor publishing.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404

from incidents.models import Incident, IncidentGroupObjectPermission, IncidentUserObjectPermission
from incidents.permissions import (
    RESPOND,
    VIEW,
    incident_can_declare,
    incident_can_respond,
    incident_can_view,
    incidents_visible_to,
)
from postmortems.models import ActionItem, Postmortem


def postmortems_visible_to(user, queryset: QuerySet[Postmortem] | None = None):
    queryset = Postmortem.objects.all() if queryset is None else queryset
    return queryset.filter(incident__in=incidents_visible_to(user).values("pk"))


def action_items_visible_to(user, queryset: QuerySet[ActionItem] | None = None):
    queryset = ActionItem.objects.all() if queryset is None else queryset
    return queryset.filter(incident__in=incidents_visible_to(user).values("pk"))


def people_who_can_view(incident: Incident) -> QuerySet:
    """Active people who may read this incident, in SQL: whom to offer as an owner or a
    reviewer. The same rules as `incident_can_view`, for everyone at once."""
    User = get_user_model()
    direct = IncidentUserObjectPermission.objects.filter(
        content_object=incident, permission__codename=VIEW
    ).values("user_id")
    groups = IncidentGroupObjectPermission.objects.filter(
        content_object=incident, permission__codename=VIEW
    ).values("group_id")
    can = Q(is_superuser=True) | Q(pk__in=direct) | Q(pk__in=_members_of(groups))
    if not incident.restricted:
        view = Permission.objects.filter(codename=VIEW, content_type__app_label="incidents")
        roles = Group.objects.filter(permissions__in=view).values("pk")
        own = User.user_permissions.through.objects.filter(permission__in=view).values("user_id")
        can |= Q(pk__in=_members_of(roles)) | Q(pk__in=own)
    return User.objects.filter(can, is_active=True).order_by("first_name", "username")


def _members_of(groups) -> QuerySet:
    return get_user_model().groups.through.objects.filter(group__in=groups).values("user_id")


def postmortem_can_view(user, postmortem: Postmortem) -> bool:
    return incident_can_view(user, postmortem.incident)


def _has_stake(user, postmortem: Postmortem) -> bool:
    if postmortem.owner_id == user.pk:
        return True
    return postmortem.authors.filter(pk=user.pk).exists()


def postmortem_is_reviewer(user, postmortem: Postmortem) -> bool:
    return postmortem.reviewers.filter(user_id=user.pk).exists()


def postmortem_can_review(user, postmortem: Postmortem) -> bool:
    """May comment and approve: whoever may change it, and its named reviewers."""
    if not postmortem_can_view(user, postmortem):
        return False
    return postmortem_can_edit(user, postmortem) or postmortem_is_reviewer(user, postmortem)


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


def postmortem_get_for_review(user, pk: int) -> Postmortem:
    postmortem = postmortem_get_for_view(user, pk)
    if not postmortem_can_review(user, postmortem):
        raise PermissionDenied("Only its authors, responders and named reviewers can do this.")
    return postmortem


def action_item_can_view(user, item: ActionItem) -> bool:
    return incident_can_view(user, item.incident)


def action_item_can_edit(user, item: ActionItem) -> bool:
    if not action_item_can_view(user, item):
        return False
    return item.owner_id == user.pk or incident_can_respond(user, item.incident)


def action_items_editable_by(user, items) -> set[int]:
    """The pks of `items` (already visible to `user`) that `user` may change: the same
    answer as `action_item_can_edit` for every row of a list, in at most one query."""
    items = list(items)
    if not (user.is_authenticated and user.is_active):
        return set()
    if user.is_superuser:
        return {item.pk for item in items}
    responds_everywhere = incident_can_declare(user)  # the global right to respond
    pending = {
        item.incident_id
        for item in items
        if item.owner_id != user.pk and (item.incident.restricted or not responds_everywhere)
    }
    granted: set[int] = set()
    if pending:
        direct = IncidentUserObjectPermission.objects.filter(
            user=user, permission__codename=RESPOND, content_object_id__in=pending
        ).values_list("content_object_id", flat=True)
        via_group = IncidentGroupObjectPermission.objects.filter(
            group__in=user.groups.all(), permission__codename=RESPOND, content_object_id__in=pending
        ).values_list("content_object_id", flat=True)
        granted = set(direct.union(via_group))
    return {
        item.pk
        for item in items
        if item.owner_id == user.pk
        or item.incident_id in granted
        or (responds_everywhere and not item.incident.restricted)
    }


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
