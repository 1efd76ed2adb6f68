"""The alerts page, an alert's own page, and the integration and heartbeat controls on a
service's page. Views parse input, call one service, render.

Actions on alerts are plain form posts answered with a redirect back (so the page works
without JavaScript) and are all-or-nothing on permission: if one selected alert may not be
changed by this person, none is. Alerts that moved on meanwhile (already resolved, already
on an incident) are skipped and the message says so.
"""

from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from incidents import selectors
from incidents.alerting import heartbeats
from incidents.alerting.middleware import machine_endpoint
from incidents.alerting.selectors import (
    SINCE,
    AlertFilters,
    alert_can_act,
    alert_get_for_view,
    alert_history,
    alert_links,
    alert_list_for_user,
    alerts_revision,
    alerts_revision_forget,
    alerts_visible_to,
    incidents_open_for_attaching,
)
from incidents.alerting.services import (
    alert_acknowledge,
    alert_attach,
    alert_resolve,
    incident_declare_from_alert,
    integration_create,
    integration_for_token,
    integration_rotate,
    route_decision,
)
from incidents.forms import FirebreakForm, SeverityChoiceField
from incidents.models import (
    Alert,
    AlertSeverity,
    AlertStatus,
    HeartbeatMonitor,
    HeartbeatState,
    Incident,
    Integration,
    IntegrationKind,
    Service,
    Severity,
)
from incidents.permissions import incident_can_declare, incident_can_respond
from incidents.services import IncidentRefused
from incidents.views import service_page_response

ALERTS_PAGE_SIZE = 50

# --- Alerts page ----------------------------------------------------------------------


class AlertFilterForm(FirebreakForm):
    STATUS_CHOICES = [("", "Any status"), ("open", "Open"), *AlertStatus.choices]
    q = forms.CharField(required=False, label="Search", max_length=200)
    status = forms.ChoiceField(choices=STATUS_CHOICES, required=False)
    severity = forms.ChoiceField(
        choices=[("", "Any severity"), *AlertSeverity.choices], required=False
    )
    service = forms.ModelChoiceField(
        queryset=Service.objects.only("pk", "name", "slug"),
        to_field_name="slug",
        required=False,
        empty_label="Any service",
    )
    integration = forms.ModelChoiceField(
        queryset=Integration.objects.select_related("service").only("pk", "name", "service__name"),
        required=False,
        empty_label="Any integration",
    )
    since = forms.ChoiceField(
        choices=[("", "Any time"), *((k, v[0]) for k, v in SINCE.items())],
        required=False,
        label="Last seen",
    )
    unattached = forms.BooleanField(required=False, label="Only unattached")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["integration"].label_from_instance = lambda i: f"{i.service.name} · {i.name}"


def _filters(form: AlertFilterForm) -> AlertFilters:
    if not form.is_bound:
        return AlertFilters()
    form.is_valid()  # a bad value drops only its own filter, not all of them...
    if form.has_error("service") or form.has_error("integration"):
        # ...except a service or integration that does not exist: it has no alerts.
        return AlertFilters(service=-1)
    data = form.cleaned_data
    return AlertFilters(
        status=data.get("status", ""),
        service=data["service"].pk if data.get("service") else None,
        severity=data.get("severity", ""),
        integration=data["integration"].pk if data.get("integration") else None,
        since=data.get("since", ""),
        unattached=data.get("unattached", False),
        query=data.get("q", ""),
    )


@login_required
@require_GET
def alert_list(request: HttpRequest) -> HttpResponse:
    """The whole page, or (for htmx) the results; the live refresh sends `rev` and gets a
    bare 204 from the cache when no alert changed anywhere."""
    if request.htmx and "rev" in request.GET and request.GET["rev"] == alerts_revision():
        return HttpResponse(status=204)
    return _render_list(request)


def _render_list(request: HttpRequest, *, bulk_error: str = "", status: int = 200):
    revision = alerts_revision()  # read before the rows: a change in between shows next poll
    params = request.GET if request.method == "GET" else _next_params(request)
    form = AlertFilterForm(params or None)
    alerts = alert_list_for_user(user=request.user, filters=_filters(form))
    page = Paginator(alerts, ALERTS_PAGE_SIZE).get_page(params.get("page"))
    query = params.copy()
    for key in ("page", "rev"):
        query.pop(key, None)
    can_declare = incident_can_declare(request.user)
    attachable = incidents_open_for_attaching(user=request.user)
    context = {
        "form": form,
        "page": page,
        "revision": revision,
        "query_string": query.urlencode(),
        "poll_seconds": settings.TIMELINE_POLL_SECONDS,
        "can_declare": can_declare,
        "attachable": attachable,
        # Readers who can change no incident and declare none get no buttons to be refused by.
        "can_bulk": can_declare or bool(attachable),
        "bulk_error": bulk_error,
        "selected": {int(v) for v in request.POST.getlist("alert") if v.isdigit()},
    }
    template = "incidents/alert_list.html"
    if request.htmx and request.htmx.target == "alert-results":
        template += "#results"
    return render(request, template, context, status=status)


def _next_params(request: HttpRequest):
    """The filters the bulk form was posted from (carried in `next`), as a QueryDict."""
    from django.http import QueryDict

    target = request.POST.get("next", "")
    _, _, query = target.partition("?")
    return QueryDict(query)


MAX_ID = 2**63 - 1


class BulkForm(FirebreakForm):
    ACTIONS = [("acknowledge", "Acknowledge"), ("resolve", "Resolve"), ("attach", "Attach")]
    action = forms.ChoiceField(choices=ACTIONS, error_messages={"required": "Choose an action."})
    alert = forms.TypedMultipleChoiceField(
        coerce=int,
        choices=(),
        error_messages={"required": "Select at least one alert."},
    )
    incident = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Any id is accepted here; which alerts this person may see is decided in SQL.
        # Ids beyond a 64-bit key name no alert (and SQLite refuses to even compare them).
        self.fields["alert"].valid_value = lambda value: (
            str(value).isdigit() and int(value) <= MAX_ID
        )

    def clean(self):
        data = super().clean()
        if data.get("action") == "attach" and not data.get("incident"):
            self.add_error("incident", "Choose the incident to attach the alerts to.")
        return data


def _back(request: HttpRequest) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("alerts:list")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@login_required
@require_POST
def alert_bulk(request: HttpRequest) -> HttpResponse:
    form = BulkForm(request.POST)
    if not form.is_valid():
        error = " ".join(e for errors in form.errors.values() for e in errors)
        return _render_after_bad_post(request, error)
    action = form.cleaned_data["action"]
    ids = form.cleaned_data["alert"]
    alerts = list(
        alerts_visible_to(request.user)
        .filter(pk__in=ids)
        .select_related("incident", "service")
        .order_by("pk")
    )
    if len(alerts) != len(set(ids)):
        return _render_after_bad_post(
            request, "Some of the selected alerts no longer exist or are not visible to you."
        )
    if not all(alert_can_act(request.user, a) for a in alerts):
        raise PermissionDenied(
            "You may not act on one or more of these alerts: that needs the right to change "
            "the alert's incident or, for an alert on no incident, to declare incidents."
        )

    if action == "attach":
        incident = Incident.objects.filter(pk=form.cleaned_data["incident"]).first()
        if incident is None or not incident_can_respond(request.user, incident):
            return _render_after_bad_post(request, "Choose an incident you can change.")
        try:
            attached = alert_attach(alerts=alerts, incident=incident, actor=request.user)
        except IncidentRefused as refused:
            return _render_after_bad_post(request, str(refused))
        if attached:
            messages.success(
                request, f"{_plural(attached, 'alert')} attached to {incident.reference}."
            )
        alerts_revision_forget(changed_unseen=True)  # a bare UPDATE: tell watching pages
        if attached < len(alerts):
            messages.info(
                request,
                f"{_plural(len(alerts) - attached, 'alert')} already on {incident.reference}.",
            )
        return redirect(_back(request))

    change = alert_acknowledge if action == "acknowledge" else alert_resolve
    done, stale = 0, []
    for alert in alerts:
        # The services re-check under the row lock: an alert resolved by its monitoring
        # tool while this page was open changes nothing and is reported, not an error.
        if change(alert=alert, actor=request.user):
            done += 1
        else:
            alert.refresh_from_db(fields=["status"])
            stale.append(f"“{alert.title[:60]}” was already {alert.get_status_display().lower()}")
    verb = "acknowledged" if action == "acknowledge" else "resolved"
    if done:
        messages.success(request, f"{_plural(done, 'alert')} {verb}.")
    if stale:
        messages.info(request, "Nothing to do for " + "; ".join(stale[:5]) + ".")
    return redirect(_back(request))


def _render_after_bad_post(request: HttpRequest, error: str) -> HttpResponse:
    """Back to the page the form was on, with the error, and nothing changed."""
    target = request.POST.get("next", "")
    detail_prefix = reverse("alerts:list")
    ids = [v for v in request.POST.getlist("alert") if v.isdigit()]
    if len(ids) == 1 and target.startswith(detail_prefix + ids[0] + "/"):
        alert = alert_get_for_view(request.user, int(ids[0]))
        return _render_detail(request, alert, error=error, status=422)
    return _render_list(request, bulk_error=error, status=422)


# --- One alert ---------------------------------------------------------------------------


def _pretty_payload(alert: Alert) -> str:
    if not alert.payload:
        return ""
    # The token is never part of a stored payload (the parsers drop routing_key); this
    # is a second guard in case an older row kept one.
    payload = {k: v for k, v in alert.payload.items() if k != "routing_key"}
    return json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _render_detail(request, alert: Alert, *, error: str = "", status: int = 200):
    can_act = alert_can_act(request.user, alert)
    return render(
        request,
        "incidents/alert_detail.html",
        {
            "alert": alert,
            "history": alert_history(alert=alert),
            "links": alert_links(alert=alert),
            "payload": _pretty_payload(alert),
            "retention_days": settings.ALERT_PAYLOAD_RETENTION_DAYS,
            "can_act": can_act,
            "can_declare": incident_can_declare(request.user),
            "attachable": incidents_open_for_attaching(user=request.user) if can_act else [],
            "error": error,
        },
        status=status,
    )


@login_required
@require_GET
def alert_detail(request: HttpRequest, alert_id: int) -> HttpResponse:
    return _render_detail(request, alert_get_for_view(request.user, alert_id))


# Alert severity to the incident severity level offered first when declaring by hand.
DECLARE_LEVEL = {
    AlertSeverity.CRITICAL: 1,
    AlertSeverity.ERROR: 2,
    AlertSeverity.WARNING: 3,
    AlertSeverity.INFO: 4,
}


class DeclareFromAlertForm(FirebreakForm):
    title = forms.CharField(
        max_length=200, error_messages={"required": "Give the incident a title."}
    )
    severity = SeverityChoiceField(
        queryset=Severity.objects.all(),
        widget=forms.RadioSelect,
        empty_label=None,
        error_messages={"required": "Choose a severity: the definitions say which fits."},
    )


def _severity_for(alert: Alert) -> Severity | None:
    """What routing would open for this alert, else the level matching its severity."""
    routed = route_decision(alert=alert).severity
    if routed is not None:
        return routed
    level = DECLARE_LEVEL.get(alert.severity, 3)
    ladder = selectors.severities_all()
    at_or_below = [s for s in ladder if s.level >= level]
    return at_or_below[0] if at_or_below else (ladder[-1] if ladder else None)


@login_required
@require_http_methods(["GET", "POST"])
def alert_declare(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = alert_get_for_view(request.user, alert_id)
    if not incident_can_declare(request.user):
        raise PermissionDenied("Only responders can declare incidents.")
    if alert.incident_id is not None and alert.incident.is_open:
        messages.info(request, f"This alert is already part of {alert.incident.reference}.")
        return redirect("alerts:detail", alert_id=alert.pk)
    if request.method == "POST":
        form = DeclareFromAlertForm(request.POST)
        if form.is_valid():
            try:
                incident = incident_declare_from_alert(
                    alert=alert,
                    actor=request.user,
                    severity=form.cleaned_data["severity"],
                    title=form.cleaned_data["title"],
                )
            except IncidentRefused as refused:  # e.g. declared by someone else meanwhile
                messages.info(request, str(refused))
                return redirect("alerts:detail", alert_id=alert.pk)
            messages.success(request, f"{incident.reference} declared from the alert.")
            return redirect("incidents:detail", pk=incident.pk)
        status = 422
    else:
        form = DeclareFromAlertForm(
            initial={"title": alert.title[:200], "severity": _severity_for(alert)}
        )
        status = 200
    return render(
        request,
        "incidents/alert_declare.html",
        {"alert": alert, "form": form, "severities": selectors.severities_all()},
        status=status,
    )


# --- Integrations and heartbeats on a service's page --------------------------------------


class IntegrationForm(forms.Form):
    name = forms.CharField(max_length=100, required=False)
    # Heartbeats have their own form (an interval, not a payload format).
    kind = forms.ChoiceField(
        choices=[c for c in IntegrationKind.choices if c[0] != IntegrationKind.HEARTBEAT]
    )


class HeartbeatForm(FirebreakForm):
    name = forms.CharField(
        max_length=100, error_messages={"required": "Name the job that pings, e.g. Nightly backup."}
    )
    interval_minutes = forms.IntegerField(
        min_value=1, max_value=60 * 24 * 31, initial=60, label="Pings every (minutes)"
    )
    grace_minutes = forms.IntegerField(
        min_value=0, max_value=60 * 24 * 7, initial=5, label="Grace (minutes)"
    )
    severity = forms.ChoiceField(
        choices=AlertSeverity.choices, initial=AlertSeverity.ERROR, label="Alert severity"
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "id_heartbeat_%s")
        super().__init__(*args, **kwargs)


def integration_url(request: HttpRequest | None, integration: Integration, token: str) -> str:
    path = reverse(f"integrations:{integration.kind}", kwargs={"token": token})
    return request.build_absolute_uri(path) if request is not None else path


_SHOWN_ONCE = "firebreak:new-integration-url"


def _redirect_showing_url_once(request: HttpRequest, integration: Integration, token: str):
    """POST, redirect, GET: the new URL waits in the session for the next view of the
    service page, which shows it and forgets it. Reloading that page then neither creates
    nor rotates again (a reload used to rotate the URL just copied), and the secret never
    sits in an address bar or a browser's history."""
    request.session[_SHOWN_ONCE] = {
        "service": integration.service_id,
        "integration": integration.pk,
        "url": integration_url(request, integration, token),
    }
    anchor = "#heartbeats-h" if integration.kind == IntegrationKind.HEARTBEAT else "#integrations-h"
    return redirect(
        reverse("services:service_detail", kwargs={"slug": integration.service.slug}) + anchor
    )


def integration_url_shown_once(request: HttpRequest, service: Service) -> dict:
    """Context for the service page: the URL made by the previous request, once."""
    waiting = request.session.get(_SHOWN_ONCE)
    if not waiting or waiting.get("service") != service.pk:
        return {}
    del request.session[_SHOWN_ONCE]
    integration = Integration.objects.filter(pk=waiting["integration"], service=service).first()
    if integration is None:
        return {}
    if integration.kind == IntegrationKind.HEARTBEAT:
        return {"new_heartbeat_url": waiting["url"], "new_integration": integration}
    return {"new_url": waiting["url"], "new_integration": integration}


def _service_for_configuring(request: HttpRequest, slug: str) -> Service:
    service = get_object_or_404(Service.objects.select_related("team"), slug=slug)
    if not incident_can_declare(request.user):
        raise PermissionDenied("Only responders can configure integrations.")
    return service


@login_required
@require_POST
def integration_add(request: HttpRequest, slug: str) -> HttpResponse:
    service = _service_for_configuring(request, slug)
    form = IntegrationForm(request.POST)
    if not form.is_valid():
        return service_page_response(request, service, integration_form=form, status=422)
    integration, token = integration_create(
        service=service, kind=form.cleaned_data["kind"], name=form.cleaned_data["name"]
    )
    return _redirect_showing_url_once(request, integration, token)


@login_required
@require_POST
def integration_rotate_view(request: HttpRequest, slug: str, integration_id: int) -> HttpResponse:
    service = _service_for_configuring(request, slug)
    integration = get_object_or_404(Integration, pk=integration_id, service=service)
    token = integration_rotate(integration=integration)
    messages.success(request, f"{integration.name}: new URL below; the old one no longer works.")
    return _redirect_showing_url_once(request, integration, token)


@login_required
@require_POST
def heartbeat_add(request: HttpRequest, slug: str) -> HttpResponse:
    service = _service_for_configuring(request, slug)
    form = HeartbeatForm(request.POST)
    if not form.is_valid():
        return service_page_response(request, service, heartbeat_form=form, status=422)
    monitor, token = heartbeats.heartbeat_create(service=service, **form.cleaned_data)
    return _redirect_showing_url_once(request, monitor.integration, token)


def _heartbeat(service: Service, heartbeat_id: int) -> HeartbeatMonitor:
    return get_object_or_404(
        HeartbeatMonitor.objects.select_related("integration"),
        pk=heartbeat_id,
        integration__service=service,
    )


def _service_page(service: Service) -> str:
    return reverse("services:service_detail", kwargs={"slug": service.slug}) + "#heartbeats-h"


@login_required
@require_POST
def heartbeat_pause_view(request: HttpRequest, slug: str, heartbeat_id: int) -> HttpResponse:
    """Pause a running monitor, or resume a paused one (it then waits for the next ping)."""
    service = _service_for_configuring(request, slug)
    monitor = _heartbeat(service, heartbeat_id)
    if monitor.state == HeartbeatState.PAUSED:
        heartbeats.heartbeat_resume(monitor=monitor)
        messages.success(request, f"{monitor.integration.name} resumed: waiting for a ping.")
    else:
        heartbeats.heartbeat_pause(monitor=monitor)
        messages.success(request, f"{monitor.integration.name} paused.")
    return redirect(_service_page(service))


@login_required
@require_POST
def heartbeat_delete_view(request: HttpRequest, slug: str, heartbeat_id: int) -> HttpResponse:
    service = _service_for_configuring(request, slug)
    monitor = _heartbeat(service, heartbeat_id)
    heartbeats.heartbeat_delete(monitor=monitor)
    messages.success(request, f"{monitor.integration.name} deleted; its URL no longer works.")
    return redirect(_service_page(service))


# --- The ping a monitored job sends -------------------------------------------------------


@machine_endpoint
@csrf_exempt
@require_http_methods(["GET", "POST", "HEAD"])
def heartbeat_ping(request: HttpRequest, token: str) -> HttpResponse:
    """The secret URL is the credential (no session, no CSRF), as for every integration.
    GET, POST and HEAD all count, so `curl`, `wget` and HTTP checkers can ping."""
    integration = integration_for_token(token)
    if integration is None or integration.kind != IntegrationKind.HEARTBEAT:
        return HttpResponse("No such heartbeat.\n", status=404, content_type="text/plain")
    if heartbeats.heartbeat_ping(integration=integration) is None:
        return HttpResponse("No such heartbeat.\n", status=404, content_type="text/plain")
    return HttpResponse("OK\n", content_type="text/plain")
