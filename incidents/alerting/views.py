"""Alert intake endpoints (token in the URL, no session, no CSRF), the alerts page and
the integration controls on a service's page."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from incidents import selectors
from incidents.alerting import parsers
from incidents.alerting.services import (
    alerts_ingest,
    integration_create,
    integration_for_token,
    integration_rotate,
)
from incidents.models import Alert, AlertStatus, Integration, IntegrationKind, Service
from incidents.permissions import (
    incident_can_declare,
    incident_can_view_unrestricted,
    incidents_visible_to,
)

# --- Intake ---------------------------------------------------------------------------


def _not_found() -> JsonResponse:
    return JsonResponse({"status": "not found", "message": "No such integration."}, status=404)


def _invalid(error: parsers.InvalidEvent) -> JsonResponse:
    return JsonResponse(
        {"status": "invalid event", "message": error.message, "errors": error.errors}, status=400
    )


def _read_body(request: HttpRequest) -> bytes:
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    too_big = parsers.InvalidEvent(f"The body is larger than {parsers.MAX_BODY_BYTES // 1024} KB.")
    if declared > parsers.MAX_BODY_BYTES:
        raise too_big
    body = request.read(parsers.MAX_BODY_BYTES + 1)
    if len(body) > parsers.MAX_BODY_BYTES:
        raise too_big
    return body


def _receive(request: HttpRequest, token: str, kind: str) -> JsonResponse:
    integration = integration_for_token(token)
    if integration is None or integration.kind != kind:
        return _not_found()
    try:
        body = _read_body(request)
        if kind == IntegrationKind.ALERTMANAGER:
            events = parsers.parse_alertmanager(body)
        elif kind == IntegrationKind.PAGERDUTY:
            events = [parsers.parse_pagerduty(body)[0]]
        else:
            events = parsers.parse_generic(body, integration.field_mapping)
    except parsers.InvalidEvent as error:
        return _invalid(error)
    results = alerts_ingest(integration=integration, events=events)
    if kind == IntegrationKind.ALERTMANAGER:
        return JsonResponse({"status": "success", "alerts": len(results)})
    return JsonResponse(
        {"status": "success", "message": "Event processed", "dedup_key": results[0].dedup_key},
        status=202,
    )


@csrf_exempt
@require_POST
def alertmanager_webhook(request: HttpRequest, token: str) -> JsonResponse:
    return _receive(request, token, IntegrationKind.ALERTMANAGER)


@csrf_exempt
@require_POST
def pagerduty_events(request: HttpRequest, token: str) -> JsonResponse:
    return _receive(request, token, IntegrationKind.PAGERDUTY)


@csrf_exempt
@require_POST
def pagerduty_enqueue(request: HttpRequest) -> JsonResponse:
    """PagerDuty's own shape: one URL, the token in the body's routing_key."""
    try:
        body = _read_body(request)
        _, routing_key = parsers.parse_pagerduty(body)
    except parsers.InvalidEvent as error:
        return _invalid(error)
    if not routing_key:
        return _invalid(
            parsers.InvalidEvent("Event object is invalid", ["routing_key is required."])
        )
    integration = integration_for_token(routing_key)
    if integration is None or integration.kind != IntegrationKind.PAGERDUTY:
        return _not_found()
    event, _ = parsers.parse_pagerduty(body)
    result = alerts_ingest(integration=integration, events=[event])[0]
    return JsonResponse(
        {"status": "success", "message": "Event processed", "dedup_key": result.dedup_key},
        status=202,
    )


@csrf_exempt
@require_POST
def generic_webhook(request: HttpRequest, token: str) -> JsonResponse:
    return _receive(request, token, IntegrationKind.GENERIC)


# --- Alerts page ----------------------------------------------------------------------


def alerts_visible_to(user):
    """Alerts follow their incident's permission; unattached ones need view_incident."""
    visible = Q(incident__in=incidents_visible_to(user).values("pk"))
    if incident_can_view_unrestricted(user):
        visible |= Q(incident__isnull=True)
    return Alert.objects.filter(visible)


@login_required
@require_GET
def alert_list(request: HttpRequest) -> HttpResponse:
    alerts = alerts_visible_to(request.user).select_related("service", "incident", "integration")
    status = request.GET.get("status", "")
    if status == "open":
        alerts = alerts.exclude(status=AlertStatus.RESOLVED)
    elif status in AlertStatus.values:
        alerts = alerts.filter(status=status)
    service_slug = request.GET.get("service", "")
    if service_slug:
        alerts = alerts.filter(service__slug=service_slug)
    page = Paginator(alerts.order_by("-last_seen", "-pk"), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "incidents/alert_list.html",
        {
            "page": page,
            "alerts": page.object_list,
            "status": status,
            "statuses": [("open", "Open"), *AlertStatus.choices],
            "service_slug": service_slug,
            "services": Service.objects.order_by("name").only("name", "slug"),
        },
    )


# --- Integrations on a service's page -------------------------------------------------


class IntegrationForm(forms.Form):
    name = forms.CharField(max_length=100, required=False)
    kind = forms.ChoiceField(choices=IntegrationKind.choices)


def integration_url(request: HttpRequest | None, integration: Integration, token: str) -> str:
    path = reverse(f"integrations:{integration.kind}", kwargs={"token": token})
    return request.build_absolute_uri(path) if request is not None else path


def _service_for_configuring(request: HttpRequest, slug: str) -> Service:
    service = get_object_or_404(Service.objects.select_related("team"), slug=slug)
    if not incident_can_declare(request.user):
        raise PermissionDenied("Only responders can configure integrations.")
    return service


def _render_service(request, service, *, form=None, new_url="", new_integration=None, status=200):
    recent = selectors.incident_list_for_user(
        user=request.user, filters=selectors.IncidentFilters(service=service.pk)
    )[:20]
    return render(
        request,
        "incidents/service_detail.html",
        {
            "service": service,
            "incidents": recent,
            "integrations": service.integrations.all(),
            "integration_form": form or IntegrationForm(),
            "new_url": new_url,
            "new_integration": new_integration,
        },
        status=status,
    )


@login_required
@require_POST
def integration_add(request: HttpRequest, slug: str) -> HttpResponse:
    service = _service_for_configuring(request, slug)
    form = IntegrationForm(request.POST)
    if not form.is_valid():
        return _render_service(request, service, form=form, status=422)
    integration, token = integration_create(
        service=service, kind=form.cleaned_data["kind"], name=form.cleaned_data["name"]
    )
    # Rendered, not redirected: the URL is shown this once and never appears in a GET.
    return _render_service(
        request,
        service,
        new_url=integration_url(request, integration, token),
        new_integration=integration,
    )


@login_required
@require_POST
def integration_rotate_view(request: HttpRequest, slug: str, integration_id: int) -> HttpResponse:
    service = _service_for_configuring(request, slug)
    integration = get_object_or_404(Integration, pk=integration_id, service=service)
    token = integration_rotate(integration=integration)
    return _render_service(
        request,
        service,
        new_url=integration_url(request, integration, token),
        new_integration=integration,
    )
