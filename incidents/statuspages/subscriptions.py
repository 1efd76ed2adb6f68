"""Status page subscribers: email (double opt-in) and webhooks, and what they are sent.

Flow of a notification
----------------------
1. statuscore sends `status_update_published` / `component_status_changed` after its
   transaction commits (and only for real changes); the receivers below record one
   `StatusEvent` per page, frozen with exactly what was published to that page, and enqueue
   `status_event_fan_out` on commit. The request that published does nothing per subscriber.
2. The fan-out task writes one `StatusDelivery` per matching subscriber (bulk, unique per
   event and subscriber, so running it twice writes nothing twice) and enqueues batches of
   ids (`STATUS_DELIVERY_BATCH`) to `status_deliveries_send`.
3. Each batch task claims every row with a conditional UPDATE (pending → sending); only the
   caller that claimed it sends it. Temporary failures go back to pending with backoff;
   permanent ones are recorded. `status_tick` (beat) re-fans events and re-enqueues due or
   stuck rows that a lost message or a killed worker left behind.

Who hears about what: subscribers with no components chosen hear about everything on the
page; the others hear about events touching one of their components, and about events that
name no component at all (an update about an incident that set no component's status).

Tokens
------
Confirmation links carry a token derived with HMAC from SECRET_KEY, the subscriber and the
time the email was sent; only its sha256 is stored, it is single-use and expires after
STATUS_CONFIRMATION_MAX_AGE_HOURS. Unsubscribe links carry an HMAC of the subscriber id and
its `link_generation`; nothing secret about them is stored at all. Both are compared in
constant time.

Rate limits are a small fixed-window counter in the cache (below): no shared limiter
existed in the tree when this was written.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import logging
import smtplib
import zoneinfo
from collections.abc import Iterable
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.dispatch import receiver
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from incidents.models import (
    Component,
    ComponentStatus,
    ComponentStatusInterval,
    StatusDelivery,
    StatusEvent,
    StatusPage,
    StatusPageIncident,
    StatusSubscriber,
)
from incidents.statuspages.signals import component_status_changed, status_update_published
from oncall.notifiers import DeliveryError, PageMessage, WebhookNotifier, webhook_signature

log = logging.getLogger(__name__)

SENDING_TIMEOUT = timedelta(minutes=5)
REENQUEUE_AFTER = timedelta(seconds=60)
_CONFIRM_SALT = "firebreak.statuspages.confirm"
_UNSUBSCRIBE_SALT = "firebreak.statuspages.unsubscribe"


# --- Rate limits ---------------------------------------------------------------------------


class RateLimited(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"Too many requests; try again in {retry_after} seconds.")
        self.retry_after = retry_after


def _over_limit(key: str, *, limit: int, window: int) -> bool:
    """Fixed-window counter: True once `key` was hit more than `limit` times this window.

    Fails open (logs) when the cache is down: refusing every subscriber because Redis
    restarted would be worse than letting a few extra requests through.
    """
    bucket = int(timezone.now().timestamp()) // window
    full_key = f"ratelimit:{key}:{bucket}"
    try:
        cache.add(full_key, 0, window + 5)
        count = cache.incr(full_key)
    except ValueError:  # expired between add and incr
        return False
    except Exception as exc:
        log.warning("Rate limit cache unavailable: %s", exc)
        return False
    return count > limit


def subscribe_rate_check(*, client_ip: str, email: str) -> None:
    """Raise RateLimited when this client or this address asked too often."""
    window = settings.STATUS_SUBSCRIBE_WINDOW_SECONDS
    address = hashlib.sha256(email.encode()).hexdigest()[:32]
    if _over_limit(
        f"status-subscribe-ip:{client_ip}", limit=settings.STATUS_SUBSCRIBE_PER_IP, window=window
    ) or _over_limit(
        f"status-subscribe-address:{address}",
        limit=settings.STATUS_SUBSCRIBE_PER_ADDRESS,
        window=window,
    ):
        raise RateLimited(retry_after=window)


# --- Tokens --------------------------------------------------------------------------------


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def confirmation_token(subscriber: StatusSubscriber) -> str:
    """The token mailed in the latest confirmation link (derivable only with SECRET_KEY)."""
    sent = subscriber.confirmation_sent_at.isoformat() if subscriber.confirmation_sent_at else ""
    return salted_hmac(_CONFIRM_SALT, f"{subscriber.pk}:{sent}", algorithm="sha256").hexdigest()


def unsubscribe_token(subscriber: StatusSubscriber) -> str:
    return salted_hmac(
        _UNSUBSCRIBE_SALT, f"{subscriber.pk}:{subscriber.link_generation}", algorithm="sha256"
    ).hexdigest()


def confirm_url(subscriber: StatusSubscriber) -> str:
    return settings.SITE_URL + reverse(
        "status:subscription_confirm",
        kwargs={"pk": subscriber.pk, "token": confirmation_token(subscriber)},
    )


def unsubscribe_url(subscriber: StatusSubscriber) -> str:
    return settings.SITE_URL + reverse(
        "status:unsubscribe",
        kwargs={"pk": subscriber.pk, "token": unsubscribe_token(subscriber)},
    )


def subscriber_for_unsubscribe(*, pk: int, token: str) -> StatusSubscriber | None:
    subscriber = StatusSubscriber.objects.select_related("page").filter(pk=pk).first()
    # Compare even when there is no such subscriber, so timing says nothing about ids.
    expected = unsubscribe_token(subscriber) if subscriber else _sha256(f"none:{pk}")
    if not constant_time_compare(expected, token) or subscriber is None:
        return None
    return subscriber


def subscriber_for_confirmation(
    *, pk: int, token: str, now: datetime | None = None
) -> StatusSubscriber | None:
    """The subscriber this live confirmation link belongs to, or None."""
    now = now or timezone.now()
    subscriber = StatusSubscriber.objects.select_related("page").filter(pk=pk).first()
    stored = subscriber.confirmation_token_hash if subscriber else ""
    matches = hmac.compare_digest(stored or _sha256(f"none:{pk}"), _sha256(token))
    if not (matches and subscriber and stored and subscriber.confirmation_sent_at):
        return None
    max_age = timedelta(hours=settings.STATUS_CONFIRMATION_MAX_AGE_HOURS)
    if subscriber.confirmation_sent_at < now - max_age:
        return None
    return subscriber


# --- Email subscriptions -------------------------------------------------------------------


def normalise_email(email: str) -> str:
    email = (email or "").strip()
    validate_email(email)
    local, _, domain = email.rpartition("@")
    # The domain is case-insensitive; most mailboxes are too, and treating them as one
    # keeps "Ann@" from subscribing a second time next to "ann@".
    return f"{local}@{domain}".lower()


def email_subscription_request(
    *,
    page: StatusPage,
    email: str,
    components: Iterable[Component] = (),
    user=None,
    now: datetime | None = None,
) -> None:
    """Someone asked to receive `page` by email. Returns nothing on purpose.

    Whatever the address's state (new, waiting for confirmation, confirmed, unsubscribed)
    the caller shows the same answer. A confirmation email goes out at most once per
    address and page every STATUS_CONFIRMATION_RESEND_MINUTES; within that window the
    request only records the components asked for, applied if the mailed link is followed.
    A confirmed subscriber gets the same kind of email ("confirm this change"), so nobody
    can change what someone else receives without their click.
    """
    now = now or timezone.now()
    email = normalise_email(email)
    component_ids = sorted({c.pk for c in components if c.page_id == page.pk})
    resend_after = timedelta(minutes=settings.STATUS_CONFIRMATION_RESEND_MINUTES)
    for _attempt in range(2):  # a concurrent first request may win the insert
        try:
            with transaction.atomic():
                subscriber = (
                    StatusSubscriber.objects.select_for_update()
                    .filter(page=page, kind=StatusSubscriber.Kind.EMAIL, email=email)
                    .first()
                )
                if subscriber is None:
                    subscriber = StatusSubscriber.objects.create(
                        page=page, kind=StatusSubscriber.Kind.EMAIL, email=email, user=user
                    )
                subscriber.pending_component_ids = component_ids
                if user is not None:
                    subscriber.user = user
                fields = ["pending_component_ids", "user"]
                last = subscriber.confirmation_sent_at
                if last is None or last <= now - resend_after:
                    subscriber.confirmation_sent_at = now
                    subscriber.confirmation_token_hash = _sha256(confirmation_token(subscriber))
                    fields += ["confirmation_sent_at", "confirmation_token_hash"]
                    transaction.on_commit(
                        lambda pk=subscriber.pk, at=now: _enqueue_confirmation(pk, at)
                    )
                subscriber.save(update_fields=fields)
            return
        except IntegrityError:
            continue


def _enqueue_confirmation(subscriber_id: int, sent_at: datetime) -> None:
    from incidents.statuspages.tasks import enqueue, status_confirmation_send

    try:
        enqueue(status_confirmation_send, subscriber_id, sent_at.isoformat())
    except Exception:  # the broker is down: the answer stays the same; asking again works
        log.exception("Could not enqueue the confirmation for subscriber %s", subscriber_id)


def confirmation_email_send(*, subscriber_id: int, sent_at: str) -> bool:
    """Send the confirmation email recorded at `sent_at`, if it is still the latest."""
    subscriber = StatusSubscriber.objects.select_related("page", "user").get(pk=subscriber_id)
    if (
        subscriber.confirmation_sent_at is None
        or subscriber.confirmation_sent_at.isoformat() != sent_at
    ):
        return False
    pending = Component.objects.filter(
        pk__in=subscriber.pending_component_ids, page=subscriber.page
    )
    context = {
        "page": subscriber.page,
        "subscriber": subscriber,
        "components": list(pending),
        "already_confirmed": subscriber.is_active,
        "confirm_url": confirm_url(subscriber),
        "page_url": _page_url(subscriber.page),
        "max_age_hours": settings.STATUS_CONFIRMATION_MAX_AGE_HOURS,
    }
    message = _email_message(
        name="status_confirm",
        subscriber=subscriber,
        context=context,
        headers={"X-Firebreak-Kind": "status-confirm"},
        with_unsubscribe=False,
    )
    message.send()
    return True


def subscriber_confirm(*, subscriber: StatusSubscriber, now: datetime | None = None) -> None:
    """Apply the confirmed request: start (or resume) sending, with the components asked for.

    The link works once: the stored hash is cleared.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = StatusSubscriber.objects.select_for_update().get(pk=subscriber.pk)
        locked.components.set(
            Component.objects.filter(pk__in=locked.pending_component_ids, page_id=locked.page_id)
        )
        locked.confirmed_at = (
            now if locked.confirmed_at is None or locked.unsubscribed_at else (locked.confirmed_at)
        )
        locked.unsubscribed_at = None
        locked.confirmation_token_hash = ""
        locked.save(update_fields=["confirmed_at", "unsubscribed_at", "confirmation_token_hash"])


def subscriber_unsubscribe(*, subscriber: StatusSubscriber, now: datetime | None = None) -> None:
    """Stop sending at once; deliveries not yet sent are cancelled. Idempotent."""
    now = now or timezone.now()
    with transaction.atomic():
        StatusSubscriber.objects.filter(pk=subscriber.pk, unsubscribed_at__isnull=True).update(
            unsubscribed_at=now, confirmation_token_hash=""
        )
        StatusDelivery.objects.filter(
            subscriber=subscriber, state=StatusDelivery.State.PENDING
        ).update(state=StatusDelivery.State.CANCELLED, error="unsubscribed")


# --- Webhook subscribers -------------------------------------------------------------------


def webhook_subscriber_add(
    *, page: StatusPage, url: str, secret: str = "", label: str = "", components=(), actor
) -> StatusSubscriber:
    """A webhook added by a page manager is live at once (no opt-in: they own the URL)."""
    with transaction.atomic():
        subscriber = StatusSubscriber.objects.create(
            page=page,
            kind=StatusSubscriber.Kind.WEBHOOK,
            url=url.strip(),
            secret=secret,
            label=label.strip(),
            created_by=actor,
            confirmed_at=timezone.now(),
        )
        subscriber.components.set([c for c in components if c.page_id == page.pk])
    return subscriber


def webhook_subscriber_remove(*, subscriber: StatusSubscriber) -> None:
    with transaction.atomic():
        StatusDelivery.objects.filter(
            subscriber=subscriber, state=StatusDelivery.State.PENDING
        ).update(state=StatusDelivery.State.CANCELLED, error="webhook removed")
        StatusSubscriber.objects.filter(pk=subscriber.pk).delete()


# --- Events --------------------------------------------------------------------------------

# Set while maintenance moves components: its own started/completed notice says it better
# than one "component status changed" email per component.
_maintenance_moving_components: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "maintenance_moving_components", default=False
)


@contextmanager
def maintenance_moves_components():
    """Wrap the *outermost* transaction that changes components for maintenance, so the
    status-change signals sent when it commits do not each notify subscribers."""
    token = _maintenance_moving_components.set(True)
    try:
        yield
    finally:
        _maintenance_moving_components.reset(token)


def status_event_record(
    *,
    page: StatusPage,
    kind: str,
    key: str,
    data: dict,
    component_ids: Iterable[int] = (),
    maintenance=None,
) -> StatusEvent | None:
    """Record something subscribers of `page` should hear about, once per `key`.

    Returns the new event, or None when one with this key exists (a repeated signal).
    The fan-out is enqueued when the surrounding transaction commits.
    """
    try:
        with transaction.atomic():
            event = StatusEvent.objects.create(
                page=page,
                kind=kind,
                key=key[:120],
                data=data,
                component_ids=sorted(set(component_ids)),
                maintenance=maintenance,
            )
    except IntegrityError:
        return None
    transaction.on_commit(lambda: _enqueue_fan_out(event.pk))
    return event


def _enqueue_fan_out(event_id: int) -> None:
    from incidents.statuspages.tasks import enqueue, status_event_fan_out

    try:
        enqueue(status_event_fan_out, event_id)
    except Exception:  # the broker is down: status_tick fans the event out later
        log.exception("Could not enqueue the fan-out of status event %s", event_id)


def page_path(page: StatusPage) -> str:
    """The public page's path (its view belongs to the status page module)."""
    try:
        return reverse("status:page", kwargs={"slug": page.slug})
    except NoReverseMatch:
        return f"/status/{page.slug}/"


def _page_url(page: StatusPage) -> str:
    return settings.SITE_URL + page_path(page)


def webhook_subscribers_for_page(*, page: StatusPage) -> list[StatusSubscriber]:
    return list(
        StatusSubscriber.objects.filter(page=page, kind=StatusSubscriber.Kind.WEBHOOK)
        .select_related("created_by")
        .prefetch_related("components")
        .order_by("created_at", "pk")
    )


def email_subscriber_count(*, page: StatusPage) -> int:
    return StatusSubscriber.objects.filter(
        page=page,
        kind=StatusSubscriber.Kind.EMAIL,
        confirmed_at__isnull=False,
        unsubscribed_at__isnull=True,
    ).count()


@receiver(status_update_published, dispatch_uid="status-subscribers-update")
def _on_status_update_published(sender, update, **kwargs) -> None:
    for page in update.pages.all():
        entry = StatusPageIncident.objects.filter(page=page, incident_id=update.incident_id).first()
        if entry is None:
            continue  # nothing about this incident was published to this page
        # Components of this page whose status was set for this incident: public already.
        component_ids = set(
            ComponentStatusInterval.objects.filter(
                component__page=page, incident_id=update.incident_id
            ).values_list("component_id", flat=True)
        )
        status_event_record(
            page=page,
            kind=StatusEvent.Kind.UPDATE,
            key=f"update:{update.pk}",
            component_ids=component_ids,
            data={
                # Only what was published to this page: its public title, never the
                # incident's own title, severity or services.
                "title": entry.public_title,
                "status": update.status,
                "status_display": update.get_status_display(),
                "message": update.message,
                "message_html": update.message_html,
                "at": update.published_at.isoformat(),
                "incident_ref": f"{page.slug}-{entry.pk}",
            },
        )


@receiver(component_status_changed, dispatch_uid="status-subscribers-component")
def _on_component_status_changed(sender, component, old_status, new_status, at, **kwargs):
    if old_status == new_status or _maintenance_moving_components.get():
        return
    labels = dict(ComponentStatus.choices)
    status_event_record(
        page=component.page,
        kind=StatusEvent.Kind.COMPONENT,
        key=f"component:{component.pk}:{at.isoformat()}",
        component_ids=[component.pk],
        data={
            "component": component.name,
            "component_id": component.pk,
            "old_status": old_status,
            "old_status_display": labels.get(old_status, old_status),
            "new_status": new_status,
            "new_status_display": labels.get(new_status, new_status),
            "at": at.isoformat(),
        },
    )


# --- Fan-out and delivery ------------------------------------------------------------------


def _matching_subscribers(event: StatusEvent):
    subscribers = StatusSubscriber.objects.filter(
        page_id=event.page_id, confirmed_at__isnull=False, unsubscribed_at__isnull=True
    )
    if event.component_ids:
        subscribers = subscribers.filter(
            Q(components__isnull=True) | Q(components__in=event.component_ids)
        )
    return subscribers.order_by().values_list("pk", flat=True).distinct()


def status_event_fan_out(*, event_id: int, now: datetime | None = None) -> list[list[int]]:
    """Write a delivery per matching subscriber; return pending ids in batches to send.

    Idempotent: existing rows are left alone (unique per event and subscriber), and only
    rows still pending and not handed to a worker recently are returned.
    """
    now = now or timezone.now()
    event = StatusEvent.objects.filter(pk=event_id).first()
    if event is None:
        return []
    chunk = 1000
    ids = list(_matching_subscribers(event))
    for start in range(0, len(ids), chunk):
        StatusDelivery.objects.bulk_create(
            [
                StatusDelivery(event=event, subscriber_id=pk, due_at=now)
                for pk in ids[start : start + chunk]
            ],
            ignore_conflicts=True,
        )
    StatusEvent.objects.filter(pk=event.pk, fanned_out_at__isnull=True).update(fanned_out_at=now)
    return deliveries_hand_over(StatusDelivery.objects.filter(event=event), now=now)


def deliveries_hand_over(queryset, *, now: datetime) -> list[list[int]]:
    """Pending, due rows not handed to a worker in the last minute, marked handed over,
    in batches of STATUS_DELIVERY_BATCH."""
    due = (
        queryset.filter(state=StatusDelivery.State.PENDING, due_at__lte=now)
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=now - REENQUEUE_AFTER))
        .order_by("pk")
    )
    ids = list(due.values_list("pk", flat=True)[: settings.STATUS_DELIVERY_SWEEP_LIMIT])
    StatusDelivery.objects.filter(pk__in=ids).update(enqueued_at=now)
    size = settings.STATUS_DELIVERY_BATCH
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def deliveries_release_stuck(*, now: datetime) -> int:
    """A worker killed mid-send leaves rows in `sending`: make them due again."""
    return StatusDelivery.objects.filter(
        state=StatusDelivery.State.SENDING, claimed_at__lt=now - SENDING_TIMEOUT
    ).update(state=StatusDelivery.State.PENDING, enqueued_at=None)


def events_not_fanned_out(*, now: datetime) -> list[int]:
    return list(
        StatusEvent.objects.filter(
            fanned_out_at__isnull=True, created_at__lt=now - REENQUEUE_AFTER
        ).values_list("pk", flat=True)[:100]
    )


def delivery_claim(*, delivery_id: int, now: datetime | None = None) -> StatusDelivery | None:
    """Claim one due delivery for sending (pending → sending), or None if not ours."""
    now = now or timezone.now()
    claimed = StatusDelivery.objects.filter(
        pk=delivery_id, state=StatusDelivery.State.PENDING, due_at__lte=now
    ).update(state=StatusDelivery.State.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    if claimed != 1:
        return None
    return StatusDelivery.objects.select_related(
        "event__page", "event__maintenance", "subscriber__user"
    ).get(pk=delivery_id)


def delivery_record_sent(*, delivery: StatusDelivery, receipt: str) -> None:
    StatusDelivery.objects.filter(pk=delivery.pk, state=StatusDelivery.State.SENDING).update(
        state=StatusDelivery.State.SENT, sent_at=timezone.now(), receipt=receipt[:200], error=""
    )


def delivery_record_failure(*, delivery: StatusDelivery, error: str, permanent: bool) -> None:
    """Temporary failures come back with backoff (10 s, 20 s, 40 s, … at most 10 min)."""
    now = timezone.now()
    retry = not permanent and delivery.attempts < settings.STATUS_DELIVERY_MAX_ATTEMPTS
    if retry:
        backoff = timedelta(
            seconds=min(
                600, settings.STATUS_DELIVERY_BACKOFF_SECONDS * 2 ** (delivery.attempts - 1)
            )
        )
        StatusDelivery.objects.filter(pk=delivery.pk, state=StatusDelivery.State.SENDING).update(
            state=StatusDelivery.State.PENDING,
            due_at=now + backoff,
            enqueued_at=None,
            error=error[:1000],
        )
    else:
        StatusDelivery.objects.filter(pk=delivery.pk, state=StatusDelivery.State.SENDING).update(
            state=StatusDelivery.State.FAILED, error=error[:1000]
        )
    StatusSubscriber.objects.filter(pk=delivery.subscriber_id).update(
        last_error=error[:1000], last_error_at=now
    )


def delivery_cancel(*, delivery: StatusDelivery, reason: str) -> None:
    StatusDelivery.objects.filter(pk=delivery.pk, state=StatusDelivery.State.SENDING).update(
        state=StatusDelivery.State.CANCELLED, error=reason[:1000]
    )


def _subscriber_may_receive(subscriber: StatusSubscriber, page: StatusPage) -> bool:
    if not subscriber.is_active:
        return False
    if page.is_public or subscriber.kind == StatusSubscriber.Kind.WEBHOOK:
        return True
    # Internal pages: the person must still be able to read the page, today.
    from incidents.statuspages.permissions import status_page_can_view

    return subscriber.user is not None and status_page_can_view(subscriber.user, page)


@dataclass
class Outcome:
    sent: int = 0
    failed: int = 0
    skipped: int = 0


def deliveries_send(*, delivery_ids: list[int]) -> Outcome:
    """Claim and send each delivery; emails in one batch share one SMTP connection."""
    outcome = Outcome()
    connection = None
    try:
        for delivery_id in delivery_ids:
            delivery = delivery_claim(delivery_id=delivery_id)
            if delivery is None:
                outcome.skipped += 1
                continue
            subscriber, page = delivery.subscriber, delivery.event.page
            if not _subscriber_may_receive(subscriber, page):
                delivery_cancel(delivery=delivery, reason="subscriber can no longer receive it")
                outcome.skipped += 1
                continue
            try:
                if subscriber.kind == StatusSubscriber.Kind.EMAIL:
                    if connection is None:
                        connection = _open_mail_connection()
                    receipt = _send_notice_email(delivery, connection=connection)
                else:
                    receipt = _send_webhook(delivery)
            except DeliveryFailed as exc:
                delivery_record_failure(delivery=delivery, error=str(exc), permanent=exc.permanent)
                outcome.failed += 1
                if exc.drop_connection and connection is not None:
                    _close_quietly(connection)
                    connection = None
                continue
            except Exception as exc:  # a bug must not leave the claim hanging
                log.exception("Status delivery %s crashed", delivery.pk)
                delivery_record_failure(
                    delivery=delivery, error=f"{type(exc).__name__}: {exc}", permanent=False
                )
                outcome.failed += 1
                continue
            delivery_record_sent(delivery=delivery, receipt=receipt)
            outcome.sent += 1
    finally:
        if connection is not None:
            _close_quietly(connection)
    return outcome


def _open_mail_connection():
    connection = get_connection()
    try:
        connection.open()
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(
            f"Could not reach the mail server ({type(exc).__name__}).", permanent=False
        ) from None
    return connection


def _close_quietly(connection) -> None:
    with suppress(Exception):  # a broken connection is being thrown away anyway
        connection.close()


class DeliveryFailed(Exception):
    def __init__(self, message: str, *, permanent: bool, drop_connection: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.drop_connection = drop_connection


# --- Rendering -----------------------------------------------------------------------------


def _subscriber_zone(subscriber: StatusSubscriber, page: StatusPage) -> zoneinfo.ZoneInfo:
    name = getattr(subscriber.user, "time_zone", "") or page.time_zone or "UTC"
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _email_message(
    *,
    name: str,
    subscriber: StatusSubscriber,
    context: dict,
    headers: dict[str, str],
    with_unsubscribe: bool = True,
    connection=None,
) -> EmailMultiAlternatives:
    context = {"site_url": settings.SITE_URL, "page": subscriber.page, **context}
    if with_unsubscribe:
        link = unsubscribe_url(subscriber)
        context["unsubscribe_url"] = link
        # RFC 8058: mail clients show an "Unsubscribe" button that POSTs to the link.
        headers = {
            **headers,
            "List-Unsubscribe": f"<{link}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
    headers = {
        "Auto-Submitted": "auto-generated",
        "X-Auto-Response-Suppress": "All",
        "List-Id": f"{subscriber.page.title} <{subscriber.page.slug}.status.firebreak>",
        **headers,
    }
    with timezone.override(_subscriber_zone(subscriber, subscriber.page)):
        subject = " ".join(render_to_string(f"emails/{name}-subject.txt", context).split())
        text = render_to_string(f"emails/{name}-body.txt", context)
        html = render_to_string(f"emails/{name}-body.html", context)
    message = EmailMultiAlternatives(
        subject=subject, body=text, to=[subscriber.email], headers=headers, connection=connection
    )
    message.attach_alternative(html, "text/html")
    return message


def _event_context(event: StatusEvent) -> dict:
    data = dict(event.data)
    for key in ("at", "starts_at", "ends_at"):
        if data.get(key):
            data[key] = datetime.fromisoformat(data[key])
    return {"event": event, "data": data, "kind": event.kind, "page_url": _page_url(event.page)}


def _send_notice_email(delivery: StatusDelivery, *, connection) -> str:
    subscriber = delivery.subscriber
    message = _email_message(
        name="status_notice",
        subscriber=subscriber,
        context=_event_context(delivery.event),
        headers={
            "Message-ID": f"<firebreak.{delivery.delivery_id}@{_mail_domain()}>",
            "X-Firebreak-Delivery": delivery.delivery_id,
            "X-Firebreak-Kind": f"status-{delivery.event.kind}",
        },
        connection=connection,
    )
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _text in exc.recipients.values()]
        permanent = bool(codes) and all(code >= 500 for code in codes)
        raise DeliveryFailed(
            f"The mail server refused {subscriber.email} ({', '.join(map(str, codes))}).",
            permanent=permanent,
        ) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryFailed(
            f"The mail server answered {exc.smtp_code}.",
            permanent=exc.smtp_code >= 500,
            drop_connection=True,
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(
            f"Could not reach the mail server ({type(exc).__name__}).",
            permanent=False,
            drop_connection=True,
        ) from None
    return "accepted by the mail server"


def _mail_domain() -> str:
    address = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip(" >")
    return address or "firebreak.local"


def webhook_body(event: StatusEvent, *, delivery_id: str, sent_at: datetime) -> dict:
    """The JSON a webhook subscriber receives (documented in README.md)."""
    page = event.page
    body = {
        "delivery_id": delivery_id,
        "type": event.kind,
        "page": {"slug": page.slug, "title": page.title, "url": _page_url(page)},
        "sent_at": sent_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    data = event.data
    if event.kind == StatusEvent.Kind.UPDATE:
        body["update"] = {
            key: data.get(key) for key in ("title", "status", "message", "at", "incident_ref")
        }
    elif event.kind == StatusEvent.Kind.COMPONENT:
        body["component"] = {
            "id": data.get("component_id"),
            "name": data.get("component"),
            "old_status": data.get("old_status"),
            "new_status": data.get("new_status"),
            "at": data.get("at"),
        }
    else:
        body["maintenance"] = {
            key: data.get(key)
            for key in ("id", "title", "message", "starts_at", "ends_at", "state", "components")
        }
    return body


class StatusWebhookSender(WebhookNotifier):
    """oncall's webhook sender: no redirects, bounded reads, errors a person can act on."""

    channel = "The status webhook"

    def post(self, *, url: str, body: bytes, headers: dict, message: PageMessage, secret: str):
        return self._post(
            who=self.channel,
            url=url.strip(),
            content=body,
            headers=headers,
            message=message,
            secrets=(secret,) if secret else (),
        )


def _send_webhook(delivery: StatusDelivery) -> str:
    subscriber = delivery.subscriber
    now = timezone.now()
    body = json.dumps(
        webhook_body(delivery.event, delivery_id=delivery.delivery_id, sent_at=now),
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "X-Firebreak-Timestamp": str(timestamp),
        "X-Firebreak-Delivery": delivery.delivery_id,
        "X-Firebreak-Event": delivery.event.kind,
    }
    if subscriber.secret:
        headers["X-Firebreak-Signature"] = webhook_signature(
            secret=subscriber.secret, timestamp=timestamp, body=body
        )
    # Only its delivery id is used, in log lines.
    log_message = PageMessage(
        delivery_id=delivery.delivery_id,
        title=delivery.event.get_kind_display(),
        summary="",
        link_url="",
        ack_url="",
        recipient_name=str(subscriber),
    )
    try:
        return StatusWebhookSender().post(
            url=subscriber.url,
            body=body,
            headers=headers,
            message=log_message,
            secret=subscriber.secret,
        )
    except DeliveryError as exc:
        raise DeliveryFailed(exc.message, permanent=exc.permanent) from None
