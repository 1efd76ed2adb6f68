"""A service's routing rules and maintenance windows: who may change them is who may
configure its integrations (responders)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from incidents.alerting import services
from incidents.alerting.rule_forms import AlertRuleForm, MaintenanceWindowForm
from incidents.models import AlertRule, MaintenanceWindow, Service
from incidents.permissions import incident_can_declare


def _service_for_configuring(request: HttpRequest, slug: str) -> Service:
    service = get_object_or_404(Service.objects.select_related("team"), slug=slug)
    if not incident_can_declare(request.user):
        raise PermissionDenied("Only responders can configure alert routing.")
    return service


def _service_page(service: Service, anchor: str) -> str:
    return reverse("services:service_detail", kwargs={"slug": service.slug}) + f"#{anchor}"


def _rule_from(request: HttpRequest, service: Service, value) -> AlertRule:
    try:
        return AlertRule.objects.get(pk=int(value), service=service)
    except (TypeError, ValueError, AlertRule.DoesNotExist):
        raise Http404("No such rule on this service.") from None


@login_required
@require_http_methods(["GET", "POST"])
def rule_form(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: the form for a new rule (or ?rule=<id> to edit one). POST: save it."""
    service = _service_for_configuring(request, slug)
    source = request.POST if request.method == "POST" else request.GET
    rule = _rule_from(request, service, source["rule"]) if source.get("rule") else None
    if request.method == "GET":
        form = AlertRuleForm(instance=rule)
        return _render_rule_form(request, service, rule, form)
    form = AlertRuleForm(request.POST, instance=rule)
    if not form.is_valid():
        return _render_rule_form(request, service, rule, form, status=422)
    data = form.cleaned_data
    services.alert_rule_save(
        service=service,
        rule=rule,
        name=data["name"],
        matchers=data["matchers"],
        action=data["action"],
        severity=data["severity"],
        grouping=data["grouping"],
        window_minutes=data["window_minutes"],
        auto_resolve=data["auto_resolve"],
    )
    messages.success(request, "Routing rule saved.")
    return redirect(_service_page(service, "routing-h"))


def _render_rule_form(request, service, rule, form, status=200) -> HttpResponse:
    return render(
        request,
        "incidents/alert_rule_form.html",
        {
            "service": service,
            "rule": rule,
            "form": form,
            "default_window": settings.ALERT_GROUPING_WINDOW_MINUTES,
        },
        status=status,
    )


@login_required
@require_POST
def rule_delete(request: HttpRequest, slug: str) -> HttpResponse:
    service = _service_for_configuring(request, slug)
    services.alert_rule_delete(rule=_rule_from(request, service, request.POST.get("rule")))
    messages.success(request, "Routing rule deleted.")
    return redirect(_service_page(service, "routing-h"))


@login_required
@require_POST
def rule_move(request: HttpRequest, slug: str) -> HttpResponse:
    service = _service_for_configuring(request, slug)
    rule = _rule_from(request, service, request.POST.get("rule"))
    services.alert_rule_move(rule=rule, up=request.POST.get("direction") != "down")
    return redirect(_service_page(service, f"rule-{rule.pk}"))


@login_required
@require_http_methods(["GET", "POST"])
def maintenance_form(request: HttpRequest, slug: str) -> HttpResponse:
    service = _service_for_configuring(request, slug)
    zone = timezone.get_current_timezone_name()
    if request.method == "GET":
        now = timezone.localtime().replace(second=0, microsecond=0)
        initial = {"starts_at": now, "ends_at": now + timedelta(hours=1)}
        form = MaintenanceWindowForm(initial=initial, zone=zone)
        return _render_maintenance_form(request, service, form)
    form = MaintenanceWindowForm(request.POST, zone=zone)
    if not form.is_valid():
        return _render_maintenance_form(request, service, form, status=422)
    services.maintenance_window_create(
        service=service,
        actor=request.user,
        starts_at=form.cleaned_data["starts_at"],
        ends_at=form.cleaned_data["ends_at"],
        reason=form.cleaned_data["reason"],
    )
    messages.success(request, "Maintenance window scheduled.")
    return redirect(_service_page(service, "maintenance-h"))


def _render_maintenance_form(request, service, form, status=200) -> HttpResponse:
    return render(
        request,
        "incidents/maintenance_form.html",
        {"service": service, "form": form, "zone": timezone.get_current_timezone_name()},
        status=status,
    )


@login_required
@require_POST
def maintenance_cancel(request: HttpRequest, slug: str) -> HttpResponse:
    service = _service_for_configuring(request, slug)
    try:
        window = MaintenanceWindow.objects.get(
            pk=int(request.POST.get("window", "")), service=service
        )
    except (TypeError, ValueError, MaintenanceWindow.DoesNotExist):
        raise Http404("No such maintenance window on this service.") from None
    if services.maintenance_window_cancel(window=window, actor=request.user):
        messages.success(request, "Maintenance window cancelled.")
    return redirect(_service_page(service, "maintenance-h"))
