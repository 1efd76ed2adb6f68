"""Who is reminded of what, and the claim that makes every reminder at most once.

A reminder is claimed by inserting a `ReminderSent` row under a unique constraint
(kind, recipient, day, subject) before the email goes out. A second worker, a re-delivered
task or a beat restarted mid-run hits the constraint and sends nothing. If the SMTP server
refuses, the claim is released so the next sweep tries again; if the worker dies between
the claim and the send, that one reminder is skipped rather than risk sending it twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from collections import defaultdict

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from incidents.notifications import send_templated_email
from incidents.permissions import incidents_visible_to
from oncall.models import TeamMembership, User
from postmortems.models import (
    OPEN_ITEM_STATUSES,
    ActionItem,
    Postmortem,
    PostmortemStatus,
    ReminderKind,
    ReminderSent,
)
from postmortems.selectors import due_soon_days

log = logging.getLogger(__name__)


def digest_hour() -> int:
    """Local hour from which the day's digest may go out (nobody wants one at 00:15)."""
    return int(getattr(settings, "ACTION_ITEM_DIGEST_HOUR", 8))


def escalate_after_days() -> int:
    return int(getattr(settings, "ACTION_ITEM_ESCALATE_AFTER_DAYS", 7))


def _local(now: dt.datetime, user) -> dt.datetime:
    try:
        zone = zoneinfo.ZoneInfo(user.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    return now.astimezone(zone)


def _claim(*, kind: str, recipient, for_date: dt.date, subject_key: str = "", count: int = 0):
    try:
        with transaction.atomic():
            return ReminderSent.objects.create(
                kind=kind,
                recipient=recipient,
                for_date=for_date,
                subject_key=subject_key,
                claimed_at=timezone.now(),
                item_count=count,
            )
    except IntegrityError:
        return None


def _send(claims: list[ReminderSent], **email) -> bool:
    try:
        send_templated_email(**email)
    except OSError as exc:  # smtplib errors are OSErrors: release the claims, retry later
        log.warning("Reminder %s to %s failed: %s", email["name"], email["to"], exc)
        ReminderSent.objects.filter(pk__in=[c.pk for c in claims]).delete()
        return False
    ReminderSent.objects.filter(pk__in=[c.pk for c in claims]).update(sent_at=timezone.now())
    return True


def _url(name: str, **kwargs) -> str:
    return settings.SITE_URL + reverse(name, kwargs=kwargs)


def _split_by_access(user, rows: list) -> tuple[list, list]:
    """(rows on incidents `user` may read, the rest). Access can be lost after an item was
    assigned (an incident restricted later, a revoked grant): those are never named."""
    incident_ids = {row.incident_id for row in rows}
    readable = set(
        incidents_visible_to(user).filter(pk__in=incident_ids).values_list("pk", flat=True)
    )
    return (
        [row for row in rows if row.incident_id in readable],
        [row for row in rows if row.incident_id not in readable],
    )


# --- Owners' daily digest ----------------------------------------------------------------------


def digest_candidates(*, now: dt.datetime) -> list[int]:
    """Owners who may have items due soon or overdue (checked exactly per owner's day)."""
    horizon = now.date() + dt.timedelta(days=due_soon_days() + 1)
    return list(
        ActionItem.objects.filter(
            status__in=OPEN_ITEM_STATUSES,
            owner__isnull=False,
            owner__is_active=True,
            due_date__lte=horizon,
        )
        .exclude(owner__email="")
        .values_list("owner_id", flat=True)
        .distinct()
        .order_by("owner_id")
    )


def action_item_digest_send(*, owner_id: int, now: dt.datetime | None = None) -> bool:
    """Send `owner` today's digest, once. Returns whether an email went out."""
    now = now or timezone.now()
    owner = User.objects.filter(pk=owner_id, is_active=True).exclude(email="").first()
    if owner is None:
        return False
    local = _local(now, owner)
    if local.hour < digest_hour():
        return False
    today = local.date()
    items = list(
        ActionItem.objects.filter(
            owner=owner,
            status__in=OPEN_ITEM_STATUSES,
            due_date__lte=today + dt.timedelta(days=due_soon_days()),
        )
        .select_related("incident", "team")
        .order_by("due_date", "priority", "pk")
    )
    if not items:
        return False
    # Items on incidents the owner can no longer read are counted, never named, so the
    # owner knows to ask a responder to reassign them.
    items, hidden = _split_by_access(owner, items)
    claim = _claim(
        kind=ReminderKind.DIGEST, recipient=owner, for_date=today, count=len(items) + len(hidden)
    )
    if claim is None:
        return False
    overdue = [i for i in items if i.due_date < today]
    due_soon = [i for i in items if i.due_date >= today]
    for item in items:
        item.url = _url("postmortems:action_item_detail", item_id=item.pk)
        item.overdue_days = (today - item.due_date).days
    return _send(
        [claim],
        name="action-items-digest",
        to=[owner.email],
        zone=owner.time_zone,
        context={
            "recipient": owner,
            "today": today,
            "overdue": overdue,
            "due_soon": due_soon,
            "due_soon_days": due_soon_days(),
            "hidden_count": len(hidden),
            "dashboard_url": _url("postmortems:my_action_items"),
        },
    )


# --- Escalation to managers --------------------------------------------------------------------


def _managers_by_team(team_ids: set[int]) -> dict[int, list[User]]:
    result: dict[int, list[User]] = defaultdict(list)
    memberships = TeamMembership.objects.filter(
        team_id__in=team_ids, role=TeamMembership.Role.MANAGER, user__is_active=True
    ).select_related("user")
    for m in memberships:
        if m.user.email:
            result[m.team_id].append(m.user)
    return result


def action_item_escalations_send(*, now: dt.datetime | None = None) -> int:
    """Tell team managers about items overdue for `escalate_after_days` days, each item
    once per due date (moving the due date and missing it again escalates again). One
    email per manager per sweep, listing every newly escalated item."""
    now = now or timezone.now()
    cutoff = now.astimezone(dt.UTC).date() - dt.timedelta(days=escalate_after_days())
    items = list(
        ActionItem.objects.filter(status__in=OPEN_ITEM_STATUSES, due_date__lte=cutoff)
        .select_related("owner", "team", "incident")
        .order_by("due_date", "pk")
    )
    if not items:
        return 0
    # An item without a team escalates to the managers of its owner's teams.
    owner_teams: dict[int, set[int]] = defaultdict(set)
    for m in TeamMembership.objects.filter(user_id__in={i.owner_id for i in items if i.owner_id}):
        owner_teams[m.user_id].add(m.team_id)
    team_ids = {i.team_id for i in items if i.team_id} | {
        t for teams in owner_teams.values() for t in teams
    }
    managers = _managers_by_team(team_ids)
    per_manager: dict[int, tuple[User, list[ActionItem]]] = {}
    for item in items:
        teams = {item.team_id} if item.team_id else owner_teams.get(item.owner_id, set())
        for team_id in teams:
            for manager in managers.get(team_id, []):
                if manager.pk == item.owner_id:
                    continue
                per_manager.setdefault(manager.pk, (manager, []))[1].append(item)
    sent = 0
    for manager, manager_items in per_manager.values():
        # A manager is told only about incidents they may read; the rest stay unclaimed,
        # so they are escalated if access is granted later.
        manager_items, _ = _split_by_access(manager, manager_items)
        claims, claimed_items = [], []
        seen = set()
        for item in manager_items:
            if item.pk in seen:
                continue
            seen.add(item.pk)
            claim = _claim(
                kind=ReminderKind.ESCALATION,
                recipient=manager,
                for_date=item.due_date,
                subject_key=f"item:{item.pk}",
            )
            if claim is not None:
                claims.append(claim)
                item.url = _url("postmortems:action_item_detail", item_id=item.pk)
                item.overdue_days = (now.astimezone(dt.UTC).date() - item.due_date).days
                claimed_items.append(item)
        if not claims:
            continue
        if _send(
            claims,
            name="action-items-escalation",
            to=[manager.email],
            zone=manager.time_zone,
            context={
                "recipient": manager,
                "items": claimed_items,
                "days": escalate_after_days(),
                "dashboard_url": _url("postmortems:action_items") + "?overdue=1",
            },
        ):
            sent += 1
    return sent


# --- Late postmortems --------------------------------------------------------------------------


def late_postmortem_reminders_send(*, now: dt.datetime | None = None) -> int:
    """One email a day to each owner of late postmortems, listing them all."""
    now = now or timezone.now()
    late = list(
        Postmortem.objects.filter(
            ~Q(status=PostmortemStatus.PUBLISHED),
            due_date__lt=now.date() + dt.timedelta(days=1),
            owner__isnull=False,
            owner__is_active=True,
        )
        .exclude(owner__email="")
        .select_related("owner", "incident", "incident__severity")
        .order_by("due_date", "pk")
    )
    by_owner: dict[int, list[Postmortem]] = defaultdict(list)
    for postmortem in late:
        by_owner[postmortem.owner_id].append(postmortem)
    sent = 0
    for postmortems in by_owner.values():
        owner = postmortems[0].owner
        local = _local(now, owner)
        if local.hour < digest_hour():
            continue
        today = local.date()
        overdue, hidden = _split_by_access(owner, [p for p in postmortems if p.due_date < today])
        if not overdue and not hidden:
            continue
        claim = _claim(
            kind=ReminderKind.POSTMORTEM_LATE,
            recipient=owner,
            for_date=today,
            count=len(overdue) + len(hidden),
        )
        if claim is None:
            continue
        for p in overdue:
            p.url = _url("postmortems:detail", pk=p.pk)
            p.days_late = (today - p.due_date).days
        if _send(
            [claim],
            name="postmortems-late",
            to=[owner.email],
            zone=owner.time_zone,
            context={
                "recipient": owner,
                "postmortems": overdue,
                "hidden_count": len(hidden),
                "today": today,
            },
        ):
            sent += 1
    return sent
