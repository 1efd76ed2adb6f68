"""The one place that answers "may this user see or act on this incident".

Roles in the organisation come from Django groups (see the 0002 migration):
  Viewers    incidents.view_incident        read every unrestricted incident
  Responders + incidents.change_incident    act on every unrestricted incident
  Admins     + configuration models         configure severities, services, teams
Restricted incidents are visible only through django-guardian object permissions, which
role holders get automatically. An outsider gets a 404 so nothing leaks about existence.
"""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404
from guardian.shortcuts import assign_perm, remove_perm

from incidents.models import Incident, IncidentGroupObjectPermission, IncidentUserObjectPermission

VIEW = "view_incident"
RESPOND = "change_incident"
# Short, because a revocation racing a cache fill could otherwise linger; invalidation on
# every group and permission change (signals.py) does the real work.
GLOBAL_PERMS_TTL = 60
log = logging.getLogger(__name__)


def _global_perms_key(user_id: int) -> str:
    return f"perms:{user_id}"


def user_global_perms(user) -> frozenset[str]:
    """The user's model-level permissions, cached across requests.

    Django's ModelBackend reloads them with two joins on every request; everyone watching
    an incident polls every few seconds, so they are kept in the cache and dropped by
    `forget_global_perms` whenever groups or permissions change (see signals.py).
    """
    cached = getattr(user, "_firebreak_perms", None)
    if cached is not None:
        return cached
    key = _global_perms_key(user.pk)
    try:
        perms = cache.get(key)
    except Exception as exc:  # the cache is an optimisation: fail open to the database
        log.warning("Permission cache unavailable: %s", exc)
        perms = frozenset(user.get_all_permissions())
    if perms is None:
        perms = frozenset(user.get_all_permissions())
        try:
            cache.set(key, perms, GLOBAL_PERMS_TTL)
        except Exception as exc:
            log.warning("Permission cache unavailable: %s", exc)
    user._firebreak_perms = perms
    return perms


def forget_global_perms(user_ids) -> None:
    try:
        cache.delete_many([_global_perms_key(pk) for pk in user_ids])
    except Exception as exc:  # entries expire within GLOBAL_PERMS_TTL anyway
        log.warning("Could not drop cached permissions: %s", exc)


def _has_global_perm(user, codename: str) -> bool:
    return user.is_superuser or f"incidents.{codename}" in user_global_perms(user)


def _has_object_perm(user, codename: str, incident: Incident) -> bool:
    direct = IncidentUserObjectPermission.objects.filter(
        user=user, content_object=incident, permission__codename=codename
    )
    via_group = IncidentGroupObjectPermission.objects.filter(
        group__in=user.groups.all(), content_object=incident, permission__codename=codename
    )
    return direct.exists() or via_group.exists()


def incident_can_view(user, incident: Incident) -> bool:
    if not (user.is_authenticated and user.is_active):
        return False
    if user.is_superuser:
        return True
    if not incident.restricted and _has_global_perm(user, VIEW):
        return True
    return _has_object_perm(user, VIEW, incident)


def incident_can_view_unrestricted(user) -> bool:
    """May this user read incidents that are not restricted? (No database hit when cached.)"""
    return user.is_authenticated and user.is_active and _has_global_perm(user, VIEW)


def incident_can_respond(user, incident: Incident) -> bool:
    if not (user.is_authenticated and user.is_active):
        return False
    if user.is_superuser:
        return True
    if not incident.restricted and _has_global_perm(user, RESPOND):
        return True
    return _has_object_perm(user, RESPOND, incident)


def incident_can_declare(user) -> bool:
    return user.is_authenticated and user.is_active and _has_global_perm(user, RESPOND)


def incidents_visible_to(user, queryset: QuerySet[Incident] | None = None) -> QuerySet[Incident]:
    """Filter in SQL, so lists, counts and search never hint at hidden incidents."""
    queryset = Incident.objects.all() if queryset is None else queryset
    if not (user.is_authenticated and user.is_active):
        return queryset.none()
    if user.is_superuser:
        return queryset
    granted = Q(
        pk__in=IncidentUserObjectPermission.objects.filter(
            user=user, permission__codename=VIEW
        ).values("content_object_id")
    ) | Q(
        pk__in=IncidentGroupObjectPermission.objects.filter(
            group__in=user.groups.all(), permission__codename=VIEW
        ).values("content_object_id")
    )
    if _has_global_perm(user, VIEW):
        return queryset.filter(Q(restricted=False) | granted)
    return queryset.filter(granted)


def incident_get_for_view(user, pk: int, queryset: QuerySet[Incident] | None = None) -> Incident:
    queryset = Incident.objects.all() if queryset is None else queryset
    try:
        incident = queryset.get(pk=pk)
    except Incident.DoesNotExist:
        raise Http404("No such incident.") from None
    if not incident_can_view(user, incident):
        raise Http404("No such incident.")
    return incident


def incident_get_for_response(user, pk: int) -> Incident:
    incident = incident_get_for_view(user, pk)
    if not incident_can_respond(user, incident):
        raise PermissionDenied("You can read this incident but not act on it.")
    return incident


def incident_grant_access(*, incident: Incident, user, respond: bool) -> None:
    """Give one person access to this incident. Call inside the service's transaction."""
    assign_perm(VIEW, user, incident)
    if respond:
        assign_perm(RESPOND, user, incident)


def incident_revoke_access(*, incident: Incident, user) -> None:
    """Remove one person's own access. Call inside the service's transaction."""
    remove_perm(VIEW, user, incident)
    remove_perm(RESPOND, user, incident)


def incident_people_with_access(*, incident: Incident) -> list:
    """People granted access to this incident individually, with what they may do."""
    rows = (
        IncidentUserObjectPermission.objects.filter(content_object=incident)
        .select_related("user", "permission")
        .order_by("user__first_name", "user__username")
    )
    people: dict[int, object] = {}
    for row in rows:
        person = people.setdefault(row.user_id, row.user)
        if row.permission.codename == RESPOND:
            person.can_respond = True
        elif not hasattr(person, "can_respond"):
            person.can_respond = False
    return list(people.values())
