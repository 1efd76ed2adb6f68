"""How a page reaches a person: one Notifier per contact method kind, behind a small registry.

A caller builds a `PageMessage`, picks `notifier_for(contact.kind)` and calls
`send(contact=..., message=...)`. It returns a short receipt ("HTTP 200 (ok)") or raises
`DeliveryError`; the caller records either on the Notification row. Notifiers never touch the
database and never retry: retrying, throttling and bundling belong to the caller.

`DeliveryError.permanent` says whether trying again can help. `DeliveryError.site_problem`
says whose problem it is: True means Firebreak's own configuration (SMS gateway settings, the
mail server) is at fault, so an administrator must act and the contact method itself should
not be disabled; False means the contact method (address, URL, secret) is at fault, and the
message is written for its owner.

Signed webhooks, for people writing receivers
---------------------------------------------
Every webhook POST carries three headers:

    X-Firebreak-Timestamp   unix seconds when it was sent
    X-Firebreak-Signature   "v1=" + hex(HMAC-SHA256(secret, f"{timestamp}.".encode() + raw_body))
    X-Firebreak-Delivery    the delivery id, also in the JSON body as "delivery_id"

To accept one: compute the signature over the raw request bytes (before any JSON parsing),
compare in constant time, and reject timestamps more than 5 minutes from your clock; that
stops an old captured request from being replayed later. Within those 5 minutes, and when
Firebreak retries after a timeout, the same delivery can arrive twice: drop duplicates by
"delivery_id" from the (signed) body. `verify_webhook_signature` below does all but the
de-duplication and can be copied into a receiver as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import smtplib
import time
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import ClassVar, Protocol
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.template.loader import render_to_string
from django.utils import timezone

logger = logging.getLogger(__name__)


class _HideUrlPaths(logging.Filter):
    """httpx logs every request's full URL at INFO; a Slack webhook's path is its token."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                f"{arg.scheme}://{arg.netloc.decode('ascii', 'replace')}/…"
                if isinstance(arg, httpx.URL)
                else arg
                for arg in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_HideUrlPaths())

MESSAGE_KINDS = ("page", "test", "handoff", "bundle")
SMS_MAX_CHARS = 300
SIGNATURE_TOLERANCE_SECONDS = 300
USER_AGENT = "Firebreak-Notifier/1"
# Delivery ids travel in headers and in the email Message-ID: keep them to safe characters.
_DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
_PHONE = re.compile(r"\+?[0-9]{6,15}")
_EXCERPT_BYTES = 4096


@dataclass(frozen=True)
class PageMessage:
    """What one notification says. The same message renders for every channel.

    `delivery_id` must stay the same when the same notification is retried: receivers use it
    (X-Firebreak-Delivery, the webhook body, the email Message-ID) to drop duplicates.
    """

    delivery_id: str
    title: str
    summary: str
    link_url: str
    ack_url: str
    recipient_name: str
    kind: str = "page"
    items: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in MESSAGE_KINDS:
            raise ValueError(f"kind must be one of {', '.join(MESSAGE_KINDS)}, not {self.kind!r}")
        if not _DELIVERY_ID.fullmatch(self.delivery_id):
            raise ValueError(
                "delivery_id must be 1-128 letters, digits, '_', '.', ':' or '-', "
                f"not {self.delivery_id!r}"
            )
        object.__setattr__(self, "items", tuple(self.items))


class ContactMethodLike(Protocol):
    kind: str
    address: str
    secret: str
    label: str


class DeliveryError(Exception):
    """A notification was not delivered. `str(error)` is written for a person to read."""

    def __init__(self, message: str, *, permanent: bool, site_problem: bool = False):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.site_problem = site_problem

    def __repr__(self) -> str:
        return (
            f"DeliveryError({self.message!r}, permanent={self.permanent}, "
            f"site_problem={self.site_problem})"
        )


class Notifier(ABC):
    kind: ClassVar[str]

    @abstractmethod
    def send(self, *, contact: ContactMethodLike, message: PageMessage) -> str:
        """Deliver `message` to `contact` once. Returns a short receipt ("HTTP 200 (ok)").

        Raises DeliveryError. Safe to call again with the same message after a temporary
        error: the delivery id lets the receiver drop the duplicate.
        """

    def _check_kind(self, contact: ContactMethodLike) -> None:
        if contact.kind != self.kind:
            raise ValueError(f"{type(self).__name__} cannot send to a {contact.kind!r} contact")


# --- Text helpers -----------------------------------------------------------------------


def _one_line(text: str) -> str:
    """Control characters and runs of whitespace become single spaces."""
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Cs") else c for c in text)
    return " ".join(text.split())


def _multi_line(text: str) -> str:
    """Keep line breaks, drop other control characters and lone surrogates."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cleaned = [
        "".join(c for c in line if unicodedata.category(c) not in ("Cc", "Cs") or c == "\t")
        for line in lines
    ]
    return "\n".join(cleaned).strip()


def _sanitized(message: PageMessage) -> PageMessage:
    return replace(
        message,
        title=_one_line(message.title),
        summary=_multi_line(message.summary),
        recipient_name=_one_line(message.recipient_name),
        link_url=_one_line(message.link_url),
        ack_url=_one_line(message.ack_url),
        items=tuple(_one_line(item) for item in message.items),
    )


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _name(channel: str, contact: ContactMethodLike) -> str:
    label = _one_line(getattr(contact, "label", "") or "")
    return f"{channel} “{_shorten(label, 60)}”" if label else channel


# --- Email --------------------------------------------------------------------------------


class EmailNotifier(Notifier):
    kind = "email"

    def build(self, *, contact: ContactMethodLike, message: PageMessage) -> EmailMultiAlternatives:
        """The email as it will be sent (subject and bodies from templates/notifications/)."""
        address = contact.address.strip()
        try:
            validate_email(address)
        except ValidationError:
            raise DeliveryError(
                f"“{_shorten(_one_line(address), 100)}” is not a valid email address: "
                "correct it in your contact methods.",
                permanent=True,
            ) from None
        message = _sanitized(message)
        context = {"message": message, "site_url": settings.SITE_URL}
        subject = _one_line(render_to_string("notifications/page-subject.txt", context))
        text = render_to_string("notifications/page-body.txt", context).strip() + "\n"
        html = render_to_string("notifications/page-body.html", context)
        headers = {
            # Stable across retries, so mail clients and archives fold duplicates together.
            "Message-ID": f"<firebreak.{_message_id_part(message.delivery_id)}@{_mail_domain()}>",
            "X-Firebreak-Delivery": message.delivery_id,
            "X-Firebreak-Kind": message.kind,
            # Out-of-office replies to a page help nobody (RFC 3834, and Exchange's variant).
            "Auto-Submitted": "auto-generated",
            "X-Auto-Response-Suppress": "All",
        }
        if message.kind == "page":
            headers.update({"Importance": "high", "X-Priority": "1"})
        email = EmailMultiAlternatives(subject=subject, body=text, to=[address], headers=headers)
        email.attach_alternative(html, "text/html")
        return email

    def send(self, *, contact: ContactMethodLike, message: PageMessage) -> str:
        self._check_kind(contact)
        email = self.build(contact=contact, message=message)
        address = email.to[0]
        try:
            sent = email.send()
        except smtplib.SMTPRecipientsRefused as exc:
            replies = [_smtp_reply(code, text) for code, text in exc.recipients.values()]
            reply = "; ".join(replies) or "no reason given"
            if exc.recipients and all(code >= 500 for code, _ in exc.recipients.values()):
                raise _failed(
                    message,
                    f"The mail server refused {address} ({reply}): check the address.",
                    permanent=True,
                ) from None
            raise _failed(
                message,
                f"The mail server cannot take mail for {address} right now ({reply}).",
                permanent=False,
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise _failed(
                message,
                "Firebreak could not log in to its mail server "
                f"({_smtp_reply(exc.smtp_code, exc.smtp_error)}): "
                "ask a Firebreak administrator to check the email settings.",
                permanent=True,
                site_problem=True,
            ) from None
        except smtplib.SMTPDataError as exc:
            reply = _smtp_reply(exc.smtp_code, exc.smtp_error)
            permanent = exc.smtp_code >= 500
            raise _failed(
                message,
                f"The mail server {'rejected' if permanent else 'could not take'} "
                f"the message to {address} ({reply}).",
                permanent=permanent,
            ) from None
        except smtplib.SMTPResponseException as exc:
            # Sender refused, HELO refused, a refusing greeting: about the server, not you.
            reply = _smtp_reply(exc.smtp_code, exc.smtp_error)
            permanent = exc.smtp_code >= 500
            advice = ": ask a Firebreak administrator to check the email settings"
            raise _failed(
                message,
                f"Firebreak's mail server answered {reply}{advice if permanent else ''}.",
                permanent=permanent,
                site_problem=True,
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise _failed(
                message,
                f"Firebreak's mail server does not support what the settings ask for ({exc}): "
                "ask a Firebreak administrator to check the email settings.",
                permanent=True,
                site_problem=True,
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            # Refused or dropped connections, timeouts (TimeoutError is an OSError), TLS errors.
            raise _failed(
                message,
                "Could not reach Firebreak's mail server "
                f"({_shorten(_one_line(str(exc)) or type(exc).__name__, 120)}).",
                permanent=False,
                site_problem=True,
            ) from None
        except ValueError as exc:  # Django's address parsing, after validate_email let it by
            raise _failed(
                message,
                f"{address} cannot be used as an email address ({exc}): "
                "correct it in your contact methods.",
                permanent=True,
            ) from None
        if not sent:
            raise _failed(message, "The email backend did not send the message.", permanent=False)
        receipt = "Accepted by the mail server"
        logger.info("Delivered %s by email: %s", message.delivery_id, receipt)
        return receipt


def _smtp_reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return _shorten(_one_line(f"{code} {text}"), 160)


def _message_id_part(delivery_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", delivery_id)


def _mail_domain() -> str:
    host = urlsplit(settings.SITE_URL).hostname or ""
    return host if re.fullmatch(r"[A-Za-z0-9.-]+", host) else "firebreak.invalid"


# --- HTTP ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Refusal:
    """What to tell the reader when a receiver refuses with a 4xx."""

    hint: str
    site_problem: bool = False


class _HttpNotifier(Notifier):
    channel: ClassVar[str]  # how messages name the receiver: "The Slack webhook"

    def refusal(self, status: int) -> _Refusal:
        if status in (404, 410):
            return _Refusal("check the URL")
        return _Refusal("check the URL and what the receiver expects")

    def _post(
        self,
        *,
        who: str,
        url: str,
        content: bytes,
        headers: dict[str, str],
        message: PageMessage,
        secrets: tuple[str, ...] = (),
        site_problem: bool = False,
    ) -> str:
        """POST once, follow no redirect, and turn the outcome into a receipt or an error.

        `site_problem` marks errors that are not a 4xx refusal (unreachable, redirected, 5xx)
        as Firebreak's own; what a 4xx means is decided by `refusal()`.
        """
        parts = urlsplit(url)
        # The URL itself can be a credential (Slack's token is its path): never repeat it.
        secrets = (*secrets, *(part for part in (parts.path, parts.query) if len(part) >= 16))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _failed(
                message,
                f"The address of {_lower_first(who)} is not an http:// or https:// URL: check it.",
                permanent=True,
                site_problem=site_problem,
            )
        timeout = float(settings.NOTIFIER_TIMEOUT_SECONDS)
        headers = {"User-Agent": USER_AGENT, **headers}
        started = time.monotonic()
        try:
            with (
                httpx.Client(timeout=timeout, follow_redirects=False) as client,
                client.stream("POST", url, content=content, headers=headers) as response,
            ):
                status = response.status_code
                location = response.headers.get("location", "")
                raw = b""
                for chunk in response.iter_bytes():
                    raw += chunk
                    # A receiver trickling an endless body must not hold a worker.
                    if len(raw) >= _EXCERPT_BYTES or time.monotonic() - started > 2 * timeout:
                        break
        except httpx.TimeoutException:
            raise _failed(
                message,
                f"{who} did not answer within {timeout:g} second{'' if timeout == 1 else 's'}.",
                permanent=False,
                site_problem=site_problem,
            ) from None
        except httpx.UnsupportedProtocol:
            raise _failed(
                message,
                f"The address of {_lower_first(who)} is not an http:// or https:// URL: check it.",
                permanent=True,
                site_problem=site_problem,
            ) from None
        except httpx.ConnectError as exc:
            reason = _redact(_shorten(_one_line(str(exc)) or "no reason given", 120), secrets)
            raise _failed(
                message,
                f"{who} could not be reached ({reason}).",
                permanent=False,
                site_problem=site_problem,
            ) from None
        except httpx.TransportError as exc:
            reason = _redact(_shorten(_one_line(str(exc)) or type(exc).__name__, 120), secrets)
            raise _failed(
                message,
                f"The connection to {_lower_first(who)} failed ({reason}).",
                permanent=False,
                site_problem=site_problem,
            ) from None
        except httpx.InvalidURL:
            raise _failed(
                message,
                f"The address of {_lower_first(who)} is not a valid URL: check it.",
                permanent=True,
                site_problem=site_problem,
            ) from None

        excerpt = _redact(_one_line(raw.decode("utf-8", "replace")), secrets)
        detail = f" ({_shorten(excerpt, 120)})" if excerpt else ""
        if 200 <= status < 300:
            receipt = f"HTTP {status}" + (f" ({_shorten(excerpt, 60)})" if excerpt else "")
            logger.info(
                "Delivered %s by %s to %s: %s",
                message.delivery_id,
                self.kind,
                parts.hostname,
                receipt,
            )
            return receipt
        if 300 <= status < 400:
            target = urlsplit(location)
            where = f" to {target.scheme}://{target.hostname}/…" if target.hostname else ""
            raise _failed(
                message,
                f"The receiver redirected (HTTP {status}{where}): Firebreak does not follow "
                f"redirects, so give {_lower_first(who)} its final URL.",
                permanent=True,
                site_problem=site_problem,
            )
        if status >= 500 or status in (408, 425, 429):
            raise _failed(
                message,
                f"{who} answered {status}{detail}: a temporary problem at the receiver.",
                permanent=False,
                site_problem=site_problem,
            )
        refusal = self.refusal(status)
        raise _failed(
            message,
            f"{who} answered {status}{detail}: {refusal.hint}.",
            permanent=True,
            site_problem=refusal.site_problem,
        )


def _failed(
    message: PageMessage, text: str, *, permanent: bool, site_problem: bool = False
) -> DeliveryError:
    logger.warning(
        "Delivery %s failed (%s%s): %s",
        message.delivery_id,
        "permanent" if permanent else "temporary",
        ", site problem" if site_problem else "",
        text,
    )
    return DeliveryError(text, permanent=permanent, site_problem=site_problem)


def _json_bytes(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- SMS ----------------------------------------------------------------------------------


class SmsGatewayNotifier(_HttpNotifier):
    """POSTs SMS_GATEWAY_BODY_TEMPLATE, with {to} and {text} filled in, to SMS_GATEWAY_URL."""

    kind = "sms"
    channel = "The SMS gateway"

    def refusal(self, status: int) -> _Refusal:
        if status in (400, 422):
            return _Refusal("check the phone number")
        if status in (401, 402, 403, 404, 405, 407, 410):
            return _Refusal(
                "ask a Firebreak administrator to check the SMS gateway settings",
                site_problem=True,
            )
        return _Refusal("the gateway refused the message")

    def build(
        self, *, contact: ContactMethodLike, message: PageMessage
    ) -> tuple[str, bytes, dict[str, str]]:
        """(url, body, headers) of the request to the gateway."""
        url = settings.SMS_GATEWAY_URL
        if not url:
            raise _failed(
                message,
                "SMS gateway not configured: ask a Firebreak administrator to set SMS_GATEWAY_URL.",
                permanent=True,
                site_problem=True,
            )
        phone = _PHONE_SEPARATORS.sub("", contact.address)
        if not _PHONE.fullmatch(phone):
            raise _failed(
                message,
                f"“{_shorten(_one_line(contact.address), 40)}” is not a phone number in "
                "international format (like +44 7700 900123): correct it in your contact "
                "methods.",
                permanent=True,
            )
        template = settings.SMS_GATEWAY_BODY_TEMPLATE
        is_json = _parses_as_json(template)
        body = _fill_sms_template(template, to=phone, text=sms_text(message), json_escape=is_json)
        if is_json and not _parses_as_json(body):
            raise _failed(
                message,
                "SMS_GATEWAY_BODY_TEMPLATE does not give valid JSON once filled in: ask a "
                "Firebreak administrator to put {to} and {text} inside JSON strings.",
                permanent=True,
                site_problem=True,
            )
        headers = {
            "Content-Type": "application/json" if is_json else "text/plain; charset=utf-8",
            "X-Firebreak-Delivery": message.delivery_id,
        }
        auth = _sms_auth_header(message)
        if auth:
            headers[auth[0]] = auth[1]
        return url, body.encode("utf-8"), headers

    def send(self, *, contact: ContactMethodLike, message: PageMessage) -> str:
        self._check_kind(contact)
        url, body, headers = self.build(contact=contact, message=message)
        auth = _sms_auth_header(message)
        secrets = (auth[1], *auth[1].split()) if auth else ()
        return self._post(
            who=self.channel,
            url=url,
            content=body,
            headers=headers,
            message=message,
            secrets=secrets,
            site_problem=True,  # redirects, bad URL: all about the gateway, not the phone
        )


def sms_text(message: PageMessage) -> str:
    """One line of at most SMS_MAX_CHARS: the title, shortened if need be, and the ack link."""
    message = _sanitized(message)
    title = message.title

    def render(title: str) -> str:
        context = {"message": message, "title": title}
        return _one_line(render_to_string("notifications/page-sms.txt", context))

    text = render(title)
    overflow = len(text) - SMS_MAX_CHARS
    if overflow > 0:
        text = render(title[: max(len(title) - overflow - 1, 0)].rstrip() + "…")
    return text[:SMS_MAX_CHARS]


def _parses_as_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _fill_sms_template(template: str, *, to: str, text: str, json_escape: bool) -> str:
    values = {"to": to, "text": text}

    def value(match: re.Match[str]) -> str:
        filled = values[match.group(1)]
        return json.dumps(filled, ensure_ascii=False)[1:-1] if json_escape else filled

    # One pass, so a "{to}" inside the text is never substituted again.
    return re.sub(r"\{(to|text)\}", value, template)


def _sms_auth_header(message: PageMessage) -> tuple[str, str] | None:
    setting = settings.SMS_GATEWAY_AUTH_HEADER.strip()
    if not setting:
        return None
    name, colon, value = setting.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not _HEADER_NAME.fullmatch(name) or not value or "\n" in value:
        raise _failed(
            message,
            "SMS_GATEWAY_AUTH_HEADER must look like “Header-Name: value”: ask a Firebreak "
            "administrator to correct it.",
            permanent=True,
            site_problem=True,
        )
    return name, value


# --- Slack-compatible incoming webhooks ---------------------------------------------------


class SlackNotifier(_HttpNotifier):
    """Slack incoming webhooks; Mattermost and Rocket.Chat read the same "text"."""

    kind = "slack"
    channel = "The Slack webhook"

    def refusal(self, status: int) -> _Refusal:
        if status in (404, 410):
            return _Refusal("check the URL (the webhook or its channel may have been removed)")
        if status in (401, 403):
            return _Refusal("check the URL: the webhook refused Firebreak")
        return _Refusal("check the URL")

    def send(self, *, contact: ContactMethodLike, message: PageMessage) -> str:
        self._check_kind(contact)
        return self._post(
            who=_name(self.channel, contact),
            url=contact.address.strip(),
            content=_json_bytes(slack_payload(message)),
            headers={
                "Content-Type": "application/json",
                "X-Firebreak-Delivery": message.delivery_id,
            },
            message=message,
        )


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(message: PageMessage) -> dict:
    """{"text": ..., "blocks": [...]}: text for notifications and Slack-compatible chats."""
    message = _sanitized(message)
    esc = _slack_escape
    summary = esc(_shorten(message.summary, 2900))
    items = [esc(_shorten(item, 200)) for item in message.items[:50]]
    context = {
        "message": message,
        "recipient": esc(message.recipient_name),
        "title": esc(message.title),
        "summary": summary,
        "items": items,
    }
    text = render_to_string("notifications/page-slack.txt", context).strip()

    heading = ("Test: " if message.kind == "test" else "") + message.title
    blocks: list[dict] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _shorten(heading, 150) or "Firebreak"},
        }
    ]
    if summary:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": summary}})
    if items:
        listing = _shorten("\n".join(f"• {item}" for item in items), 3000)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": listing}})
    buttons = []
    if message.ack_url:
        buttons.append(
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Acknowledge"},
                "style": "primary",
                "url": message.ack_url,
                "action_id": "firebreak-acknowledge",
            }
        )
    if message.link_url:
        buttons.append(
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Open in Firebreak"},
                "url": message.link_url,
                "action_id": "firebreak-open",
            }
        )
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    about = {"page": "Paging", "test": "Test for", "handoff": "For", "bundle": "Held back for"}
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": _shorten(f"{about[message.kind]} {context['recipient']}", 300)
                    + " · Firebreak",
                }
            ],
        }
    )
    return {"text": text, "blocks": blocks}


# --- Signed generic webhooks --------------------------------------------------------------


class WebhookNotifier(_HttpNotifier):
    """POSTs a signed JSON document (see the module docstring for receivers)."""

    kind = "webhook"
    channel = "The webhook"

    def refusal(self, status: int) -> _Refusal:
        if status in (401, 403):
            return _Refusal("check that the receiver uses this contact method's signing secret")
        return super().refusal(status)

    def build(
        self, *, contact: ContactMethodLike, message: PageMessage, now: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """(body, headers), signed at `now` (unix seconds; the current time by default)."""
        if not contact.secret:
            raise _failed(
                message,
                f"{_name(self.channel, contact)} has no signing secret: create a new one in "
                "your contact methods.",
                permanent=True,
            )
        sent_at = timezone.now() if now is None else datetime.fromtimestamp(now, UTC)
        timestamp = int(sent_at.timestamp())
        body = _json_bytes(webhook_payload(message, sent_at=sent_at))
        headers = {
            "Content-Type": "application/json",
            "X-Firebreak-Timestamp": str(timestamp),
            "X-Firebreak-Signature": webhook_signature(
                secret=contact.secret, timestamp=timestamp, body=body
            ),
            "X-Firebreak-Delivery": message.delivery_id,
        }
        return body, headers

    def send(self, *, contact: ContactMethodLike, message: PageMessage) -> str:
        self._check_kind(contact)
        body, headers = self.build(contact=contact, message=message)
        return self._post(
            who=_name(self.channel, contact),
            url=contact.address.strip(),
            content=body,
            headers=headers,
            message=message,
            secrets=(contact.secret,),
        )


def webhook_payload(message: PageMessage, *, sent_at) -> dict:
    message = _sanitized(message)
    return {
        "type": message.kind,
        "delivery_id": message.delivery_id,
        "title": message.title,
        "summary": message.summary,
        "link_url": message.link_url,
        "ack_url": message.ack_url,
        "recipient": message.recipient_name,
        "sent_at": sent_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "items": list(message.items),
    }


def webhook_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """ "v1=" + hex HMAC-SHA256 over f"{timestamp}." + body, keyed with the contact's secret."""
    signed = f"{int(timestamp)}.".encode() + body
    return "v1=" + hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def verify_webhook_signature(
    *,
    secret: str,
    timestamp: int | str,
    body: bytes,
    signature: str,
    now: int,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """True when `signature` (the X-Firebreak-Signature header) signs this exact body and
    timestamp with `secret`, and the timestamp is within `tolerance` seconds of `now`.

    Pass the raw request body and the X-Firebreak-Timestamp header as received. The clock
    check rejects replays of old captured requests; drop repeats inside the window by the
    body's "delivery_id". The header may list several comma-separated signatures (for a
    secret being rotated); any one matching is enough.
    """
    try:
        sent = int(str(timestamp).strip())
    except ValueError:
        return False
    if not secret or abs(int(now) - sent) > tolerance:
        return False
    expected = webhook_signature(secret=secret, timestamp=sent, body=body).encode()
    matched = False
    for candidate in str(signature).split(","):
        # No early exit: every candidate is compared, each in constant time.
        matched |= hmac.compare_digest(expected, candidate.strip().encode("utf-8", "replace"))
    return matched


# --- Registry -----------------------------------------------------------------------------

NOTIFIERS: dict[str, Notifier] = {
    notifier.kind: notifier
    for notifier in (EmailNotifier(), SmsGatewayNotifier(), SlackNotifier(), WebhookNotifier())
}


def notifier_for(kind: str) -> Notifier:
    """The notifier for a ContactMethod.kind. KeyError for a kind nobody can send to."""
    try:
        return NOTIFIERS[kind]
    except KeyError:
        raise KeyError(f"No notifier for contact method kind {kind!r}") from None
