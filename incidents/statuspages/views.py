"""Status pages for readers, and the incident page's status-page actions.

Reader views (page, history, JSON, badge, feed) check the page's visibility, then answer
from the cache (see caching.py): each rendering is made once, in the page's own time zone,
from nothing but what was published to the page, and is shared by every reader.
"""

from __future__ import annotations

import json
from datetime import datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from incidents.markdown import render_markdown
from incidents.models import Incident
from incidents.permissions import incident_get_for_view
from incidents.statuspages import selectors
from incidents.statuspages.caching import (
    HISTORY_PAGES_CACHED,
    cached_or_render,
    entry_response,
    make_entry,
    page_generation,
)
from incidents.statuspages.forms import ComponentStatusesForm, PublicUpdateForm
from incidents.statuspages.models import (
    Component,
    ComponentStatus,
    PublicStatus,
    StatusPage,
    StatusPageVisibility,
    StatusUpdateTemplate,
)
from incidents.statuspages.permissions import (
    SignInRequired,
    status_can_manage,
    status_can_speak_for,
    status_page_get_for_view,
    status_pages_visible_to,
)
from incidents.statuspages.services import (
    StatusPageRefused,
    component_status_set,
    status_update_publish,
)

# --- Readers --------------------------------------------------------------------------


class _SignIn(Exception):
    def __init__(self, response):
        self.response = response


def _page_for(request: HttpRequest, slug: str) -> StatusPage:
    try:
        return status_page_get_for_view(request.user, slug)
    except SignInRequired:
        raise _SignIn(redirect_to_login(request.get_full_path())) from None


def _reader(view):
    """Readers' views: GET/HEAD only, anonymous sign-in redirect for internal pages."""

    @require_GET
    def wrapped(request: HttpRequest, slug: str, *args, **kwargs) -> HttpResponse:
        # Before the page is loaded: what is rendered from it is cached under this.
        request.status_page_generation = page_generation(slug)
        try:
            page = _page_for(request, slug)
        except _SignIn as sign_in:
            return sign_in.response
        except Http404:
            if view.__name__ == "status_summary":  # tools reading JSON get JSON
                return JsonResponse(
                    {"error": "not found", "message": "No such status page."}, status=404
                )
            raise
        return view(request, page, *args, **kwargs)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


def _base_context(page: StatusPage, now: datetime) -> dict:
    components = selectors.page_components(page=page)
    overall = selectors.overall_status(components)
    return {
        "page": page,
        "components": components,
        "overall": overall,
        "zone_name": page.time_zone,
        "now": now,
        "is_internal": page.visibility != StatusPageVisibility.PUBLIC,
        "page_teams": list(page.teams.all())
        if page.visibility == StatusPageVisibility.RESTRICTED
        else [],
    }


def render_page(page: StatusPage) -> dict:
    now = timezone.now()
    with timezone.override(selectors.page_zone(page)):
        context = _base_context(page, now)
        components = context["components"]
        rows = selectors.component_days(
            components=components, zone=selectors.page_zone(page), now=now
        )
        context.update(
            groups=selectors.grouped_rows(components, rows),
            active=selectors.page_active_incidents(page=page),
            recent=selectors.page_recent_resolved(page=page, now=now),
            maintenances=selectors.maintenances_for(page=page, now=now),
            history_days=selectors.HISTORY_DAYS,
        )
        body = render_to_string("statuspages/page.html", context)
    return make_entry(
        body=body.encode(),
        content_type="text/html; charset=utf-8",
        last_modified=selectors.page_last_changed(page=page, components=components),
        public=page.is_public,
        extra_headers={"X-Frame-Options": "DENY"},
    )


@_reader
def status_page(request: HttpRequest, page: StatusPage) -> HttpResponse:
    return entry_response(
        request,
        cached_or_render(
            page.slug,
            "page",
            lambda: render_page(page),
            generation=request.status_page_generation,
        ),
    )


def render_history(page: StatusPage, number: int) -> dict:
    now = timezone.now()
    with timezone.override(selectors.page_zone(page)):
        context = _base_context(page, now)
        pager, incidents = selectors.page_history(page=page, number=number)
        context.update(pager=pager, incidents=incidents)
        body = render_to_string("statuspages/history.html", context)
    return make_entry(
        body=body.encode(),
        content_type="text/html; charset=utf-8",
        last_modified=selectors.page_last_changed(page=page, components=context["components"]),
        public=page.is_public,
        extra_headers={"X-Frame-Options": "DENY"},
    )


@_reader
def status_history(request: HttpRequest, page: StatusPage) -> HttpResponse:
    raw = request.GET.get("page", "1")
    number = int(raw) if raw.isdigit() and 0 < int(raw) < 100000 else 1
    if number > HISTORY_PAGES_CACHED:
        return entry_response(request, render_history(page, number))
    return entry_response(
        request,
        cached_or_render(
            page.slug,
            f"history:{number}",
            lambda: render_history(page, number),
            generation=request.status_page_generation,
        ),
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def render_summary(request: HttpRequest, page: StatusPage) -> dict:
    now = timezone.now()
    components = selectors.page_components(page=page)
    overall = selectors.overall_status(components)
    active = selectors.page_active_incidents(page=page)
    maintenances = selectors.maintenances_for(page=page, now=now)
    # SITE_URL, not the request's host: this rendering is cached and shared by every
    # reader, so one reader's Host header must not end up in it.
    page_url = settings.SITE_URL + reverse("status:page", args=[page.slug])

    def maintenance(m) -> dict:
        return {
            "name": m.title,
            "status": m.state,
            "scheduled_for": _iso(m.starts_at),
            "scheduled_until": _iso(m.ends_at),
            "message": m.message,
            "components": [c.name for c in m.components.all()],
        }

    data = {
        "page": {
            "id": page.slug,
            "name": page.title,
            "url": page_url,
            "time_zone": page.time_zone,
            "updated_at": _iso(selectors.page_last_changed(page=page, components=components)),
        },
        "status": {"indicator": overall.indicator, "description": overall.description},
        "components": [
            {
                "id": c.pk,
                "name": c.name,
                "description": c.description,
                "group": c.group.name if c.group else None,
                "status": c.status,
                "updated_at": _iso(c.status_changed_at),
            }
            for c in components
        ],
        "incidents": [
            {
                "id": item.entry.pk,
                "name": item.entry.public_title,
                "status": item.entry.status,
                "created_at": _iso(item.entry.first_published_at),
                "updated_at": _iso(item.entry.last_published_at),
                "updates": [
                    {
                        "status": u.status,
                        "body": u.message,
                        "body_html": u.message_html,
                        "published_at": _iso(u.published_at),
                    }
                    for u in item.updates
                ],
            }
            for item in active
        ],
        "scheduled_maintenances": {
            "in_progress": [maintenance(m) for m in getattr(maintenances, "in_progress", [])],
            "upcoming": [maintenance(m) for m in getattr(maintenances, "upcoming", [])],
        },
    }
    headers = {"Access-Control-Allow-Origin": "*"} if page.is_public else {}
    return make_entry(
        body=json.dumps(data, indent=1).encode(),
        content_type="application/json",
        last_modified=selectors.page_last_changed(page=page, components=components),
        public=page.is_public,
        extra_headers=headers,
    )


@_reader
def status_summary(request: HttpRequest, page: StatusPage) -> HttpResponse:
    return entry_response(
        request,
        cached_or_render(
            page.slug,
            "summary.json",
            lambda: render_summary(request, page),
            generation=request.status_page_generation,
        ),
    )


_BADGE_COLOURS = {
    ComponentStatus.OPERATIONAL: "#1e7b34",
    ComponentStatus.UNDER_MAINTENANCE: "#1f5fae",
    ComponentStatus.DEGRADED_PERFORMANCE: "#8a5a00",
    ComponentStatus.PARTIAL_OUTAGE: "#b34700",
    ComponentStatus.MAJOR_OUTAGE: "#b3261e",
}


def _text_width(text: str) -> int:
    # Verdana 11px averages about 7px a character; exact widths do not matter here.
    return 7 * len(text) + 12


def render_badge(page: StatusPage) -> dict:
    components = selectors.page_components(page=page)
    overall = selectors.overall_status(components)
    label, value = page.title, overall.description
    left, right = _text_width(label), _text_width(value)
    body = render_to_string(
        "statuspages/badge.svg",
        {
            "label": label,
            "value": value,
            "left": left,
            "right": right,
            "width": left + right,
            "label_x": left / 2,
            "value_x": left + right / 2,
            "colour": _BADGE_COLOURS[overall.status],
        },
    )
    return make_entry(
        body=body.encode(),
        content_type="image/svg+xml; charset=utf-8",
        last_modified=selectors.page_last_changed(page=page, components=components),
        public=page.is_public,
        extra_headers={"Access-Control-Allow-Origin": "*"} if page.is_public else {},
    )


@_reader
def status_badge(request: HttpRequest, page: StatusPage) -> HttpResponse:
    return entry_response(
        request,
        cached_or_render(
            page.slug,
            "badge.svg",
            lambda: render_badge(page),
            generation=request.status_page_generation,
        ),
    )


def render_feed(request: HttpRequest, page: StatusPage) -> dict:
    from incidents.statuspages.feeds import StatusPageFeed

    response = StatusPageFeed()(request, page=page)
    updates = selectors.page_feed_updates(page=page, limit=1)
    return make_entry(
        body=response.content,
        content_type=response["Content-Type"],
        last_modified=updates[0].published_at if updates else page.updated_at,
        public=page.is_public,
    )


@_reader
def status_feed(request: HttpRequest, page: StatusPage) -> HttpResponse:
    return entry_response(
        request,
        cached_or_render(
            page.slug,
            "feed.atom",
            lambda: render_feed(request, page),
            generation=request.status_page_generation,
        ),
    )


@require_GET
def status_index(request: HttpRequest) -> HttpResponse:
    pages = list(status_pages_visible_to(request.user).order_by("order", "title"))
    return render(
        request,
        "statuspages/index.html",
        {"pages": pages, "can_manage": status_can_manage(request.user)},
    )


# --- The incident page's status-page panel --------------------------------------------


def panel_context(
    *,
    request: HttpRequest,
    incident: Incident,
    user,
    update_form: PublicUpdateForm | None = None,
    components_form: ComponentStatusesForm | None = None,
    preview: dict | None = None,
    error: str = "",
    notice: str = "",
    roles=None,
    open_compose: bool = False,
) -> dict:
    panel = selectors.incident_status_panel(incident=incident)
    can_speak = status_can_speak_for(user, incident, roles=roles)
    context = {
        "request": request,
        "incident": incident,
        "panel": panel,
        "can_speak": can_speak and incident.status != "closed",
        "preview": preview,
        "error": error,
        "notice": notice,
        "open_compose": open_compose,
    }
    if context["can_speak"]:
        if update_form is None:
            entry = next(iter(panel.entries.values()), None)
            update_form = PublicUpdateForm(
                pages=panel.pages,
                initial={
                    "pages": _default_pages(panel),
                    "title": entry.public_title if entry else "",
                    "status": entry.status if entry else PublicStatus.INVESTIGATING,
                },
            )
        context["update_form"] = update_form
        context["components_form"] = components_form or ComponentStatusesForm(
            components=panel.components
        )
        # Components linked to the incident's services first: they are the likely ones.
        linked = [c for c in panel.components if c.pk in panel.linked_ids]
        others = [c for c in panel.components if c.pk not in panel.linked_ids]
        form = context["components_form"]
        context["component_fields"] = [
            (c, form[f"component-{c.pk}"], c.pk in panel.linked_ids) for c in linked + others
        ]
        context["selected_pages"] = {str(v) for v in (update_form["pages"].value() or [])}
    return context


def _default_pages(panel: selectors.IncidentPanel) -> list[int]:
    """Where the incident already appears; else the pages of components linked to its
    services (the likely audience)."""
    return list(panel.entries) or sorted(
        {c.page_id for c in panel.components if c.pk in panel.linked_ids}
    )


PANEL_TEMPLATE = "statuspages/_incident_panel.html"
COMPOSE_TEMPLATE = "statuspages/incident_compose.html"


def _speaker_incident(request: HttpRequest, pk: int) -> Incident:
    incident = incident_get_for_view(request.user, pk)
    if not status_can_speak_for(request.user, incident):
        raise PermissionDenied(
            "Only the incident's commander or communications lead speaks for it on status pages."
        )
    return incident


def _panel_response(request: HttpRequest, incident: Incident, *, status: int = 200, **kwargs):
    # On its own page (no htmx) the forms are what the page is for: show them open.
    kwargs.setdefault("open_compose", not request.htmx)
    context = panel_context(request=request, incident=incident, user=request.user, **kwargs)
    template = PANEL_TEMPLATE if request.htmx else COMPOSE_TEMPLATE
    response = render(request, template, context, status=status)
    return response


@login_required
@require_GET
def incident_status_compose(request: HttpRequest, pk: int) -> HttpResponse:
    """The panel as a page of its own: where plain forms land, and where a template is
    chosen without JavaScript (?template=ID fills the message)."""
    incident = incident_get_for_view(request.user, pk)
    update_form = None
    template_id = request.GET.get("template", "")
    if template_id.isdigit() and status_can_speak_for(request.user, incident):
        chosen = StatusUpdateTemplate.objects.filter(pk=int(template_id)).first()
        if chosen is not None:
            # Keep what was already typed (htmx sends the update form along), replace the
            # status and message with the template's.
            panel = selectors.incident_status_panel(incident=incident)
            entry = next(iter(panel.entries.values()), None)
            chosen_pages = [p for p in request.GET.getlist("pages") if p.isdigit()]
            update_form = PublicUpdateForm(
                pages=panel.pages,
                initial={
                    "pages": chosen_pages or _default_pages(panel),
                    "title": request.GET.get("title") or (entry.public_title if entry else ""),
                    "status": chosen.status,
                    "message": chosen.message,
                },
            )
    return _panel_response(
        request,
        incident,
        update_form=update_form,
        open_compose=update_form is not None or not request.htmx,
    )


@login_required
@require_POST
def incident_status_publish(request: HttpRequest, pk: int) -> HttpResponse:
    """Preview (action=preview) or publish (action=publish) a public update."""
    incident = _speaker_incident(request, pk)
    form = PublicUpdateForm(request.POST, pages=StatusPage.objects.all())
    if not form.is_valid():
        return _panel_response(request, incident, update_form=form, status=422)
    data = form.cleaned_data
    if request.POST.get("action") != "publish":
        preview = {
            "pages": list(data["pages"]),
            "title": data["title"],
            "status": PublicStatus(data["status"]).label,
            "message_html": render_markdown(data["message"]),
        }
        return _panel_response(request, incident, update_form=form, preview=preview)
    try:
        status_update_publish(
            incident=incident,
            pages=data["pages"],
            status=data["status"],
            message=data["message"],
            title=data["title"],
            actor=request.user,
        )
    except StatusPageRefused as refused:
        return _panel_response(request, incident, update_form=form, error=str(refused), status=422)
    notice = "Published to " + ", ".join(p.title for p in data["pages"]) + "."
    if request.htmx:
        response = _panel_response(request, incident, notice=notice)
        return trigger_client_event(response, "timeline-refresh")
    messages.success(request, notice)
    return redirect("incidents:detail", pk=incident.pk)


@login_required
@require_POST
def incident_component_statuses(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _speaker_incident(request, pk)
    components = selectors.incident_status_panel(incident=incident).components
    form = ComponentStatusesForm(request.POST, components=components)
    if not form.is_valid():
        return _panel_response(request, incident, components_form=form, status=422)
    by_id = {c.pk: c for c in components}
    changed = []
    try:
        for component_id, status in form.changes().items():
            if component_status_set(
                component=by_id[component_id], status=status, actor=request.user, incident=incident
            ):
                changed.append(by_id[component_id].name)
    except StatusPageRefused as refused:
        return _panel_response(request, incident, error=str(refused), status=422)
    notice = ("Updated " + ", ".join(changed) + ".") if changed else "Nothing changed."
    if request.htmx:
        response = _panel_response(request, incident, notice=notice)
        return trigger_client_event(response, "timeline-refresh")
    messages.success(request, notice)
    return redirect("incidents:detail", pk=incident.pk)


@require_http_methods(["GET"])
def status_manage(request: HttpRequest) -> HttpResponse:
    if not status_can_manage(request.user):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        raise PermissionDenied("Only administrators manage status pages.")
    pages = list(
        StatusPage.objects.prefetch_related(
            Prefetch("components", queryset=Component.objects.select_related("group")), "teams"
        ).order_by("order", "title")
    )
    return render(
        request,
        "statuspages/manage.html",
        {"pages": pages, "templates": list(StatusUpdateTemplate.objects.all())},
    )
