"""The alerts page and the integration controls on a service's page."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from incidents import selectors
from incidents.alerting.services import (
    integration_create,
    integration_rotate,
)
from incidents.models import Alert, AlertStatus, Integration, IntegrationKind, Service
from incidents.permissions import (
    incident_can_declare,
    incident_can_view_unrestricted,
    incidents_visible_to,
)

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
