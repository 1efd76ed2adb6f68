"""Handoff notices: "You are on call for Platform primary from 09:00 Europe/London".

`handoff_notices_send` runs every minute (the beat task oncall.tasks.handoff_notices_sweep).
It tells each person HANDOFF_NOTICE_MINUTES before a shift of theirs starts, exactly once per
(person, schedule, shift start):

* A `HandoffNotice` row is inserted before anything is sent. Its unique constraint means a
  second sweep, a second beat or a worker restarted mid-sweep finds the row and sends
  nothing. The price is at-most-once: a worker killed between the insert and the send loses
  that notice (the row stays "sending"), which is the right trade for a courtesy message.
* A shift counts as starting when the person was not already on call just before it (an
  override handing back to their own layer shift is not a new start); see
  `scheduling.next_shift_start_for`.
* A sweep that was down catches up on anything starting within the notice window that has
  not started yet; shifts that already began get no notice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from oncall import selectors
from oncall.models import ContactMethod, HandoffNotice, Schedule, User

log = logging.getLogger(__name__)

# How far past the window we look to find where the shift ends (for "until ...").
_END_LOOKAHEAD = timedelta(days=14)


def handoff_notices_due(*, now: datetime) -> list[tuple[Schedule, int, datetime, datetime]]:
    """(schedule, user_id, shift start, shift end) for every shift starting in
    (now, now + HANDOFF_NOTICE_MINUTES]."""
    window = timedelta(minutes=settings.HANDOFF_NOTICE_MINUTES)
    due = []
    for schedule in selectors.schedules_with_layers():
        shifts = selectors.schedule_final(schedule=schedule, start=now, end=now + _END_LOOKAHEAD)
        previous = None
        for index, shift in enumerate(shifts):
            starts = (
                shift.user_id is not None
                and now < shift.start <= now + window
                and not (
                    previous is not None
                    and previous.user_id == shift.user_id
                    and previous.end == shift.start
                )
            )
            if starts:
                end = shift.end
                for later in shifts[index + 1 :]:
                    if later.user_id != shift.user_id or later.start != end:
                        break
                    end = later.end
                due.append((schedule, shift.user_id, shift.start, end))
            previous = shift
    return due


def first_usable_contact_method(user: User) -> ContactMethod | None:
    """The method of the person's earliest notification rule that is not paused, else any
    method that is not paused: where they expect to hear from Firebreak first."""
    for rule in user.notification_rules.select_related("contact_method").order_by(
        "delay_minutes", "pk"
    ):
        if rule.contact_method.is_usable:
            return rule.contact_method
    return user.contact_methods.filter(disabled_at__isnull=True).order_by("pk").first()


def _local(instant: datetime, zone: str) -> datetime:
    import zoneinfo

    try:
        return instant.astimezone(zoneinfo.ZoneInfo(zone))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return instant.astimezone(zoneinfo.ZoneInfo("UTC"))


def handoff_message(*, notice: HandoffNotice, user: User, schedule: Schedule):
    from oncall.notifiers import PageMessage

    start = _local(notice.shift_start, user.time_zone)
    title = f"You are on call for {schedule.name} from {start:%H:%M} {user.time_zone}"
    summary = f"Your shift starts {start:%A} {start.day} {start:%B at %H:%M} ({user.time_zone})"
    if notice.shift_end:
        end = _local(notice.shift_end, user.time_zone)
        summary += f" and runs until {end:%A} {end.day} {end:%B at %H:%M}"
    summary += "."
    return PageMessage(
        delivery_id=f"firebreak-handoff-{notice.pk}",
        title=title,
        summary=summary,
        link_url=settings.SITE_URL + reverse("oncall:schedule_detail", args=[schedule.slug]),
        ack_url="",
        recipient_name=user.display_name,
        kind="handoff",
    )


def handoff_notices_send(*, now: datetime | None = None) -> int:
    """Send the handoff notices that are due. Returns how many were delivered.

    Idempotent and safe to run concurrently: each notice is claimed by inserting its
    unique row first, and only the inserter sends it.
    """
    from oncall.notifiers import DeliveryError, notifier_for

    now = now or timezone.now()
    sent = 0
    for schedule, user_id, start, end in handoff_notices_due(now=now):
        user = User.objects.filter(pk=user_id, is_active=True).first()
        if user is None:
            continue
        method = first_usable_contact_method(user)
        try:
            with transaction.atomic():
                notice = HandoffNotice.objects.create(
                    user=user,
                    schedule=schedule,
                    shift_start=start,
                    shift_end=end,
                    contact_method=method,
                    created_at=now,
                    state=(
                        HandoffNotice.State.SENDING if method else HandoffNotice.State.UNREACHABLE
                    ),
                )
        except IntegrityError:
            continue  # already claimed by an earlier sweep or another worker
        if method is None:
            log.warning("No usable contact method for %s's handoff notice", user)
            continue
        message = handoff_message(notice=notice, user=user, schedule=schedule)
        try:
            receipt = notifier_for(method.kind).send(contact=method, message=message)
        except DeliveryError as exc:
            HandoffNotice.objects.filter(pk=notice.pk).update(
                state=HandoffNotice.State.FAILED, error=str(exc)[:1000]
            )
            continue
        except Exception as exc:  # a notifier bug must not stop the other notices
            log.exception("Handoff notice %s crashed", notice.pk)
            HandoffNotice.objects.filter(pk=notice.pk).update(
                state=HandoffNotice.State.FAILED, error=f"{type(exc).__name__}: {exc}"[:1000]
            )
            continue
        HandoffNotice.objects.filter(pk=notice.pk).update(
            state=HandoffNotice.State.SENT, receipt=receipt[:200], sent_at=timezone.now()
        )
        sent += 1
    return sent
