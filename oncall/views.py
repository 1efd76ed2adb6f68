"""On-call pages: your profile (contact methods, rules, shifts, calendar feed), schedules with
their calendar, overrides and "take this shift", escalation policies, iCal feeds.

Views parse input, call one write (a form's save or a small function here), render. Every
htmx action is also a plain form post answered with a redirect, so the pages work without
JavaScript; forms with errors answer 422 with the errors in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from oncall import ical, selectors
from oncall.forms import (
    ContactMethodForm,
    LayerForm,
    NotificationRuleForm,
    OverrideForm,
    PolicyForm,
    ScheduleForm,
    StepFormSet,
    TakeShiftForm,
    new_signing_secret,
    policy_save,
    step_initial,
)
from oncall.models import (
    ContactMethod,
    EscalationPolicy,
    EscalationStep,
    NotificationRule,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
    StepTarget,
    Team,
    TeamMembership,
    User,
    UserCalendarFeed,
)
from oncall.permissions import (
    policy_can_edit,
    policy_get_for_edit,
    schedule_can_edit,
    schedule_get_for_edit,
    team_can_edit_oncall,
    teams_user_can_edit,
)
from oncall.scheduling import gaps

UPCOMING_DAYS = 28
GAP_WARNING_DAYS = 14
PERSON_COLOURS = 8


def _status(form_or_forms) -> int:
    items = form_or_forms if isinstance(form_or_forms, list | tuple) else [form_or_forms]
    return 422 if any(f.is_bound and f.errors for f in items if f is not None) else 200


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# --- Profile ------------------------------------------------------------------------------


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ["first_name", "last_name", "email", "time_zone"]


def _profile_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    user = request.user
    now = timezone.now()
    methods = list(ContactMethod.objects.filter(user=user).order_by("created_at", "pk"))
    shown = request.session.pop("oncall_shown_secret", None)
    if shown:
        for method in methods:
            if method.pk == shown.get("id"):
                method.shown_secret = shown.get("secret")
    feed_url = request.session.pop("oncall_user_feed_url", None)
    context = {
        "form": ProfileForm(instance=user),
        "memberships": user.memberships.select_related("team"),
        "methods": methods,
        "rules": NotificationRule.objects.filter(user=user).select_related("contact_method"),
        "rule_form": NotificationRuleForm(user=user),
        "upcoming": selectors.user_shifts(
            user=user, start=now, end=now + timedelta(days=UPCOMING_DAYS)
        ),
        "upcoming_days": UPCOMING_DAYS,
        "now": now,
        "feed": UserCalendarFeed.objects.filter(user=user).first(),
        "feed_url": feed_url,
    }
    context.update(extra)
    return context


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Profile saved.")
        return redirect("profile")
    return render(
        request,
        "oncall/profile.html",
        _profile_context(request, form=form),
        status=_status(form),
    )


def _own_method(request: HttpRequest, pk: int) -> ContactMethod:
    # Someone else's contact method answers exactly like a missing one.
    return get_object_or_404(ContactMethod, pk=pk, user=request.user)


@login_required
@require_http_methods(["GET", "POST"])
def contact_method_create(request: HttpRequest) -> HttpResponse:
    form = ContactMethodForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        method = form.save()
        if method.kind == ContactMethod.Kind.WEBHOOK:
            request.session["oncall_shown_secret"] = {"id": method.pk, "secret": method.secret}
        messages.success(request, f"Added {method}. Send yourself a test to check it works.")
        return redirect(reverse("profile") + f"#method-{method.pk}")
    return render(
        request,
        "oncall/contact_method_form.html",
        {"form": form, "method": None},
        status=_status(form),
    )


@login_required
@require_http_methods(["GET", "POST"])
def contact_method_edit(request: HttpRequest, pk: int) -> HttpResponse:
    method = _own_method(request, pk)
    form = ContactMethodForm(request.POST or None, instance=method, user=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Saved {method}.")
        return redirect(reverse("profile") + f"#method-{method.pk}")
    return render(
        request,
        "oncall/contact_method_form.html",
        {"form": form, "method": method},
        status=_status(form),
    )


@login_required
@require_POST
def contact_method_delete(request: HttpRequest, pk: int) -> HttpResponse:
    method = _own_method(request, pk)
    name = str(method)
    method.delete()  # its rules go with it (CASCADE)
    messages.success(request, f"Removed {name} and its notification rules.")
    return redirect("profile")


@login_required
@require_POST
def contact_method_secret(request: HttpRequest, pk: int) -> HttpResponse:
    """A new signing secret for a signed webhook; the old one stops working at once."""
    method = _own_method(request, pk)
    if method.kind != ContactMethod.Kind.WEBHOOK:
        raise Http404("Only signed webhooks have a signing secret.")
    method.secret = new_signing_secret()
    method.save(update_fields=["secret"])
    if request.htmx:
        method.shown_secret = method.secret
        return render(request, "oncall/profile.html#contact_method", {"method": method})
    request.session["oncall_shown_secret"] = {"id": method.pk, "secret": method.secret}
    messages.success(request, "New signing secret made. Update your receiver with it.")
    return redirect(reverse("profile") + f"#method-{method.pk}")


@dataclass
class TestOutcome:
    ok: bool
    text: str


def contact_method_send_test(*, method: ContactMethod, user: User) -> TestOutcome:
    """Send a test message through the real notifier, now, and record what it says about
    the contact method: a permanent failure that is the method's fault pauses it (shown to
    its owner until fixed); a success clears any earlier pause."""
    from oncall.notifiers import DeliveryError, PageMessage, notifier_for

    message = PageMessage(
        delivery_id=f"firebreak-test-{method.pk}-{secrets.token_hex(4)}",
        title=f"Test for {method}",
        summary=(
            "You asked Firebreak to send this test. When you are paged, it arrives here "
            "the same way."
        ),
        link_url=settings.SITE_URL + reverse("profile"),
        ack_url="",
        recipient_name=user.display_name,
        kind="test",
    )
    now = timezone.now()
    try:
        receipt = notifier_for(method.kind).send(contact=method, message=message)
    except DeliveryError as exc:
        if exc.permanent and not exc.site_problem:
            ContactMethod.objects.filter(pk=method.pk).update(
                disabled_at=now, disabled_reason=str(exc)[:1000]
            )
            method.disabled_at, method.disabled_reason = now, str(exc)[:1000]
        return TestOutcome(ok=False, text=str(exc))
    if method.disabled_at is not None:
        ContactMethod.objects.filter(pk=method.pk).update(disabled_at=None, disabled_reason="")
        method.disabled_at, method.disabled_reason = None, ""
    return TestOutcome(ok=True, text=f"Test sent: {receipt}.")


@login_required
@require_POST
def contact_method_test(request: HttpRequest, pk: int) -> HttpResponse:
    method = _own_method(request, pk)
    outcome = contact_method_send_test(method=method, user=request.user)
    if request.htmx:
        return render(
            request, "oncall/profile.html#contact_method", {"method": method, "outcome": outcome}
        )
    (messages.success if outcome.ok else messages.error)(request, outcome.text)
    return redirect(reverse("profile") + f"#method-{method.pk}")


@login_required
@require_POST
def rule_create(request: HttpRequest) -> HttpResponse:
    form = NotificationRuleForm(request.POST, user=request.user)
    if form.is_valid():
        rule = form.save()
        messages.success(request, f"Added: {rule.contact_method} {_after(rule.delay_minutes)}.")
        return redirect(reverse("profile") + "#rules")
    return render(
        request, "oncall/profile.html", _profile_context(request, rule_form=form), status=422
    )


def _after(minutes: int) -> str:
    return "at once" if minutes == 0 else f"after {minutes} minute{'s' if minutes != 1 else ''}"


@login_required
@require_POST
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(NotificationRule, pk=pk, user=request.user)
    rule.delete()
    messages.success(request, "Notification rule removed.")
    return redirect(reverse("profile") + "#rules")


@login_required
@require_POST
def user_feed_publish(request: HttpRequest) -> HttpResponse:
    """Make (or replace) the signed-in person's secret calendar feed; the URL is shown once."""
    token = secrets.token_urlsafe(32)
    UserCalendarFeed.objects.update_or_create(
        user=request.user, defaults={"token_hash": _token_hash(token)}
    )
    request.session["oncall_user_feed_url"] = request.build_absolute_uri(
        reverse("oncall:user_feed", kwargs={"token": token})
    )
    return redirect(reverse("profile") + "#calendar-feed")


@login_required
@require_POST
def user_feed_revoke(request: HttpRequest) -> HttpResponse:
    UserCalendarFeed.objects.filter(user=request.user).delete()
    messages.success(request, "Your calendar feed is switched off; its old link no longer works.")
    return redirect(reverse("profile") + "#calendar-feed")


# --- Who is on call -----------------------------------------------------------------------


@login_required
@require_GET
def oncall_home(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    schedules = list(selectors.schedules_for_pages())
    on_call = selectors.schedules_on_call(schedules=schedules, at=now)
    return render(
        request,
        "oncall/oncall_home.html",
        {
            "rows": [(s, on_call.get(s.pk)) for s in schedules],
            "upcoming": selectors.user_shifts(
                user=request.user,
                start=now,
                end=now + timedelta(days=UPCOMING_DAYS),
                schedules=schedules,
            ),
            "upcoming_days": UPCOMING_DAYS,
            "now": now,
        },
    )


@login_required
@require_GET
def team_list(request: HttpRequest) -> HttpResponse:
    teams = list(
        Team.objects.prefetch_related(
            Prefetch(
                "memberships",
                queryset=TeamMembership.objects.select_related("user").order_by(
                    "-role", "user__first_name"
                ),
            ),
            "services",
        )
    )
    schedules = list(selectors.schedules_for_pages().filter(team__isnull=False))
    on_call = selectors.schedules_on_call(schedules=schedules, at=timezone.now())
    by_team: dict[int, list] = {}
    for schedule in schedules:
        by_team.setdefault(schedule.team_id, []).append((schedule, on_call.get(schedule.pk)))
    for team in teams:
        team.on_call_rows = by_team.get(team.pk, [])
    return render(request, "oncall/team_list.html", {"teams": teams})


# --- Schedules ----------------------------------------------------------------------------


@login_required
@require_GET
def schedule_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    schedules = list(selectors.schedules_for_pages())
    on_call = selectors.schedules_on_call(schedules=schedules, at=now)
    rows = []
    for schedule in schedules:
        shifts = selectors.schedule_final(
            schedule=schedule, start=now, end=now + timedelta(days=GAP_WARNING_DAYS)
        )
        rows.append(
            {
                "schedule": schedule,
                "on_call": on_call.get(schedule.pk),
                "next": next((s for s in shifts[1:]), None),
                "gap_count": len(gaps(shifts)),
            }
        )
    people = selectors.users_by_id(
        r["next"].user_id for r in rows if r["next"] and r["next"].user_id
    )
    for row in rows:
        nxt = row["next"]
        row["next_person"] = people.get(nxt.user_id) if nxt and nxt.user_id else None
    return render(
        request,
        "oncall/schedule_list.html",
        {"rows": rows, "can_create": teams_user_can_edit(request.user).exists()},
    )


@dataclass
class Segment:
    start: datetime
    end: datetime
    left: float
    width: float
    user: User | None
    colour: int
    override: bool
    title: str
    label: str


@dataclass
class Track:
    label: str
    kind: str  # "final", "layer", "overrides"
    segments: list[Segment] = field(default_factory=list)


@dataclass
class WeekRow:
    days: list[date]
    day_lefts: list[float]
    tracks: list[Track]


def _local_midnight(day: date, tz) -> datetime:
    return datetime.combine(day, time(0, 0)).replace(tzinfo=tz)


def _fmt(instant: datetime, tz) -> str:
    local = instant.astimezone(tz)
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def _range_for(view: str, anchor: date) -> tuple[date, date, date, date, str]:
    """(first day shown, day after the last, previous anchor, next anchor, title)."""
    if view == "month":
        first = anchor.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        start = first - timedelta(days=first.weekday())
        last = following - timedelta(days=1)
        end = last + timedelta(days=7 - last.weekday())
        previous = (first - timedelta(days=1)).replace(day=1)
        return start, end, previous, following, f"{first:%B %Y}"
    start = anchor - timedelta(days=anchor.weekday())
    end = start + timedelta(days=7)
    last = end - timedelta(days=1)
    title = f"{start.day} {start:%b} – {last.day} {last:%b %Y}"
    return start, end, start - timedelta(days=7), end, title


def _segments(shifts, row_start, row_end, people, tz, *, names: dict | None = None):
    total = (row_end - row_start).total_seconds()
    out = []
    for shift in shifts:
        a, b = max(shift.start, row_start), min(shift.end, row_end)
        if a >= b:
            continue
        person = people.get(shift.user_id) if shift.user_id else None
        who = person.display_name if person else "Nobody on call"
        source = (names or {}).get(shift.layer_id) or ("Override" if shift.override_id else "")
        title = f"{who} · {_fmt(shift.start, tz)} – {_fmt(shift.end, tz)}"
        if source:
            title += f" ({source})"
        out.append(
            Segment(
                start=shift.start,
                end=shift.end,
                left=round((a - row_start).total_seconds() / total * 100, 3),
                width=round((b - a).total_seconds() / total * 100, 3),
                user=person,
                colour=(shift.user_id or 0) % PERSON_COLOURS,
                override=bool(shift.override_id),
                title=title,
                label=who if person else "Gap",
            )
        )
    return out


def _calendar(request: HttpRequest, schedule: Schedule) -> dict[str, Any]:
    """The calendar of the final schedule in the viewer's zone: week (with every layer and
    the overrides as their own tracks) or month (the final schedule, a row per week)."""
    from oncall.scheduling import Shift

    tz = timezone.get_current_timezone()
    now = timezone.now()
    today = now.astimezone(tz).date()
    view = request.GET.get("view", "week")
    view = view if view in ("week", "month") else "week"
    try:
        anchor = date.fromisoformat(request.GET.get("date", ""))
    except ValueError:
        anchor = today
    anchor = min(max(anchor, date(2000, 1, 1)), date(2100, 1, 1))
    first_day, end_day, previous, following, title = _range_for(view, anchor)
    start, end = _local_midnight(first_day, tz), _local_midnight(end_day, tz)
    # A little either side, so a shift clipped by the page still offers its whole length.
    pad = timedelta(days=7)
    final = selectors.schedule_final(schedule=schedule, start=start - pad, end=end + pad)
    layers = list(schedule.layers.all())
    layer_names = {layer.pk: layer.name for layer in layers}
    layer_shifts = (
        selectors.schedule_layer_shifts(schedule=schedule, start=start, end=end)
        if view == "week"
        else {}
    )
    overrides = [
        Shift(o.starts_at, o.ends_at, o.user_id, None, o.pk)
        for o in schedule.overrides.all()
        if o.ends_at > start and o.starts_at < end
    ]
    ids = {s.user_id for s in final if s.user_id}
    ids |= {s.user_id for shifts in layer_shifts.values() for s in shifts}
    ids |= {o.user_id for o in overrides}
    people = selectors.users_by_id(ids)

    weeks = []
    day = first_day
    while day < end_day:
        days = [day + timedelta(days=i) for i in range(7)]
        row_start, row_end = _local_midnight(days[0], tz), _local_midnight(days[-1], tz)
        row_end = _local_midnight(days[-1] + timedelta(days=1), tz)
        total = (row_end - row_start).total_seconds()
        lefts = [
            round((_local_midnight(d, tz) - row_start).total_seconds() / total * 100, 3)
            for d in days
        ]
        tracks = [
            Track(
                "Final schedule",
                "final",
                _segments(final, row_start, row_end, people, tz, names=layer_names),
            )
        ]
        if view == "week":
            for layer in layers:
                tracks.append(
                    Track(
                        layer.name,
                        "layer",
                        _segments(layer_shifts.get(layer.pk, []), row_start, row_end, people, tz),
                    )
                )
            if overrides:
                segments = _segments(overrides, row_start, row_end, people, tz)
                tracks.append(Track("Overrides", "overrides", segments))
        weeks.append(WeekRow(days=days, day_lefts=lefts, tracks=tracks))
        day += timedelta(days=7)

    can_edit = schedule_can_edit(request.user, schedule)
    listed = []
    for shift in final:
        if shift.end <= start or shift.start >= end:
            continue
        person = people.get(shift.user_id) if shift.user_id else None
        take_from = max(shift.start, now)
        listed.append(
            {
                "shift": shift,
                "person": person,
                "source": layer_names.get(shift.layer_id)
                or ("Override" if shift.override_id else ""),
                "is_now": shift.start <= now < shift.end,
                "colour": (shift.user_id or 0) % PERSON_COLOURS,
                "mine": shift.user_id == request.user.pk,
                "can_take": can_edit and shift.user_id != request.user.pk and shift.end > now,
                "take_from": take_from,
            }
        )
    return {
        "view": view,
        "anchor": anchor,
        "title": title,
        "weeks": weeks,
        "month": anchor.month if view == "month" else None,
        "today": today,
        "previous": previous,
        "following": following,
        "listed": listed,
        "zone": timezone.get_current_timezone_name(),
    }


def _schedule_for_detail(slug: str) -> Schedule:
    schedule = selectors.schedules_for_pages().filter(slug=slug).first()
    if schedule is None:
        raise Http404("No such schedule.")
    return schedule


def _schedule_context(request: HttpRequest, schedule: Schedule, **extra) -> dict[str, Any]:
    now = timezone.now()
    upcoming = selectors.schedule_final(
        schedule=schedule, start=now, end=now + timedelta(days=GAP_WARNING_DAYS)
    )
    on_call = selectors.schedules_on_call(schedules=[schedule], at=now).get(schedule.pk)
    can_edit = schedule_can_edit(request.user, schedule)
    layers = list(schedule.layers.all())
    people = selectors.users_by_id(p.user_id for layer in layers for p in layer.participants.all())
    for layer in layers:
        layer.people = [people.get(p.user_id) for p in layer.participants.all()]
        layer.weekday_names = [
            name for value, name in _WEEKDAY_NAMES if value in (layer.restrict_weekdays or "")
        ]
    current = next((s for s in upcoming if s.start <= now < s.end), None)
    context = {
        "schedule": schedule,
        "on_call": on_call,
        "on_call_until": current.end if current and current.user_id else None,
        "gaps": gaps(upcoming),
        "gap_days": GAP_WARNING_DAYS,
        "layers": layers,
        "overrides": ScheduleOverride.objects.filter(schedule=schedule, ends_at__gt=now)
        .select_related("user", "replaces", "created_by")
        .order_by("starts_at"),
        "can_edit": can_edit,
        "calendar": _calendar(request, schedule),
        "feed_url": request.session.pop(f"oncall_schedule_feed_{schedule.pk}", None),
        "policies": EscalationPolicy.objects.filter(steps__targets__schedule=schedule).distinct(),
    }
    context.update(extra)
    return context


_WEEKDAY_NAMES = [
    ("0", "Mon"),
    ("1", "Tue"),
    ("2", "Wed"),
    ("3", "Thu"),
    ("4", "Fri"),
    ("5", "Sat"),
    ("6", "Sun"),
]


@login_required
@require_GET
def schedule_detail(request: HttpRequest, slug: str) -> HttpResponse:
    schedule = _schedule_for_detail(slug)
    template = "oncall/schedule_detail.html"
    if request.htmx and request.htmx.target == "calendar":
        # Prev / next / today swap only the calendar.
        template += "#calendar"
        context = {
            "schedule": schedule,
            "calendar": _calendar(request, schedule),
            "can_edit": schedule_can_edit(request.user, schedule),
        }
    else:
        context = _schedule_context(request, schedule)
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@require_http_methods(["GET", "POST"])
def schedule_create(request: HttpRequest) -> HttpResponse:
    if not teams_user_can_edit(request.user).exists():
        raise PermissionDenied("Join a team to create its schedules.")
    form = ScheduleForm(
        request.POST or None, user=request.user, initial={"time_zone": request.user.time_zone}
    )
    if request.method == "POST" and form.is_valid():
        schedule = form.save()
        messages.success(request, f"Created {schedule}. Add a layer to say who takes turns.")
        return redirect("oncall:layer_create", slug=schedule.slug)
    return render(
        request, "oncall/schedule_form.html", {"form": form, "schedule": None}, status=_status(form)
    )


@login_required
@require_http_methods(["GET", "POST"])
def schedule_edit(request: HttpRequest, slug: str) -> HttpResponse:
    schedule = schedule_get_for_edit(request.user, slug)
    form = ScheduleForm(request.POST or None, instance=schedule, user=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Saved {schedule}.")
        return redirect("oncall:schedule_detail", slug=schedule.slug)
    return render(
        request,
        "oncall/schedule_form.html",
        {"form": form, "schedule": schedule},
        status=_status(form),
    )


@login_required
@require_http_methods(["GET", "POST"])
def layer_create(request: HttpRequest, slug: str) -> HttpResponse:
    schedule = schedule_get_for_edit(request.user, slug)
    local_today = timezone.now().astimezone(timezone.get_current_timezone()).date()
    form = LayerForm(
        request.POST or None,
        schedule=schedule,
        initial={
            "name": "Primary" if not schedule.layers.exists() else "",
            "start_date": local_today - timedelta(days=local_today.weekday()),
            "handoff_time": time(9, 0),
            "level": (max((layer.level for layer in schedule.layers.all()), default=0) + 1),
        },
    )
    if request.method == "POST" and form.is_valid():
        layer = form.save()
        messages.success(request, f"Added the layer {layer.name}.")
        return redirect("oncall:schedule_detail", slug=schedule.slug)
    return render(
        request,
        "oncall/layer_form.html",
        {"form": form, "schedule": schedule, "layer": None},
        status=_status(form),
    )


@login_required
@require_http_methods(["GET", "POST"])
def layer_edit(request: HttpRequest, slug: str, layer_id: int) -> HttpResponse:
    schedule = schedule_get_for_edit(request.user, slug)
    layer = get_object_or_404(ScheduleLayer, pk=layer_id, schedule=schedule)
    form = LayerForm(request.POST or None, instance=layer, schedule=schedule)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Saved the layer {layer.name}.")
        return redirect("oncall:schedule_detail", slug=schedule.slug)
    return render(
        request,
        "oncall/layer_form.html",
        {"form": form, "schedule": schedule, "layer": layer},
        status=_status(form),
    )


@login_required
@require_POST
def layer_delete(request: HttpRequest, slug: str, layer_id: int) -> HttpResponse:
    schedule = schedule_get_for_edit(request.user, slug)
    layer = get_object_or_404(ScheduleLayer, pk=layer_id, schedule=schedule)
    layer.delete()
    messages.success(request, f"Removed the layer {layer.name}.")
    return redirect("oncall:schedule_detail", slug=schedule.slug)


@login_required
@require_http_methods(["GET", "POST"])
def override_create(request: HttpRequest, slug: str) -> HttpResponse:
    schedule = schedule_get_for_edit(request.user, slug)
    tz = timezone.get_current_timezone()
    start = (timezone.now().astimezone(tz) + timedelta(hours=1)).replace(
        minute=0, second=0, microsecond=0
    )
    form = OverrideForm(
        request.POST or None,
        schedule=schedule,
        created_by=request.user,
        initial={
            "user": request.user.pk,
            "starts_at": start,
            "ends_at": start + timedelta(hours=8),
        },
    )
    if request.method == "POST" and form.is_valid():
        override = form.save()
        messages.success(request, f"{override.user.display_name} now covers that time.")
        return redirect("oncall:schedule_detail", slug=schedule.slug)
    return render(
        request,
        "oncall/override_form.html",
        {"form": form, "schedule": schedule, "zone": timezone.get_current_timezone_name()},
        status=_status(form),
    )


@login_required
@require_POST
def override_delete(request: HttpRequest, slug: str, override_id: int) -> HttpResponse:
    schedule = schedule_get_for_edit(request.user, slug)
    override = get_object_or_404(ScheduleOverride, pk=override_id, schedule=schedule)
    override.delete()
    messages.success(request, "Override removed.")
    return redirect("oncall:schedule_detail", slug=schedule.slug)


def _calendar_query(request: HttpRequest) -> str:
    view = request.POST.get("view", "week")
    anchor = request.POST.get("date", "")
    query = {"view": view if view in ("week", "month") else "week"}
    with contextlib.suppress(ValueError):
        query["date"] = date.fromisoformat(anchor).isoformat()
    return urlencode(query)


@login_required
@require_POST
def shift_take(request: HttpRequest, slug: str) -> HttpResponse:
    """'Take this shift': the viewer covers that shift (from now, if it has begun)."""
    schedule = schedule_get_for_edit(request.user, slug)
    form = TakeShiftForm(request.POST)
    error = ""
    if form.is_valid():
        data = form.cleaned_data
        now = timezone.now()
        start = max(data["start"], now)
        if data["end"] <= start:
            error = "That shift is already over."
        else:
            with transaction.atomic():
                ScheduleOverride.objects.create(
                    schedule=schedule,
                    user=request.user,
                    replaces=data["replaces"],
                    starts_at=start,
                    ends_at=data["end"],
                    created_by=request.user,
                )
    else:
        error = " ".join(form.non_field_errors()) or "That shift could not be read."
    url = reverse("oncall:schedule_detail", kwargs={"slug": schedule.slug})
    url += "?" + _calendar_query(request)
    if request.htmx:
        request.GET = request.POST  # the calendar is drawn for the same view and date
        schedule = _schedule_for_detail(slug)
        context = {
            "schedule": schedule,
            "calendar": _calendar(request, schedule),
            "can_edit": True,
            "take_error": error,
            "took": not error,
        }
        return render(
            request, "oncall/schedule_detail.html#calendar", context, status=422 if error else 200
        )
    if error:
        messages.error(request, error)
    else:
        messages.success(request, "You have that shift now.")
    return redirect(url)


@login_required
@require_POST
def schedule_feed_publish(request: HttpRequest, slug: str) -> HttpResponse:
    schedule = schedule_get_for_edit(request.user, slug)
    token = secrets.token_urlsafe(32)
    Schedule.objects.filter(pk=schedule.pk).update(ical_token_hash=_token_hash(token))
    request.session[f"oncall_schedule_feed_{schedule.pk}"] = request.build_absolute_uri(
        reverse("oncall:schedule_feed", kwargs={"token": token})
    )
    return redirect(reverse("oncall:schedule_detail", kwargs={"slug": slug}) + "#calendar-feed")


@login_required
@require_POST
def schedule_feed_revoke(request: HttpRequest, slug: str) -> HttpResponse:
    schedule = schedule_get_for_edit(request.user, slug)
    Schedule.objects.filter(pk=schedule.pk).update(ical_token_hash="")
    messages.success(request, "The calendar feed is switched off; its old link no longer works.")
    return redirect(reverse("oncall:schedule_detail", kwargs={"slug": slug}) + "#calendar-feed")


# --- iCal feeds (no session: the secret URL is the credential) ---------------------------


def _feed_response(body: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    response["Cache-Control"] = "private, max-age=300"
    response["X-Robots-Tag"] = "noindex"
    return response


@require_GET
def schedule_feed(request: HttpRequest, token: str) -> HttpResponse:
    # Looked up by the token's hash: nothing to compare, so nothing to time.
    schedule = (
        selectors.schedules_for_pages().filter(ical_token_hash=_token_hash(token)).first()
        if token
        else None
    )
    if schedule is None:
        raise Http404("No such calendar.")
    return _feed_response(ical.schedule_calendar(schedule=schedule), f"{schedule.slug}.ics")


@require_GET
def user_feed(request: HttpRequest, token: str) -> HttpResponse:
    feed = (
        UserCalendarFeed.objects.filter(token_hash=_token_hash(token), user__is_active=True)
        .select_related("user")
        .first()
    )
    if feed is None:
        raise Http404("No such calendar.")
    return _feed_response(ical.user_calendar(user=feed.user), "on-call.ics")


# --- Escalation policies ------------------------------------------------------------------


def _policies():
    return EscalationPolicy.objects.select_related("team").prefetch_related(
        Prefetch(
            "steps",
            queryset=EscalationStep.objects.order_by("position").prefetch_related(
                Prefetch(
                    "targets",
                    queryset=StepTarget.objects.select_related("user", "schedule", "team"),
                )
            ),
        ),
        "services",
    )


@login_required
@require_GET
def policy_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "oncall/policy_list.html",
        {"policies": _policies(), "can_create": teams_user_can_edit(request.user).exists()},
    )


@login_required
@require_GET
def policy_detail(request: HttpRequest, pk: int) -> HttpResponse:
    policy = get_object_or_404(_policies(), pk=pk)
    return render(
        request,
        "oncall/policy_detail.html",
        {"policy": policy, "can_edit": policy_can_edit(request.user, policy)},
    )


def _policy_form_page(request: HttpRequest, policy: EscalationPolicy | None) -> HttpResponse:
    bound = request.method == "POST"
    form = PolicyForm(request.POST if bound else None, instance=policy, user=request.user)
    steps = StepFormSet(
        request.POST if bound else None,
        initial=step_initial(policy) if policy else [],
        prefix="steps",
    )
    if bound and form.is_valid() and steps.is_valid():
        team = form.cleaned_data.get("team")
        if not team_can_edit_oncall(request.user, team):
            raise PermissionDenied("Only members of the owning team (or staff) change this.")
        saved = policy_save(form=form, steps=steps)
        messages.success(request, f"Saved {saved}.")
        return redirect("oncall:policy_detail", pk=saved.pk)
    status = 422 if bound else 200
    return render(
        request,
        "oncall/policy_form.html",
        {"form": form, "steps": steps, "policy": policy},
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def policy_create(request: HttpRequest) -> HttpResponse:
    if not teams_user_can_edit(request.user).exists():
        raise PermissionDenied("Join a team to create its escalation policies.")
    return _policy_form_page(request, None)


@login_required
@require_http_methods(["GET", "POST"])
def policy_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _policy_form_page(request, policy_get_for_edit(request.user, pk))


# --- Acknowledge links --------------------------------------------------------------------


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
