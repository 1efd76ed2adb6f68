"""Who may read a status page, and who may speak for an incident on one.

Public pages: anyone. Internal pages: anyone signed in. Restricted pages: members of the
page's teams (and superusers); others get a 404, so a restricted page's existence does not
leak. Publishing and setting component statuses from an incident is the job of the
incident's commander or communications lead.
"""

from __future__ import annotations

from django.db.models import Q
from django.http import Http404

from incidents.models import Incident, IncidentRole
from incidents.permissions import incident_can_respond
from incidents.statuspages.models import StatusPage, StatusPageVisibility

SPEAKING_ROLES = (IncidentRole.COMMANDER, IncidentRole.COMMUNICATIONS_LEAD)


class SignInRequired(Exception):
    """An anonymous reader asked for an internal page: send them to sign in."""


def status_page_can_view(user, page: StatusPage) -> bool:
    if page.visibility == StatusPageVisibility.PUBLIC:
        return True
    if not (user.is_authenticated and user.is_active):
        return False
    if page.visibility == StatusPageVisibility.INTERNAL or user.is_superuser:
        return True
    return page.teams.filter(memberships__user=user).exists()


def status_pages_visible_to(user):
    """Pages this reader may open, filtered in SQL (for the index of pages)."""
    pages = StatusPage.objects.all()
    if not (user.is_authenticated and user.is_active):
        return pages.filter(visibility=StatusPageVisibility.PUBLIC)
    if user.is_superuser:
        return pages
    own_team_pages = StatusPage.teams.through.objects.filter(team__memberships__user=user).values(
        "statuspage_id"
    )
    return pages.filter(~Q(visibility=StatusPageVisibility.RESTRICTED) | Q(pk__in=own_team_pages))


def status_page_get_for_view(user, slug: str) -> StatusPage:
    """The page, or Http404 / SignInRequired. Anonymous readers of an internal page are
    asked to sign in (an internal page's existence is not a secret among colleagues, and
    the sign-in page reveals nothing); signed-in outsiders of a restricted page get 404."""
    try:
        page = StatusPage.objects.get(slug=slug)
    except StatusPage.DoesNotExist:
        raise Http404("No such status page.") from None
    if status_page_can_view(user, page):
        return page
    if not user.is_authenticated and page.visibility != StatusPageVisibility.PUBLIC:
        raise SignInRequired
    raise Http404("No such status page.")


def status_can_speak_for(user, incident: Incident, roles=None) -> bool:
    """May this user publish public updates and set component statuses for the incident?

    `roles` may be the incident's active role assignments when already loaded."""
    if not (user.is_authenticated and user.is_active):
        return False
    if not incident_can_respond(user, incident):
        return False
    if user.is_superuser:
        return True
    if roles is None:
        return incident.roles.filter(
            user=user, role__in=SPEAKING_ROLES, relieved_at__isnull=True
        ).exists()
    return any(r.user_id == user.pk and r.role in SPEAKING_ROLES for r in roles)


def status_can_manage(user) -> bool:
    """May this user create and edit pages, components, groups and templates?"""
    return bool(
        user.is_authenticated
        and user.is_active
        and (user.is_superuser or user.has_perm("incidents.change_statuspage"))
    )
