"""Incident pages. Views parse input, call one service, render.

Every action answers an htmx request with the refreshed header and sidebar (and tells the
timeline poll to fetch at once), and a plain form post with a redirect back to the page,
so everything works without JavaScript too.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from incidents import paging, selectors, services
from incidents.forms import (
    DetailsForm,
    DoneForm,
    IncidentDeclareForm,
    IncidentFilterForm,
    MilestoneForm,
    NoteForm,
    PageForm,
    PinForm,
    RestrictForm,
    RoleForm,
    SeverityForm,
    ShareForm,
    StakeholderUpdateForm,
    StatusForm,
    TaskForm,
    TaskOwnerForm,
    active_people,
)
from incidents.models import (
    Incident,
    IncidentRole,
    IncidentStatus,
    IntegrationKind,
    Milestone,
    Service,
    Severity,
    TimelineKind,
)
from incidents.permissions import (
    incident_can_declare,
    incident_can_respond,
    incident_can_view_unrestricted,
    incident_get_for_response,
    incident_get_for_view,
    incident_people_with_access,
)

DETAIL_TEMPLATE = "incidents/incident_detail.html"


# --- Pages ----------------------------------------------------------------------------


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    open_incidents = list(selectors.incident_open_for_user(user=request.user))
    mine = [i for i in open_incidents if _holds_role(i, request.user)]
    return render(
        request,
        "incidents/home.html",
        {
            "open_incidents": open_incidents,
            "mine_ids": {i.pk for i in mine},
            "can_declare": incident_can_declare(request.user),
        },
    )


def _holds_role(incident: Incident, user) -> bool:
    return any(a.user_id == user.pk for a in getattr(incident, "active_commanders", []))


@login_required
@require_GET
def incident_list(request: HttpRequest) -> HttpResponse:
    form = IncidentFilterForm(request.GET or None)
    filters = selectors.IncidentFilters()
    if form.is_bound:
        form.is_valid()  # a bad value drops only its own filter, not all of them
        data = form.cleaned_data
        filters = selectors.IncidentFilters(
            status=data.get("status", ""),
            severity=data["severity"].pk if data.get("severity") else None,
            service=data["service"].pk if data.get("service") else None,
            team=data["team"].pk if data.get("team") else None,
            mine=data.get("mine", False),
            query=data.get("q", ""),
        )
    queryset = selectors.incident_list_for_user(user=request.user, filters=filters)
    paginator = Paginator(queryset, settings.INCIDENTS_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "query_string": query.urlencode(),
        "can_declare": incident_can_declare(request.user),
    }
    template = "incidents/incident_list.html"
    if request.htmx and request.htmx.target == "incident-results":
        template += "#results"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])  # same URL, fragment or whole page
    return response


@login_required
@require_http_methods(["GET", "POST"])
def incident_declare(request: HttpRequest) -> HttpResponse:
    if not incident_can_declare(request.user):
        raise PermissionDenied("Only responders can declare incidents.")
    form = IncidentDeclareForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        incident = services.incident_declare(
            declared_by=request.user,
            title=data["title"],
            severity=data["severity"],
            detection_source=data["detection_source"],
            services=data["services"],
            incident_type=data["incident_type"],
            restricted=data["restricted"],
            commander=data["commander"],
            summary=data["summary"],
            impact_started_at=data["impact_started_at"],
        )
        return redirect("incidents:detail", pk=incident.pk)
    return render(
        request,
        "incidents/incident_declare.html",
        {"form": form, "severities": Severity.objects.all()},
        status=422 if form.is_bound else 200,
    )


def _timeline_kind(request: HttpRequest) -> str:
    kind = request.GET.get("kind", "")
    return kind if kind in TimelineKind.values else ""


def _detail_context(
    request: HttpRequest,
    incident: Incident,
    *,
    bound: dict[str, Any] | None = None,
    error: str = "",
    conflict: services.DetailsConflict | None = None,
) -> dict[str, Any]:
    """Everything the incident page and its partials render, in a fixed number of queries."""
    bound = bound or {}
    kind = _timeline_kind(request)
    roles = selectors.incident_roles_active(incident=incident)
    commander = next((r for r in roles if r.role == IncidentRole.COMMANDER), None)
    services_list = list(incident.services.select_related("team"))
    details_initial = {
        "title": incident.title,
        "summary": incident.summary,
        "services": [s.pk for s in services_list],
        "incident_type": incident.incident_type_id,
        "details_version": incident.details_version,
    }
    milestones = [(m.value, m.label, getattr(incident, m.value)) for m in Milestone]
    return {
        "incident": incident,
        "services": services_list,
        "roles": roles,
        "commander": commander,
        "tasks": selectors.incident_tasks(incident=incident),
        "updates": selectors.incident_latest_updates(incident=incident),
        "update_due": selectors.update_due_state(incident),
        "pinned": selectors.timeline_pinned(incident=incident),
        "milestones": milestones,
        "transitions": [
            (s, _transition_label(incident.status, s)) for s in incident.allowed_transitions()
        ],
        # Querysets, not lists: only evaluated (once) when a form that needs them renders.
        "severities": selectors.severities_all(),
        "can_respond": incident_can_respond(request.user, incident),
        "kind": kind,
        "kinds": TimelineKind.choices,
        "poll_seconds": settings.TIMELINE_POLL_SECONDS,
        "error": error,
        "conflict": conflict,
        "status_form": bound.get("status") or StatusForm(),
        "severity_form": bound.get("severity")
        or SeverityForm(initial={"severity": incident.severity_id}),
        "milestone_form": bound.get("milestone") or MilestoneForm(),
        "role_form": bound.get("role") or RoleForm(),
        "task_form": bound.get("task") or TaskForm(),
        "note_form": bound.get("note") or NoteForm(),
        "update_form": bound.get("update") or StakeholderUpdateForm(),
        "details_form": bound.get("details") or DetailsForm(initial=details_initial),
        "share_form": bound.get("share") or ShareForm(),
        "people": active_people(),
        "escalations": selectors.incident_escalations(incident=incident),
        "page_form": bound.get("page") or PageForm(),
        "availability": _availability(incident),
        "shared_with": (
            incident_people_with_access(incident=incident) if incident.restricted else []
        ),
        "role_choices": IncidentRole.choices,
        "alerts": incident.alerts.select_related("integration")[:50],
    }


_TRANSITION_LABELS = {
    IncidentStatus.IDENTIFIED: "Cause identified",
    IncidentStatus.MONITORING: "Mitigated, monitoring",
    IncidentStatus.RESOLVED: "Resolve",
    IncidentStatus.CLOSED: "Close",
}


def _availability(incident: Incident) -> str:
    """Which forms the sidebar offers: changes when an incident resolves, closes or is
    restricted."""
    if incident.status == IncidentStatus.CLOSED:
        state = "closed"
    else:
        state = "open" if incident.is_open else "resolved"
    return f"{state}-restricted" if incident.restricted else state


def _transition_label(current: str, target: str) -> str:
    if target == IncidentStatus.INVESTIGATING:
        return "Reopen" if current == IncidentStatus.RESOLVED else "Back to investigating"
    if target == IncidentStatus.IDENTIFIED and current == IncidentStatus.MONITORING:
        return "Back to identified"
    return _TRANSITION_LABELS[target]


def _load_for_view(request: HttpRequest, pk: int) -> Incident:
    return incident_get_for_view(request.user, pk, queryset=selectors.incident_for_detail(pk=pk))


@login_required
@require_GET
def incident_detail(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _load_for_view(request, pk)
    context = _detail_context(request, incident)
    context["timeline"] = selectors.timeline_page(
        incident=incident, kind=context["kind"], before=_before(request)
    )
    template = DETAIL_TEMPLATE
    if request.htmx and request.htmx.target == "timeline":
        template += "#timeline"  # switching the kind filter swaps only the timeline
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@require_GET
def incident_timeline(request: HttpRequest, pk: int) -> HttpResponse:
    """Older timeline entries (?before=ID), for the 'show older' link."""
    incident = _load_for_view(request, pk)
    before = _before(request)
    kind = _timeline_kind(request)
    page = selectors.timeline_page(incident=incident, kind=kind, before=before)
    context = {
        "incident": incident,
        "timeline": page,
        "kind": kind,
        "can_respond": incident_can_respond(request.user, incident),
    }
    if request.htmx:
        return render(request, DETAIL_TEMPLATE + "#older_entries", context)
    query = urlencode({"kind": kind, "before": before or ""})
    return redirect(f"{reverse('incidents:detail', kwargs={'pk': pk})}?{query}")


def _before(request: HttpRequest) -> int | None:
    try:
        return int(request.GET.get("before", "")) or None
    except ValueError:
        return None


@login_required
@require_GET
def incident_timeline_poll(request: HttpRequest, pk: int) -> HttpResponse:
    """Answer 204 when nothing changed since `rev`; otherwise the new entries and state.

    The quiet case reads the incident's (restricted, revision) and the viewer's
    permissions from the cache: a room full of people watching a quiet incident costs the
    database one user lookup per poll.
    """
    try:
        rev = int(request.GET.get("rev", "-1"))
        after = int(request.GET.get("after", "0"))
    except ValueError:
        return HttpResponse("rev and after must be integers.", status=400)
    state = selectors.incident_poll_state(pk=pk)
    if state is None:
        raise Http404("No such incident.")
    restricted, revision = state
    if not restricted and incident_can_view_unrestricted(request.user):
        if rev == revision:
            return HttpResponse(status=204)
    elif rev == revision:
        # Restricted: the object permission is checked in the database every time.
        incident_get_for_view(request.user, pk, queryset=Incident.objects.only("pk", "restricted"))
        return HttpResponse(status=204)
    incident = _load_for_view(request, pk)
    context = _detail_context(request, incident)
    kind = context["kind"]
    newest = selectors.timeline_newest_id(incident=incident)
    context["new_entries"] = selectors.timeline_entries_between(
        incident=incident, after=after, upto=newest, kind=kind
    )
    context["repinned"] = selectors.timeline_repinned_since(
        incident=incident, revision=rev, upto=after, kind=kind
    )
    context["timeline"] = selectors.TimelinePage(entries=[], older_cursor=None, newest_id=newest)
    context["oob"] = True
    context["sidebar_full"] = request.GET.get("avail", "") != context["availability"]
    return render(request, DETAIL_TEMPLATE + "#poll_response", context)


@login_required
@require_POST
def incident_unshare(request: HttpRequest, pk: int, user_id: int) -> HttpResponse:
    incident = _action(request, pk)
    person = get_object_or_404(get_user_model(), pk=user_id)
    try:
        services.incident_unshare(incident=incident, actor=request.user, user=person)
    except services.IncidentRefused as refused:
        return _respond(request, incident, error=str(refused))
    return _respond(request, incident)


def _respond(
    request: HttpRequest,
    incident: Incident,
    *,
    form_name: str = "",
    bound: dict[str, Any] | None = None,
    error: str = "",
    status_error: str = "",
    conflict: services.DetailsConflict | None = None,
    success: str = "",
    availability_was: str = "",
) -> HttpResponse:
    """After an action: refreshed live regions (and the submitted form) for htmx, or back
    to the page for a plain form post. Other forms on the page are left alone, so nothing
    half-typed elsewhere is lost."""
    failed = bool(error or status_error or conflict or bound)
    if request.htmx:
        incident = selectors.incident_for_detail(pk=incident.pk).get()
        context = _detail_context(request, incident, bound=bound, error=error, conflict=conflict)
        context.update(
            oob=True,
            form_name=form_name,
            status_error=status_error,
            # Resolving or closing changes which forms the sidebar offers: send it whole.
            sidebar_full=bool(availability_was) and availability_was != _availability(incident),
        )
        response = render(
            request, DETAIL_TEMPLATE + "#action_response", context, status=422 if failed else 200
        )
        return trigger_client_event(response, "timeline-refresh")
    if failed:
        incident = selectors.incident_for_detail(pk=incident.pk).get()
        context = _detail_context(request, incident, bound=bound, error=error, conflict=conflict)
        context["status_error"] = status_error
        context["timeline"] = selectors.timeline_page(incident=incident)
        return render(request, DETAIL_TEMPLATE, context, status=422)
    if success:
        messages.success(request, success)
    return redirect("incidents:detail", pk=incident.pk)


def _action(request: HttpRequest, pk: int) -> Incident:
    return incident_get_for_response(request.user, pk)


@login_required
@require_POST
def incident_status(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _action(request, pk)
    form = StatusForm(request.POST)
    if not form.is_valid():
        return _respond(request, incident, bound={"status": form})
    before = _availability(incident)
    try:
        services.incident_transition(
            incident=incident,
            actor=request.user,
            to_status=form.cleaned_data["to_status"],
            expected_status=form.cleaned_data["from_status"] or None,
        )
    except services.IncidentRefused as refused:
        return _respond(request, incident, status_error=str(refused))
    return _respond(request, incident, availability_was=before)


@login_required
@require_POST
def incident_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _action(request, pk)
    try:
        services.incident_acknowledge(incident=incident, actor=request.user)
    except services.IncidentRefused as refused:
        return _respond(request, incident, error=str(refused))
    return _respond(request, incident)


@login_required
@require_POST
def incident_severity(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _action(request, pk)
    form = SeverityForm(request.POST)
    if not form.is_valid():
        return _respond(request, incident, form_name="severity", bound={"severity": form})
    try:
        services.incident_change_severity(
            incident=incident,
            actor=request.user,
            severity=form.cleaned_data["severity"],
            reason=form.cleaned_data["reason"],
            expected_severity_id=form.cleaned_data["from_severity"],
        )
    except services.IncidentRefused as refused:
        form.add_error(None, str(refused))
        return _respond(request, incident, form_name="severity", bound={"severity": form})
    return _respond(request, incident, form_name="severity")


@login_required
@require_POST
def incident_milestone(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _action(request, pk)
    form = MilestoneForm(request.POST)
    if not form.is_valid():
        return _respond(request, incident, form_name="milestone", bound={"milestone": form})
    try:
        services.incident_correct_milestone(
            incident=incident,
            actor=request.user,
            milestone=form.cleaned_data["milestone"],
            value=form.cleaned_data["value"],
            reason=form.cleaned_data["reason"],
        )
    except services.IncidentRefused as refused:
        form.add_error(None, str(refused))
        return _respond(request, incident, form_name="milestone", bound={"milestone": form})
    return _respond(request, incident, form_name="milestone")


@login_required
@require_POST
def incident_details(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _action(request, pk)
    form = DetailsForm(request.POST)
    if not form.is_valid():
        return _respond(request, incident, form_name="details", bound={"details": form})
    data = form.cleaned_data
    try:
        services.incident_update_details(
            incident=incident,
            actor=request.user,
            title=data["title"],
            summary=data["summary"],
            services=data["services"],
            incident_type=data["incident_type"],
            details_version=data["details_version"],
        )
    except services.DetailsConflict as conflict:
        return _respond(
            request, incident, form_name="details", bound={"details": form}, conflict=conflict
        )
    return _respond(request, incident, form_name="details")


@login_required
@require_POST
def role_assign(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _action(request, pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _respond(request, incident, form_name="role", bound={"role": form})
    try:
        services.role_assign(
            incident=incident,
            actor=request.user,
            user=form.cleaned_data["user"],
            role=form.cleaned_data["role"],
        )
    except services.IncidentRefused as refused:
        form.add_error(None, str(refused))
        return _respond(request, incident, form_name="role", bound={"role": form})
    return _respond(request, incident, form_name="role")


@login_required
@require_POST
def role_relieve(request: HttpRequest, pk: int, assignment_id: int) -> HttpResponse:
    incident = _action(request, pk)
    try:
        services.role_relieve(incident=incident, actor=request.user, assignment_id=assignment_id)
    except services.IncidentRefused as refused:
        return _respond(request, incident, error=str(refused))
    return _respond(request, incident)


@login_required
@require_POST
def task_add(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _action(request, pk)
    form = TaskForm(request.POST)
    if not form.is_valid():
        return _respond(request, incident, form_name="task", bound={"task": form})
    services.task_add(
        incident=incident,
        actor=request.user,
        title=form.cleaned_data["title"],
        owner=form.cleaned_data["owner"],
    )
    return _respond(request, incident, form_name="task")


@login_required
@require_POST
def task_done(request: HttpRequest, pk: int, task_id: int) -> HttpResponse:
    incident = _action(request, pk)
    form = DoneForm(request.POST)
    if not form.is_valid():
        return _respond(request, incident, error="Say whether the task is done or open.")
    try:
        services.task_set_done(
            incident=incident, actor=request.user, task_id=task_id, done=form.cleaned_data["done"]
        )
    except services.IncidentRefused as refused:
        return _respond(request, incident, error=str(refused))
    return _respond(request, incident)


@login_required
@require_POST
def task_owner(request: HttpRequest, pk: int, task_id: int) -> HttpResponse:
    incident = _action(request, pk)
    form = TaskOwnerForm(request.POST)
    if not form.is_valid():
        return _respond(request, incident, error="Choose an active person as owner.")
    try:
        services.task_assign(
            incident=incident, actor=request.user, task_id=task_id, owner=form.cleaned_data["owner"]
        )
    except services.IncidentRefused as refused:
        return _respond(request, incident, error=str(refused))
    return _respond(request, incident)


@login_required
@require_POST
def stakeholder_update(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _action(request, pk)
    form = StakeholderUpdateForm(request.POST)
    if not form.is_valid():
        return _respond(request, incident, form_name="update", bound={"update": form})
    try:
        services.stakeholder_update_post(
            incident=incident, author=request.user, body=form.cleaned_data["body"]
        )
    except services.IncidentRefused as refused:
        form.add_error(None, str(refused))
        return _respond(request, incident, form_name="update", bound={"update": form})
    return _respond(request, incident, form_name="update", success="Stakeholder update posted.")


@login_required
@require_POST
def note_add(request: HttpRequest, pk: int) -> HttpResponse:
    """Notes are open to anyone who can read the incident: observers record findings too."""
    incident = _load_for_view(request, pk)
    form = NoteForm(request.POST)
    if not form.is_valid():
        if request.htmx:
            context = {"incident": incident, "note_form": form, "oob": False}
            return render(request, DETAIL_TEMPLATE + "#composer", context, status=422)
        return _respond(request, incident, bound={"note": form})
    services.note_add(incident=incident, author=request.user, body=form.cleaned_data["body"])
    if request.htmx:
        response = render(
            request,
            DETAIL_TEMPLATE + "#composer",
            {"incident": incident, "note_form": NoteForm(), "oob": False},
        )
        return trigger_client_event(response, "timeline-refresh")
    return redirect("incidents:detail", pk=incident.pk)


@login_required
@require_POST
def entry_pin(request: HttpRequest, pk: int, entry_id: int) -> HttpResponse:
    incident = _action(request, pk)
    form = PinForm(request.POST)
    if not form.is_valid():
        return _respond(request, incident, error="Say whether to pin or unpin.")
    try:
        entry = services.timeline_entry_set_pinned(
            incident=incident,
            actor=request.user,
            entry_id=entry_id,
            pinned=form.cleaned_data["pinned"],
        )
    except services.IncidentRefused as refused:
        return _respond(request, incident, error=str(refused))
    if request.htmx:
        incident = selectors.incident_for_detail(pk=incident.pk).get()
        context = _detail_context(request, incident)
        context.update({"entry": entry, "oob": True})  # entry swaps in place, the rest OOB
        return render(request, DETAIL_TEMPLATE + "#pin_response", context)
    return redirect("incidents:detail", pk=incident.pk)


@login_required
@require_POST
def incident_restrict(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _action(request, pk)
    form = RestrictForm(request.POST)
    if not form.is_valid():
        return _respond(request, incident, error="Say whether to restrict the incident.")
    before = _availability(incident)
    try:
        services.incident_set_restricted(
            incident=incident, actor=request.user, restricted=form.cleaned_data["restricted"]
        )
    except services.IncidentRefused as refused:
        return _respond(request, incident, error=str(refused))
    return _respond(request, incident, availability_was=before)


@login_required
@require_POST
def incident_share(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _action(request, pk)
    form = ShareForm(request.POST)
    if not form.is_valid():
        return _respond(request, incident, form_name="share", bound={"share": form})
    services.incident_share(
        incident=incident,
        actor=request.user,
        user=form.cleaned_data["user"],
        respond=form.cleaned_data["respond"],
    )
    return _respond(request, incident, form_name="share")


# --- Service catalog ----------------------------------------------------------------


@login_required
@require_GET
def service_list(request: HttpRequest) -> HttpResponse:
    services_qs = Service.objects.select_related("team").order_by("team__name", "name")
    return render(request, "incidents/service_list.html", {"services": services_qs})


@login_required
@require_GET
def service_detail(request: HttpRequest, slug: str) -> HttpResponse:
    service = get_object_or_404(Service.objects.select_related("team"), slug=slug)
    return service_page_response(request, service)


def service_page_response(
    request: HttpRequest, service: Service, *, status: int = 200, **bound_forms
) -> HttpResponse:
    """The service page, for its own GET and for the alerting forms on it that come back
    with errors (`integration_form=` or `heartbeat_form=`, bound)."""
    recent = selectors.incident_list_for_user(
        user=request.user, filters=selectors.IncidentFilters(service=service.pk)
    )[:20]
    context = {"service": service, "incidents": recent}
    if incident_can_declare(request.user):  # responders see and manage integrations
        from incidents.alerting.views import IntegrationForm, integration_url_shown_once

        # Heartbeats have their own section; here only the integrations that send alerts.
        context["integrations"] = service.integrations.exclude(kind=IntegrationKind.HEARTBEAT)
        context["integration_form"] = IntegrationForm()
        context.update(integration_url_shown_once(request, service))
        context.update(bound_forms)
    response = render(request, "incidents/service_detail.html", context, status=status)
    if context.get("new_integration"):
        response["Cache-Control"] = "no-store"  # a secret: not kept for the back button
    return response


@login_required
@require_POST
def incident_page(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _action(request, pk)
    form = PageForm(request.POST)
    if not form.is_valid():
        return _respond(request, incident, form_name="page", bound={"page": form})
    try:
        paging.incident_page(
            incident=incident,
            actor=request.user,
            user=form.cleaned_data["user"],
            schedule=form.cleaned_data["schedule"],
            policy=form.cleaned_data["policy"],
        )
    except services.IncidentRefused as refused:
        form.add_error(None, str(refused))
        return _respond(request, incident, form_name="page", bound={"page": form})
    return _respond(request, incident, form_name="page")


@login_required
@require_POST
def incident_page_acknowledge(request: HttpRequest, pk: int, escalation_id: int) -> HttpResponse:
    incident = _action(request, pk)
    try:
        paging.incident_page_acknowledge(
            incident=incident, actor=request.user, escalation_id=escalation_id
        )
    except services.IncidentRefused as refused:
        return _respond(request, incident, error=str(refused))
    return _respond(request, incident)
