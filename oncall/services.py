"""Paging: escalations, pages and notifications.

Reliability rules (see product.md, "a lost Redis message or a killed worker must never lose
or duplicate a page"):
- The database says what is due: `Escalation.next_step_at` and `Notification.due_at`.
  Celery messages only make things happen sooner; the beat tick finds anything they missed.
- A step runs under a row lock on its escalation, and `Page` and `Notification` rows are
  unique per step and rule, so two ticks or two beats never page anyone twice.
- A notification is claimed with a conditional UPDATE before it is sent and its outcome is
  recorded after; only the claimer sends it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from oncall import selectors
from oncall.models import (
    ContactMethod,
    Escalation,
    EscalationPolicy,
    Notification,
    NotificationRule,
    Page,
    StepTarget,
    User,
)
from oncall.signals import escalation_event, notification_event, send_on_commit

log = logging.getLogger(__name__)

ACK_SALT = "oncall.ack"
SENDING_TIMEOUT = timedelta(minutes=2)


class PagingRefused(Exception):
    """A paging action the current state does not allow; the message says why."""


def _now() -> datetime:
    return timezone.now()


# --- Starting --------------------------------------------------------------------------


def policy_snapshot(policy: EscalationPolicy) -> dict:
    """Freeze a policy: a running escalation never changes when the policy is edited."""
    steps = []
    for step in policy.steps.prefetch_related(
        "targets__user", "targets__schedule", "targets__team"
    ):
        targets = []
        for target in step.targets.all():
            thing = target.user or target.schedule or target.team
            name = thing.display_name if isinstance(thing, User) else str(thing)
            targets.append({"kind": target.kind, "id": thing.pk, "name": name})
        steps.append({"delay_minutes": step.delay_minutes, "targets": targets})
    return {
        "policy_id": policy.pk,
        "name": policy.name,
        "repeat_count": policy.repeat_count,
        "steps": steps,
    }


def direct_snapshot(*, kind: str, target_id: int, name: str) -> dict:
    """Page one person, or whoever is on call on a schedule, once (no repeats)."""
    return {
        "policy_id": None,
        "name": f"Paged directly: {name}",
        "repeat_count": 0,
        "steps": [{"delay_minutes": 5, "targets": [{"kind": kind, "id": target_id, "name": name}]}],
    }


def escalation_start(
    *,
    subject_key: str,
    title: str,
    summary: str = "",
    link_url: str = "",
    policy: EscalationPolicy | None = None,
    snapshot: dict | None = None,
    started_by: User | None = None,
) -> Escalation:
    """Start paging now. Safe inside the caller's transaction: the first step is run by a
    task enqueued when that transaction commits (and by the tick, if that message is lost)."""
    if snapshot is None:
        if policy is None:
            raise ValueError("escalation_start needs a policy or a snapshot")
        snapshot = policy_snapshot(policy)
    now = _now()
    escalation = Escalation.objects.create(
        subject_key=subject_key,
        title=title[:300],
        summary=summary,
        link_url=link_url,
        policy=policy,
        snapshot=snapshot,
        started_at=now,
        started_by=started_by,
        next_step_at=now,
    )
    from oncall.tasks import escalation_advance_task

    escalation_id = escalation.pk
    # robust: with the broker down, declaring still succeeds; the tick starts the paging.
    transaction.on_commit(lambda: escalation_advance_task.delay(escalation_id), robust=True)
    return escalation


# --- Advancing -------------------------------------------------------------------------


def _lock_due(escalation_id: int):
    queryset = Escalation.objects.filter(pk=escalation_id)
    if connection.features.has_select_for_update_skip_locked:
        # Another tick is already on it: let it be.
        return queryset.select_for_update(skip_locked=True).first()
    return queryset.select_for_update().first()


def _resolve_targets(targets: list[dict], at: datetime) -> list[tuple[int, str]]:
    """(user id, why) for every person a step's targets mean right now, each once."""
    chosen: dict[int, str] = {}
    schedules = None
    for target in targets:
        if target["kind"] == StepTarget.Kind.USER:
            chosen.setdefault(target["id"], f"named in the policy ({target['name']})")
        elif target["kind"] == StepTarget.Kind.SCHEDULE:
            if schedules is None:
                schedules = {
                    s.pk: s
                    for s in selectors.schedules_with_layers().filter(
                        pk__in=[t["id"] for t in targets if t["kind"] == "schedule"]
                    )
                }
            schedule = schedules.get(target["id"])
            user_id = selectors.schedule_on_call_at(schedule=schedule, at=at) if schedule else None
            if user_id is not None:
                chosen.setdefault(user_id, f"on call for {target['name']}")
        elif target["kind"] == StepTarget.Kind.TEAM:
            for user_id in selectors.team_member_ids(team_id=target["id"]):
                chosen.setdefault(user_id, f"member of {target['name']}")
    return list(chosen.items())


def escalation_advance(*, escalation_id: int, now: datetime | None = None) -> bool:
    """Run the escalation's due step, if any. Idempotent; returns whether a step ran.

    Takes the escalation's row lock (skipping it when another worker holds it) and
    re-checks that the step is still due under the lock.
    """
    now = now or _now()
    due_now: list[int] = []
    with transaction.atomic():
        escalation = _lock_due(escalation_id)
        if (
            escalation is None
            or escalation.state != Escalation.State.ACTIVE
            or escalation.next_step_at is None
            or escalation.next_step_at > now
        ):
            return False
        steps = escalation.snapshot.get("steps", [])
        if not steps or escalation.cycle > escalation.snapshot.get("repeat_count", 0):
            escalation.state = Escalation.State.EXHAUSTED
            escalation.next_step_at = None
            escalation.ended_at = now
            escalation.save()
            send_on_commit(escalation_event, kind="exhausted", subject_key=escalation.subject_key)
            return True
        step = steps[escalation.step_index]
        people = _resolve_targets(step["targets"], now)
        if not people:
            # A gap in a schedule: say so, or the commander believes someone is paged.
            send_on_commit(
                escalation_event,
                kind="nobody",
                subject_key=escalation.subject_key,
                step_index=escalation.step_index,
                cycle=escalation.cycle,
            )
        users = selectors.users_by_id(user_id for user_id, _ in people)
        for user_id, reason in people:
            user = users.get(user_id)
            if user is None:
                continue
            page, created = Page.objects.get_or_create(
                escalation=escalation,
                user=user,
                step_index=escalation.step_index,
                cycle=escalation.cycle,
                defaults={"reason": reason, "created_at": now},
            )
            if not created:
                continue
            rules = list(
                NotificationRule.objects.filter(
                    user=user, contact_method__disabled_at__isnull=True
                ).select_related("contact_method")
            )
            for rule in rules:
                notification = Notification.objects.create(
                    page=page,
                    contact_method=rule.contact_method,
                    delay_minutes=rule.delay_minutes,
                    due_at=now + timedelta(minutes=rule.delay_minutes),
                )
                if rule.delay_minutes == 0:
                    due_now.append(notification.pk)
            send_on_commit(
                escalation_event,
                kind="paged" if rules else "unreachable",
                subject_key=escalation.subject_key,
                user_id=user.pk,
                step_index=escalation.step_index,
                cycle=escalation.cycle,
                reason=reason,
            )
        # What comes next: the following step, the next repeat, or nothing.
        escalation.next_step_at = now + timedelta(minutes=step["delay_minutes"])
        escalation.step_index += 1
        if escalation.step_index >= len(steps):
            escalation.step_index = 0
            escalation.cycle += 1
        escalation.save()
    if due_now:
        notifications_enqueue(due_now)
    return True


def notifications_enqueue(notification_ids: list[int]) -> None:
    """Hand notifications to workers now (the tick hands over anything this misses)."""
    from oncall.tasks import notification_deliver

    handed_over = []
    for notification_id in notification_ids:
        try:
            notification_deliver.delay(notification_id)
        except Exception as exc:  # broker down: the tick hands it over when it is back
            log.warning("Could not enqueue notification %s: %s", notification_id, exc)
            break
        handed_over.append(notification_id)
    if handed_over:
        Notification.objects.filter(pk__in=handed_over).update(enqueued_at=_now())


# --- Acknowledging and stopping ----------------------------------------------------------


def escalation_acknowledge(*, escalation: Escalation, user: User, via: str) -> Escalation:
    """Stop further steps and notifications. Refused once it is no longer escalating."""
    with transaction.atomic():
        escalation = Escalation.objects.select_for_update().get(pk=escalation.pk)
        if escalation.state != Escalation.State.ACTIVE:
            who = escalation.acknowledged_by.display_name if escalation.acknowledged_by else None
            raise PagingRefused(
                f"Already acknowledged by {who}." if who else "This page is no longer active."
            )
        now = _now()
        escalation.state = Escalation.State.ACKNOWLEDGED
        escalation.acknowledged_at = now
        escalation.acknowledged_by = user
        escalation.next_step_at = None
        escalation.ended_at = now
        escalation.save()
        _cancel_pending(escalation)
        send_on_commit(
            escalation_event,
            kind="acknowledged",
            subject_key=escalation.subject_key,
            user_id=user.pk,
            via=via,
        )
    return escalation


def escalations_resolve(*, subject_key: str) -> int:
    """Stop every escalation about this subject (it was resolved)."""
    stopped = 0
    with transaction.atomic():
        for escalation in Escalation.objects.select_for_update().filter(
            subject_key=subject_key, state=Escalation.State.ACTIVE
        ):
            escalation.state = Escalation.State.RESOLVED
            escalation.next_step_at = None
            escalation.ended_at = _now()
            escalation.save()
            _cancel_pending(escalation)
            stopped += 1
    return stopped


def _cancel_pending(escalation: Escalation) -> None:
    # The state condition stays on the updated rows (see notification_claim): a claim that
    # won meanwhile keeps its "sending" and is recorded as sent.
    Notification.objects.filter(
        page__in=Page.objects.filter(escalation=escalation),
        state__in=[Notification.State.PENDING, Notification.State.THROTTLED],
    ).update(state=Notification.State.CANCELLED)


def ack_token(*, escalation_id: int, user_id: int) -> str:
    return signing.dumps({"e": escalation_id, "u": user_id}, salt=ACK_SALT, compress=True)


def ack_token_read(token: str) -> tuple[int, int]:
    """(escalation id, user id) from a signed link; raises signing.BadSignature (incl.
    SignatureExpired) for tampered or old links."""
    data = signing.loads(
        token, salt=ACK_SALT, max_age=timedelta(hours=settings.ACK_LINK_MAX_AGE_HOURS)
    )
    return int(data["e"]), int(data["u"])


# --- Delivering --------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    notification: Notification
    bundle: list[Notification]


def notification_claim(*, notification_id: int, now: datetime | None = None) -> Claimed | None:
    """Claim a due notification for sending, or None if it is not ours to send.

    Applies the per-contact-method throttle: over the limit, the notification is held back
    as THROTTLED and later sent in one bundle, never dropped.
    """
    now = now or _now()
    # Every condition that decides the claim is on the notification row itself: a join
    # would make Django write "WHERE id IN (subquery)", and PostgreSQL re-checks only the
    # outer row after waiting for a concurrent claim, so both claims would win.
    claimed = Notification.objects.filter(
        pk=notification_id,
        state=Notification.State.PENDING,
        due_at__lte=now,
        page__in=Page.objects.filter(escalation__state=Escalation.State.ACTIVE),
    ).update(state=Notification.State.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    if claimed != 1:
        Notification.objects.filter(
            pk=notification_id,
            state=Notification.State.PENDING,
            page__in=Page.objects.exclude(escalation__state=Escalation.State.ACTIVE),
        ).update(state=Notification.State.CANCELLED)
        return None
    notification = Notification.objects.select_related(
        "contact_method", "page__user", "page__escalation"
    ).get(pk=notification_id)
    window_start = now - timedelta(seconds=settings.NOTIFY_THROTTLE_WINDOW_SECONDS)
    recent = Notification.objects.filter(
        contact_method=notification.contact_method,
        state=Notification.State.SENT,
        sent_at__gte=window_start,
        bundled_into__isnull=True,
    ).count()
    if recent >= settings.NOTIFY_THROTTLE_COUNT:
        Notification.objects.filter(pk=notification.pk).update(state=Notification.State.THROTTLED)
        send_on_commit(
            notification_event,
            kind="throttled",
            subject_key=notification.page.escalation.subject_key,
            user_id=notification.page.user_id,
            method=notification.contact_method.get_kind_display(),
            detail="held back by the storm limit; it will go out in a bundle",
        )
        return None
    return Claimed(notification=notification, bundle=[])


def notification_record_sent(*, notification: Notification, receipt: str) -> None:
    now = _now()
    Notification.objects.filter(pk=notification.pk, state=Notification.State.SENDING).update(
        state=Notification.State.SENT, sent_at=now, receipt=receipt[:200], error=""
    )
    notification_event.send(
        sender=None,
        kind="sent",
        subject_key=notification.page.escalation.subject_key,
        user_id=notification.page.user_id,
        method=notification.contact_method.get_kind_display(),
        detail=receipt,
    )


def notification_record_failure(
    *, notification: Notification, error: str, permanent: bool, site_problem: bool = False
) -> None:
    """Temporary failures are retried with backoff; permanent ones are shown to the owner.

    A `site_problem` (Firebreak's own SMS gateway or mail settings are wrong) is not the
    person's fault: their contact method stays enabled and the error is logged for admins.
    """
    now = _now()
    method = notification.contact_method
    retry = not permanent and notification.attempts < settings.NOTIFY_MAX_ATTEMPTS
    if retry:
        backoff = timedelta(seconds=min(300, 5 * 2 ** (notification.attempts - 1)))
        Notification.objects.filter(pk=notification.pk, state=Notification.State.SENDING).update(
            state=Notification.State.PENDING, due_at=now + backoff, error=error[:1000]
        )
    else:
        Notification.objects.filter(pk=notification.pk, state=Notification.State.SENDING).update(
            state=Notification.State.FAILED, error=error[:1000]
        )
        if permanent and not site_problem:
            ContactMethod.objects.filter(pk=method.pk).update(
                disabled_at=now, disabled_reason=error[:1000]
            )
        if site_problem:
            log.error("Paging is misconfigured (%s): %s", method.get_kind_display(), error)
    notification_event.send(
        sender=None,
        kind="retrying" if retry else "failed",
        subject_key=notification.page.escalation.subject_key,
        user_id=notification.page.user_id,
        method=method.get_kind_display(),
        detail=error,
    )


def notifications_release_stuck(*, now: datetime | None = None) -> int:
    """A worker killed mid-send leaves a claim behind: make it due again.

    The receiver may already have it; deliveries carry an id so it can drop the repeat.
    """
    now = now or _now()
    return Notification.objects.filter(
        state=Notification.State.SENDING, claimed_at__lt=now - SENDING_TIMEOUT
    ).update(state=Notification.State.PENDING, enqueued_at=None)


def notifications_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Due notifications not handed to a worker recently; marks them handed over."""
    now = now or _now()
    ids = list(
        Notification.objects.filter(state=Notification.State.PENDING, due_at__lte=now)
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=now - timedelta(seconds=30)))
        .values_list("pk", flat=True)[:limit]
    )
    return ids


def throttled_bundles_due(*, now: datetime | None = None) -> list[list[int]]:
    """Groups of held-back notifications, one group per contact method with room again."""
    now = now or _now()
    window_start = now - timedelta(seconds=settings.NOTIFY_THROTTLE_WINDOW_SECONDS)
    groups: dict[int, list[int]] = {}
    for pk, method_id in Notification.objects.filter(
        state=Notification.State.THROTTLED
    ).values_list("pk", "contact_method_id"):
        groups.setdefault(method_id, []).append(pk)
    ready = []
    for method_id, ids in groups.items():
        recent = Notification.objects.filter(
            contact_method_id=method_id,
            state=Notification.State.SENT,
            sent_at__gte=window_start,
            bundled_into__isnull=True,
        ).count()
        if recent < settings.NOTIFY_THROTTLE_COUNT:
            ready.append(sorted(ids))
    return ready


def bundle_claim(*, notification_ids: list[int], now: datetime | None = None):
    """Claim held-back notifications to send as one message: (lead, others) or None."""
    now = now or _now()
    with transaction.atomic():
        rows = list(
            Notification.objects.select_for_update()
            .filter(pk__in=notification_ids, state=Notification.State.THROTTLED)
            .order_by("pk")
        )
        if not rows:
            return None
        lead, others = rows[0], rows[1:]
        Notification.objects.filter(pk=lead.pk).update(
            state=Notification.State.SENDING, claimed_at=now, attempts=F("attempts") + 1
        )
        Notification.objects.filter(pk__in=[o.pk for o in others]).update(
            state=Notification.State.SENT, sent_at=now, bundled_into=lead, receipt="bundled"
        )
    lead = Notification.objects.select_related(
        "contact_method", "page__user", "page__escalation"
    ).get(pk=lead.pk)
    others = list(
        Notification.objects.select_related("page__escalation").filter(
            pk__in=[o.pk for o in others]
        )
    )
    return lead, others
