from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from oncall.models import Team, TeamMembership, User


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ["first_name", "last_name", "email", "time_zone"]


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Profile saved.")
        return redirect("profile")
    teams = request.user.memberships.select_related("team")
    return render(
        request,
        "oncall/profile.html",
        {"form": form, "memberships": teams},
        status=422 if form.is_bound and form.errors else 200,
    )


@login_required
@require_http_methods(["GET"])
def team_list(request: HttpRequest) -> HttpResponse:
    teams = Team.objects.prefetch_related(
        Prefetch(
            "memberships",
            queryset=TeamMembership.objects.select_related("user").order_by(
                "-role", "user__first_name"
            ),
        ),
        "services",
    )
    return render(request, "oncall/team_list.html", {"teams": teams})


@csrf_protect
@require_http_methods(["GET", "POST"])
def page_acknowledge_link(request: HttpRequest, token: str) -> HttpResponse:
    """The one-click acknowledge link in a notification.

    GET only shows what would be acknowledged (mail scanners follow links; they must not
    acknowledge pages); the button POSTs. The signed token names one person and one
    escalation: tampered, expired or someone else's links are refused without detail.
    """
    from oncall import services
    from oncall.models import Escalation

    refused = render(request, "oncall/ack.html", {"invalid": True}, status=404)
    try:
        escalation_id, user_id = services.ack_token_read(token)
    except signing.BadSignature:
        return refused
    escalation = (
        Escalation.objects.filter(pk=escalation_id).select_related("acknowledged_by").first()
    )
    person = User.objects.filter(pk=user_id, is_active=True).first()
    if escalation is None or person is None:
        return refused
    if request.user.is_authenticated and request.user.pk != person.pk:
        return refused
    if not escalation.pages.filter(user=person).exists():
        return refused
    context = {"escalation": escalation, "person": person, "token": token}
    if request.method == "POST":
        try:
            services.escalation_acknowledge(escalation=escalation, user=person, via="link")
        except services.PagingRefused as already:
            context["message"] = str(already)
            return render(request, "oncall/ack.html", context, status=409)
        context["acknowledged"] = True
        escalation.refresh_from_db()
    return render(request, "oncall/ack.html", context)
