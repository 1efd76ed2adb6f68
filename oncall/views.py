from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
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
