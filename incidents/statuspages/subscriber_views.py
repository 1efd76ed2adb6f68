"""Subscribing to a status page, confirming, unsubscribing; maintenance and webhook
subscribers managed by page managers.

Subscribing answers exactly the same, whatever the address's state, so the form cannot be
used to learn who subscribes. Confirm and unsubscribe links show a page with a button on
GET and act only on POST: mail scanners fetch links, they do not press buttons.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from incidents.models import Component, ScheduledMaintenance, StatusPage, StatusSubscriber
from incidents.statuspages import maintenance as maintenance_services
from incidents.statuspages import subscriptions
from incidents.statuspages.permissions import (
    SignInRequired,
    status_can_manage,
    status_page_get_for_view,
)

# --- Forms ---------------------------------------------------------------------------------


class ComponentChoiceField(forms.ModelMultipleChoiceField):
    widget = forms.CheckboxSelectMultiple

    def label_from_instance(self, obj: Component) -> str:
        return f"{obj.group.name} · {obj.name}" if obj.group_id else obj.name


def _page_components(page: StatusPage):
    return (
        Component.objects.filter(page=page)
        .select_related("group")
        .order_by("group__order", "group__name", "order", "name")
    )


class SubscribeForm(forms.Form):
    email = forms.EmailField(label="Email address", max_length=254)
    components = ComponentChoiceField(
        queryset=Component.objects.none(),
        required=False,
        label="Only these components",
        help_text="Leave all unticked to hear about everything on this page.",
    )

    def __init__(self, *args, page: StatusPage, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["components"].queryset = _page_components(page)
        self.fields["email"].widget.attrs.update(autocomplete="email", inputmode="email")
        if not page.is_public:
            # Internal pages: mail goes to the signed-in reader's own address only, so
            # nothing meant for colleagues is sent outside.
            self.fields["email"].disabled = True
            self.fields["email"].initial = getattr(user, "email", "")
            self.fields["email"].help_text = "Internal pages are sent to your own address."


class MaintenanceForm(forms.Form):
    title = forms.CharField(max_length=maintenance_services.TITLE_MAX)
    message = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        max_length=maintenance_services.MESSAGE_MAX,
        help_text="What will happen and what readers may notice. Plain text.",
    )
    components = ComponentChoiceField(
        queryset=Component.objects.none(),
        required=False,
        label="Affected components",
        help_text="They show “under maintenance” during the window.",
    )
    starts_at = forms.DateTimeField(
        label="Starts",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    ends_at = forms.DateTimeField(
        label="Ends",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    notice_minutes = forms.IntegerField(
        label="Notify subscribers this many minutes before",
        min_value=0,
        max_value=maintenance_services.NOTICE_MAX_MINUTES,
        help_text="0 sends no advance notice; at most a day.",
    )

    def __init__(self, *args, page: StatusPage, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["components"].queryset = _page_components(page)
        self.fields["notice_minutes"].initial = settings.STATUS_MAINTENANCE_NOTICE_MINUTES

    def clean(self):
        data = super().clean()
        start, end = data.get("starts_at"), data.get("ends_at")
        if start and end:
            if end <= start:
                self.add_error("ends_at", "The window must end after it starts.")
            elif end <= timezone.now():
                self.add_error("ends_at", "This window is already over.")
            elif end - start > maintenance_services.LONGEST_WINDOW:
                self.add_error("ends_at", "A window can last at most 14 days.")
        return data


class WebhookForm(forms.Form):
    url = forms.URLField(
        label="URL",
        max_length=500,
        assume_scheme="https",
        help_text="Receives a JSON POST for every update, status change and maintenance.",
    )
    label = forms.CharField(max_length=100, required=False)
    secret = forms.CharField(
        label="Signing secret",
        required=False,
        min_length=16,
        max_length=128,
        help_text="Optional, at least 16 characters: requests then carry "
        "X-Firebreak-Signature (HMAC-SHA256).",
    )
    components = ComponentChoiceField(
        queryset=Component.objects.none(),
        required=False,
        label="Only these components",
        help_text="Leave all unticked to receive everything on this page.",
    )

    def __init__(self, *args, page: StatusPage, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["components"].queryset = _page_components(page)

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        if not url.lower().startswith(("http://", "https://")):
            raise ValidationError("Use an http:// or https:// address.")
        return url


# --- Helpers -------------------------------------------------------------------------------


def _client_ip(request: HttpRequest) -> str:
    # REMOTE_ADDR only: X-Forwarded-For is whatever the client wants it to be. Behind a
    # proxy, let the proxy set REMOTE_ADDR (gunicorn --forwarded-allow-ips).
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _page_for_reader(request: HttpRequest, slug: str) -> StatusPage | HttpResponse:
    try:
        return status_page_get_for_view(request.user, slug)
    except SignInRequired:
        return redirect_to_login(request.get_full_path())


def _page_for_manager(request: HttpRequest, slug: str) -> StatusPage:
    page = get_object_or_404(StatusPage, slug=slug)
    if not status_can_manage(request.user):
        raise PermissionDenied(
            "Only status page managers can do this: members of the Admins group, or people an "
            "administrator gives the “Can change status page” permission."
        )
    return page


def _csrf_failure(request: HttpRequest) -> HttpResponse | None:
    return CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})


# --- Subscribing ---------------------------------------------------------------------------


@csrf_exempt
@require_http_methods(["GET", "POST"])
def subscribe(request: HttpRequest, slug: str) -> HttpResponse:
    """Public pages: CSRF-exempt on purpose. The form sits on a page served from a shared
    cache to every reader, so it cannot carry a per-visitor token; the request uses no
    session or cookie, and nothing is sent but a confirmation that only the mailbox's
    owner can act on (and it is rate limited). Internal pages use the reader's session
    and their own address, so there the CSRF check applies as everywhere else."""
    page = _page_for_reader(request, slug)
    if isinstance(page, HttpResponse):
        return page
    if not page.is_public and request.method == "POST":
        refused = _csrf_failure(request)
        if refused is not None:
            return refused
    context = {
        "page": page,
        "page_url": subscriptions.page_path(page),
        "max_age_hours": settings.STATUS_CONFIRMATION_MAX_AGE_HOURS,
    }
    if request.method == "GET":
        # The public page's own form may hand over the address typed there.
        initial = {"email": request.GET.get("email", "")[:254]} if page.is_public else None
        form = SubscribeForm(initial=initial, page=page, user=request.user)
        return render(request, "statuspages/subscribe_form.html", {**context, "form": form})
    form = SubscribeForm(request.POST, page=page, user=request.user)
    if not form.is_valid():
        return render(
            request, "statuspages/subscribe_form.html", {**context, "form": form}, status=422
        )
    email = form.cleaned_data["email"] if page.is_public else request.user.email
    try:
        email = subscriptions.normalise_email(email)
        subscriptions.subscribe_rate_check(client_ip=_client_ip(request), email=email)
    except ValidationError:
        form.add_error("email", "Enter a valid email address.")
        return render(
            request, "statuspages/subscribe_form.html", {**context, "form": form}, status=422
        )
    except subscriptions.RateLimited as limited:
        response = render(
            request,
            "statuspages/subscribe_limited.html",
            {**context, "minutes": max(1, limited.retry_after // 60)},
            status=429,
        )
        response["Retry-After"] = str(limited.retry_after)
        return response
    subscriptions.email_subscription_request(
        page=page,
        email=email,
        components=form.cleaned_data["components"],
        user=None if page.is_public else request.user,
    )
    return render(request, "statuspages/subscribe_sent.html", context)


def _invalid_link(request: HttpRequest) -> HttpResponse:
    return render(request, "statuspages/subscribe_invalid_link.html", status=404)


@require_http_methods(["GET", "POST"])
def subscription_confirm(request: HttpRequest, pk: int, token: str) -> HttpResponse:
    subscriber = subscriptions.subscriber_for_confirmation(pk=pk, token=token)
    if subscriber is None:
        return _invalid_link(request)
    page = subscriber.page
    components = list(_page_components(page).filter(pk__in=subscriber.pending_component_ids))
    context = {
        "page": page,
        "page_url": subscriptions.page_path(page),
        "subscriber": subscriber,
        "components": components,
        "confirmed": False,
    }
    if request.method == "POST":
        subscriptions.subscriber_confirm(subscriber=subscriber)
        context["confirmed"] = True
        context["unsubscribe_url"] = subscriptions.unsubscribe_url(subscriber)
    return render(request, "statuspages/subscribe_confirm.html", context)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, pk: int, token: str) -> HttpResponse:
    """CSRF-exempt on purpose: RFC 8058 one-click unsubscribe is a POST from the mail
    provider, with no cookie; the token in the link is the only credential needed, and
    the only thing it can do is stop mail."""
    subscriber = subscriptions.subscriber_for_unsubscribe(pk=pk, token=token)
    if subscriber is None:
        return _invalid_link(request)
    if request.method == "POST":
        subscriptions.subscriber_unsubscribe(subscriber=subscriber)
        subscriber.refresh_from_db()
    context = {
        "page": subscriber.page,
        "page_url": subscriptions.page_path(subscriber.page),
        "subscriber": subscriber,
        "done": request.method == "POST" or subscriber.unsubscribed_at is not None,
    }
    return render(request, "statuspages/subscribe_unsubscribe.html", context)


# --- Managing maintenance and webhooks -------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def maintenance_manage(request: HttpRequest, slug: str) -> HttpResponse:
    page = _page_for_manager(request, slug)
    form = MaintenanceForm(request.POST or None, page=page)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                maintenance_services.maintenance_schedule(
                    page=page,
                    title=data["title"],
                    message=data["message"],
                    components=data["components"],
                    starts_at=data["starts_at"],
                    ends_at=data["ends_at"],
                    notice_minutes=data["notice_minutes"],
                    actor=request.user,
                )
            except maintenance_services.MaintenanceRefused as refused:
                form.add_error(None, str(refused))
            else:
                return redirect("status:maintenance_manage", slug=page.slug)
        status = 422
    context = {
        "page": page,
        "page_url": subscriptions.page_path(page),
        "form": form,
        "maintenances": maintenance_services.maintenances_for_manager(page=page),
        "zone": timezone.get_current_timezone_name(),
    }
    return render(request, "statuspages/maintenance_manage.html", context, status=status)


@login_required
@require_POST
def maintenance_cancel(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    page = _page_for_manager(request, slug)
    maintenance = get_object_or_404(ScheduledMaintenance, pk=pk, page=page)
    try:
        maintenance_services.maintenance_cancel(maintenance=maintenance)
    except maintenance_services.MaintenanceRefused as refused:
        context = {
            "page": page,
            "page_url": subscriptions.page_path(page),
            "form": MaintenanceForm(page=page),
            "maintenances": maintenance_services.maintenances_for_manager(page=page),
            "zone": timezone.get_current_timezone_name(),
            "error": str(refused),
        }
        return render(request, "statuspages/maintenance_manage.html", context, status=409)
    return redirect("status:maintenance_manage", slug=page.slug)


@login_required
@require_http_methods(["GET", "POST"])
def webhooks_manage(request: HttpRequest, slug: str) -> HttpResponse:
    page = _page_for_manager(request, slug)
    form = WebhookForm(request.POST or None, page=page)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            subscriptions.webhook_subscriber_add(
                page=page,
                url=data["url"],
                secret=data["secret"],
                label=data["label"],
                components=data["components"],
                actor=request.user,
            )
            return redirect("status:webhooks_manage", slug=page.slug)
        status = 422
    context = {
        "page": page,
        "page_url": subscriptions.page_path(page),
        "form": form,
        "webhooks": subscriptions.webhook_subscribers_for_page(page=page),
        "email_count": subscriptions.email_subscriber_count(page=page),
    }
    return render(request, "statuspages/subscribe_webhooks.html", context, status=status)


@login_required
@require_POST
def webhook_remove(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    page = _page_for_manager(request, slug)
    subscriber = get_object_or_404(
        StatusSubscriber, pk=pk, page=page, kind=StatusSubscriber.Kind.WEBHOOK
    )
    subscriptions.webhook_subscriber_remove(subscriber=subscriber)
    return redirect(reverse("status:webhooks_manage", kwargs={"slug": page.slug}))
