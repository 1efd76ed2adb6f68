"""Notifiers against real peers: an aiosmtpd SMTP server and HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from oncall.models import ContactMethod
from oncall.notifiers import (
    NOTIFIERS,
    SMS_MAX_CHARS,
    DeliveryError,
    EmailNotifier,
    PageMessage,
    SmsGatewayNotifier,
    WebhookNotifier,
    notifier_for,
    verify_webhook_signature,
    webhook_signature,
)

ACK_URL = "https://firebreak.example.test/ack/Zm9vYmFy.c2lnbmVk/"
LINK_URL = "https://firebreak.example.test/incidents/42/"
GATEWAY_TOKEN = "Bearer gw-s3cret-token-0123"


def page(**fields) -> PageMessage:
    values = {
        "delivery_id": "notification-17",
        "title": "[SEV1] INC-42 Checkout failing",
        "summary": "Card payments time out for 30% of customers.",
        "link_url": LINK_URL,
        "ack_url": ACK_URL,
        "recipient_name": "Ivy",
    }
    values.update(fields)
    return PageMessage(**values)


def contact(kind: str, address: str, **fields) -> ContactMethod:
    return ContactMethod(kind=kind, address=address, **fields)


def send(kind: str, address: str, message: PageMessage | None = None, **fields) -> str:
    return notifier_for(kind).send(
        contact=contact(kind, address, **fields), message=message or page()
    )


@pytest.fixture
def smtp(settings, smtp_inbox):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_inbox.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    return smtp_inbox


@pytest.fixture
def gateway(settings, http_receiver):
    settings.SMS_GATEWAY_URL = http_receiver.url("/api/send")
    settings.SMS_GATEWAY_AUTH_HEADER = f"Authorization: {GATEWAY_TOKEN}"
    settings.SMS_GATEWAY_BODY_TEMPLATE = '{"to": "{to}", "text": "{text}"}'
    return http_receiver


def test_every_contact_method_kind_has_a_notifier():
    assert set(NOTIFIERS) == set(ContactMethod.Kind.values)
    for kind in ContactMethod.Kind.values:
        assert notifier_for(kind).kind == kind
    with pytest.raises(KeyError):
        notifier_for("pager")


def test_a_message_refuses_an_unknown_kind_or_an_unsafe_delivery_id():
    with pytest.raises(ValueError):
        page(kind="fax")
    with pytest.raises(ValueError):
        page(delivery_id="n-1\r\nBcc: everyone@example.test")


# --- Email --------------------------------------------------------------------------------


def test_an_emailed_page_arrives_with_its_subject_links_and_delivery_id(smtp):
    message = page(title='[SEV1] INC-42 "Checkout" & <payments> failing')

    receipt = send("email", "ivy@example.test", message)

    assert receipt == "Accepted by the mail server"
    [email] = smtp.wait_for(1)
    assert email["To"] == "ivy@example.test"
    assert email["From"] == "Firebreak <firebreak@localhost>"
    assert email["Subject"] == '[SEV1] INC-42 "Checkout" & <payments> failing'
    assert email["X-Firebreak-Delivery"] == "notification-17"
    assert email["Message-ID"].startswith("<firebreak.notification-17@")
    assert email["Auto-Submitted"] == "auto-generated"
    text = email.get_body(("plain",)).get_content()
    html = email.get_body(("html",)).get_content()
    assert '"Checkout" & <payments>' in text  # plain text is not HTML-escaped
    assert "Card payments time out" in text
    assert f"Acknowledge (one click): {ACK_URL}" in text
    assert LINK_URL in text
    assert "&quot;Checkout&quot; &amp; &lt;payments&gt;" in html  # HTML is
    assert f'href="{ACK_URL}"' in html
    assert f'href="{LINK_URL}"' in html


def test_a_retried_email_keeps_its_message_id_so_duplicates_fold_together(smtp):
    send("email", "ivy@example.test")
    send("email", "ivy@example.test")
    first, second = smtp.wait_for(2)
    assert first["Message-ID"] == second["Message-ID"]


def test_test_handoff_and_bundle_emails_say_what_they_are(smtp):
    send("email", "ivy@example.test", page(kind="test", title="Test notification", ack_url=""))
    send("email", "ivy@example.test", page(kind="handoff", title="You are on call for Primary"))
    send(
        "email",
        "ivy@example.test",
        page(
            kind="bundle",
            title="3 more pages for you",
            items=("INC-43 Search slow", "INC-44 Login errors", "INC-45 Disk full"),
        ),
    )
    test, handoff, bundle = smtp.wait_for(3)
    assert test["Subject"] == "[Test] Test notification"
    assert (
        "if you can read it, this contact method works" in test.get_body(("plain",)).get_content()
    )
    assert "Acknowledge" not in test.get_body(("plain",)).get_content()
    assert handoff["Subject"] == "You are on call for Primary"
    assert "Importance" not in handoff
    assert bundle["Subject"] == "3 more pages for you"
    text = bundle.get_body(("plain",)).get_content()
    html = bundle.get_body(("html",)).get_content()
    for item in ("INC-43 Search slow", "INC-44 Login errors", "INC-45 Disk full"):
        assert f"- {item}" in text
        assert f"<li>{item}</li>" in html


def test_a_title_with_line_breaks_gives_a_one_line_subject(smtp):
    send("email", "ivy@example.test", page(title="INC-42\r\nBcc: everyone@example.test\nfailing"))
    [email] = smtp.wait_for(1)
    assert email["Subject"] == "INC-42 Bcc: everyone@example.test failing"
    assert email["Bcc"] is None


def test_an_invalid_email_address_is_permanent_and_nothing_is_sent(smtp):
    with pytest.raises(DeliveryError) as caught:
        send("email", "ivy at example")
    assert caught.value.permanent and not caught.value.site_problem
    assert "is not a valid email address" in str(caught.value)
    assert smtp.messages == []


class RefusingInbox:
    """An SMTP server that refuses some recipients, as real mail servers do."""

    def __init__(self, code_by_address: dict[str, str]):
        self.code_by_address = code_by_address
        self.messages = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.code_by_address:
            return self.code_by_address[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def refusing_smtp(settings):
    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = RefusingInbox(
        {
            "gone@example.test": "550 5.1.1 No such user here",
            "grey@example.test": "450 4.2.0 Greylisted, try again later",
        }
    )
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    yield inbox
    controller.stop()


def test_a_recipient_the_mail_server_refuses_is_a_permanent_error(refusing_smtp):
    with pytest.raises(DeliveryError) as caught:
        send("email", "gone@example.test")
    error = caught.value
    assert error.permanent and not error.site_problem
    assert str(error) == (
        "The mail server refused gone@example.test (550 5.1.1 No such user here): "
        "check the address."
    )


def test_a_greylisted_recipient_is_a_temporary_error(refusing_smtp):
    with pytest.raises(DeliveryError) as caught:
        send("email", "grey@example.test")
    assert not caught.value.permanent
    assert "450 4.2.0 Greylisted" in str(caught.value)
    send("email", "ivy@example.test")
    assert len(refusing_smtp.messages) == 1


def test_an_unreachable_mail_server_is_a_temporary_site_problem(settings, closed_port):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = closed_port
    with pytest.raises(DeliveryError) as caught:
        send("email", "ivy@example.test")
    assert not caught.value.permanent and caught.value.site_problem
    assert str(caught.value).startswith("Could not reach Firebreak's mail server (")


# --- SMS gateway --------------------------------------------------------------------------


def test_the_sms_gateway_gets_the_filled_template_and_its_auth_header(gateway):
    message = page(title='INC-42 "Checkout"\nfailing \\ {text} {to}')
    gateway.answer(200, b'{"id": "sms-981"}')

    receipt = send("sms", "+44 7700 900-123", message)

    assert receipt == 'HTTP 200 ({"id": "sms-981"})'
    request = gateway.last
    assert (request.method, request.path) == ("POST", "/api/send")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == GATEWAY_TOKEN
    assert request.headers["x-firebreak-delivery"] == "notification-17"
    body = json.loads(request.body)
    assert body == {
        "to": "+447700900123",
        "text": f'INC-42 "Checkout" failing \\ {{text}} {{to}} Ack: {ACK_URL}',
    }


def test_a_template_that_is_not_json_is_sent_as_plain_text(gateway, settings):
    settings.SMS_GATEWAY_BODY_TEMPLATE = "TO={to}\nMSG={text}"
    send("sms", "+15550001111", page(title='Say "hi"'))
    assert gateway.last.headers["content-type"] == "text/plain; charset=utf-8"
    assert gateway.last.body.decode() == f'TO=+15550001111\nMSG=Say "hi" Ack: {ACK_URL}'


def test_a_long_title_is_shortened_so_the_sms_keeps_its_ack_link(gateway):
    send("sms", "+15550001111", page(title="Checkout failing " * 40))
    text = json.loads(gateway.last.body)["text"]
    assert len(text) <= SMS_MAX_CHARS
    assert text.endswith(f"… Ack: {ACK_URL}")
    assert text.startswith("Checkout failing Checkout failing")


def test_without_a_gateway_url_sms_is_a_permanent_site_problem(settings):
    settings.SMS_GATEWAY_URL = ""
    with pytest.raises(DeliveryError) as caught:
        send("sms", "+15550001111")
    assert caught.value.permanent and caught.value.site_problem
    assert str(caught.value).startswith("SMS gateway not configured")


def test_a_phone_number_that_is_not_one_is_permanent(gateway):
    with pytest.raises(DeliveryError) as caught:
        send("sms", "call me maybe")
    assert caught.value.permanent and not caught.value.site_problem
    assert "not a phone number in international format" in str(caught.value)
    assert gateway.requests == []


def test_gateway_errors_never_repeat_the_auth_header(gateway):
    gateway.answer(401, f'{{"error": "bad credentials {GATEWAY_TOKEN}"}}'.encode())
    with pytest.raises(DeliveryError) as caught:
        send("sms", "+15550001111")
    error = caught.value
    assert error.permanent and error.site_problem
    assert "gw-s3cret-token-0123" not in str(error)
    assert str(error).startswith("The SMS gateway answered 401 (")
    assert "ask a Firebreak administrator to check the SMS gateway settings" in str(error)


def test_a_number_the_gateway_rejects_is_the_contacts_problem(gateway):
    gateway.answer(400, b'{"error": "invalid destination number"}')
    with pytest.raises(DeliveryError) as caught:
        send("sms", "+15550001111")
    assert caught.value.permanent and not caught.value.site_problem
    assert str(caught.value) == (
        'The SMS gateway answered 400 ({"error": "invalid destination number"}): '
        "check the phone number."
    )


# --- Slack-compatible webhooks ------------------------------------------------------------


def test_slack_gets_text_and_blocks_with_acknowledge_and_open_buttons(http_receiver):
    message = page(title="INC-42 <Checkout> & payments")

    assert send("slack", http_receiver.url("/services/T0/B0/xyz"), message) == "HTTP 200 (ok)"

    request = http_receiver.last
    assert request.headers["content-type"] == "application/json"
    payload = json.loads(request.body)
    assert payload["text"].startswith("Paging Ivy: INC-42 &lt;Checkout&gt; &amp; payments\n")
    assert f"Acknowledge: {ACK_URL}" in payload["text"]
    header, section, actions, context = payload["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "INC-42 <Checkout> & payments"},
    }
    assert section["text"] == {
        "type": "mrkdwn",
        "text": "Card payments time out for 30% of customers.",
    }
    assert [(b["text"]["text"], b["url"]) for b in actions["elements"]] == [
        ("Acknowledge", ACK_URL),
        ("Open in Firebreak", LINK_URL),
    ]
    assert context["type"] == "context"


def test_a_removed_slack_webhook_is_permanent_and_says_what_slack_said(http_receiver):
    http_receiver.answer(404, b"no_service")
    url = http_receiver.url("/services/T000/B000/XXXXXXXXXXXXXXXX")
    with pytest.raises(DeliveryError) as caught:
        send("slack", url, label="#payments-oncall")
    error = caught.value
    assert error.permanent and not error.site_problem
    assert str(error) == (
        "The Slack webhook “#payments-oncall” answered 404 (no_service): check the URL "
        "(the webhook or its channel may have been removed)."
    )


# --- Signed webhooks ----------------------------------------------------------------------

SECRET = "whsec-4f1c2d9e8b7a"


def test_a_receiver_can_verify_the_signed_webhook(http_receiver):
    before = int(time.time())
    send("webhook", http_receiver.url(), secret=SECRET)
    request = http_receiver.last
    timestamp = int(request.headers["x-firebreak-timestamp"])
    signature = request.headers["x-firebreak-signature"]
    assert before <= timestamp <= int(time.time())
    assert request.headers["x-firebreak-delivery"] == "notification-17"
    assert signature == webhook_signature(secret=SECRET, timestamp=timestamp, body=request.body)
    payload = json.loads(request.body)
    assert payload == {
        "type": "page",
        "delivery_id": "notification-17",
        "title": "[SEV1] INC-42 Checkout failing",
        "summary": "Card payments time out for 30% of customers.",
        "link_url": LINK_URL,
        "ack_url": ACK_URL,
        "recipient": "Ivy",
        "sent_at": payload["sent_at"],
        "items": [],
    }
    assert payload["sent_at"].endswith("Z")

    def verify(*, body=request.body, secret=SECRET, ts=timestamp, sig=signature, now=timestamp):
        return verify_webhook_signature(
            secret=secret, timestamp=ts, body=body, signature=sig, now=now
        )

    assert verify()
    assert verify(now=timestamp + 300)
    assert verify(sig=f"v1=0000, {signature}")  # one of several, as during a secret rotation
    assert verify(ts=str(timestamp))  # the header as received
    assert not verify(now=timestamp + 301), "a replay after five minutes is rejected"
    assert not verify(now=timestamp - 301), "so is a timestamp from the future"
    assert not verify(ts=timestamp + 200, now=timestamp + 200), "re-dated requests fail"
    assert not verify(body=request.body.replace(b"Checkout", b"Checkoup")), "tampered body"
    assert not verify(secret="another-secret")
    assert not verify(sig="")
    assert not verify(ts="yesterday")


def test_a_webhook_without_a_secret_is_not_sent_unsigned(http_receiver):
    with pytest.raises(DeliveryError) as caught:
        send("webhook", http_receiver.url(), secret="", label="PagerBridge")
    assert caught.value.permanent
    assert str(caught.value) == (
        "The webhook “PagerBridge” has no signing secret: create a new one in your contact methods."
    )
    assert http_receiver.requests == []


def test_a_webhook_receiver_that_rejects_the_signature_is_told_to_check_the_secret(
    http_receiver,
):
    http_receiver.answer(401, f"bad signature for secret {SECRET}".encode())
    with pytest.raises(DeliveryError) as caught:
        send("webhook", http_receiver.url(), secret=SECRET)
    assert caught.value.permanent
    assert SECRET not in str(caught.value)
    assert str(caught.value) == (
        "The webhook answered 401 (bad signature for secret [redacted]): check that the "
        "receiver uses this contact method's signing secret."
    )


# --- What counts as permanent, for every HTTP channel -------------------------------------

HTTP_KINDS = ["sms", "slack", "webhook"]


def send_over_http(kind: str, url: str, settings) -> str:
    if kind == "sms":
        settings.SMS_GATEWAY_URL = url
        return send("sms", "+15550001111")
    return send(kind, url, secret=SECRET)


@pytest.mark.parametrize("kind", HTTP_KINDS)
@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (400, True),
        (401, True),
        (403, True),
        (404, True),
        (410, True),
        (408, False),
        (429, False),
        (500, False),
        (502, False),
        (503, False),
    ],
)
def test_http_answers_are_classified(kind, status, permanent, http_receiver, settings):
    http_receiver.answer(status, b"nope")
    with pytest.raises(DeliveryError) as caught:
        send_over_http(kind, http_receiver.url("/hook"), settings)
    assert caught.value.permanent is permanent
    assert f"answered {status} (nope)" in str(caught.value)
    assert len(http_receiver.requests) == 1


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_a_redirect_is_permanent_and_not_followed(kind, http_receiver, settings):
    http_receiver.redirect_to("https://elsewhere.example.test/new-hook?token=abc")
    with pytest.raises(DeliveryError) as caught:
        send_over_http(kind, http_receiver.url("/hook"), settings)
    assert caught.value.permanent
    assert str(caught.value).startswith(
        "The receiver redirected (HTTP 302 to https://elsewhere.example.test/…): "
        "Firebreak does not follow redirects, so give the "
    )
    assert "token=abc" not in str(caught.value)
    assert len(http_receiver.requests) == 1


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_a_receiver_that_hangs_is_a_temporary_timeout(kind, http_receiver, settings):
    settings.NOTIFIER_TIMEOUT_SECONDS = 1
    http_receiver.hang()
    started = time.monotonic()
    with pytest.raises(DeliveryError) as caught:
        send_over_http(kind, http_receiver.url("/hook"), settings)
    assert time.monotonic() - started < 5
    assert not caught.value.permanent
    assert "did not answer within 1 second." in str(caught.value)


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_a_refused_connection_is_temporary(kind, closed_port, settings):
    with pytest.raises(DeliveryError) as caught:
        send_over_http(kind, f"http://127.0.0.1:{closed_port}/hook", settings)
    assert not caught.value.permanent
    assert "could not be reached" in str(caught.value)


@pytest.mark.parametrize("kind", HTTP_KINDS)
@pytest.mark.parametrize("url", ["ftp://127.0.0.1/hook", "file:///etc/passwd", "hooks.slack"])
def test_only_http_and_https_urls_are_used(kind, url, settings):
    with pytest.raises(DeliveryError) as caught:
        send_over_http(kind, url, settings)
    assert caught.value.permanent
    assert "is not an http:// or https:// URL" in str(caught.value)


def test_neither_errors_nor_logs_repeat_a_secret_url_path(http_receiver, caplog):
    caplog.set_level(logging.DEBUG)
    path = "/services/T0001/B0001/sEcReTtOkEn123456"
    send("slack", http_receiver.url(path))
    http_receiver.answer(403, f"invalid_token for {path}".encode())
    with pytest.raises(DeliveryError) as caught:
        send("slack", http_receiver.url(path))
    assert "sEcReTtOkEn123456" not in str(caught.value)
    assert caplog.records
    assert all("sEcReTtOkEn123456" not in record.getMessage() for record in caplog.records)
    assert str(caught.value).startswith("The Slack webhook answered 403 (invalid_token for")


# --- Whatever people type into titles -----------------------------------------------------

anything = st.text(max_size=400)


@hypothesis_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=anything, summary=anything, name=st.text(max_size=50))
def test_any_title_gives_a_valid_json_sms_and_a_one_line_subject(title, summary, name):
    message = page(title=title, summary=summary, recipient_name=name)
    with override_settings(
        SMS_GATEWAY_URL="http://127.0.0.1:9/send",
        SMS_GATEWAY_AUTH_HEADER="",
        SMS_GATEWAY_BODY_TEMPLATE='{"to": "{to}", "text": "{text}"}',
    ):
        _, body, headers = SmsGatewayNotifier().build(
            contact=contact("sms", "+15550001111"), message=message
        )
    sms = json.loads(body)
    assert sms["to"] == "+15550001111"
    assert len(sms["text"]) <= SMS_MAX_CHARS
    assert "\n" not in sms["text"]
    assert sms["text"].endswith(f"Ack: {ACK_URL}")
    assert headers["Content-Type"] == "application/json"

    email = EmailNotifier().build(contact=contact("email", "ivy@example.test"), message=message)
    raw = email.message().as_bytes()
    from email import message_from_bytes
    from email.policy import default

    parsed = message_from_bytes(raw, policy=default)
    subject = str(parsed["Subject"])
    assert "\n" not in subject and "\r" not in subject
    assert email.subject == " ".join(email.subject.split())
    # A long encoded subject is folded onto the next line; unfolding leaves a leading space.
    assert subject.strip() == email.subject
    assert parsed["Bcc"] is None


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    secret=st.text(min_size=1, max_size=64),
    body=st.binary(max_size=500),
    timestamp=st.integers(min_value=0, max_value=2**40),
    flip=st.integers(min_value=0, max_value=10_000),
)
def test_a_signature_holds_for_exactly_the_body_it_signed(secret, body, timestamp, flip):
    signature = webhook_signature(secret=secret, timestamp=timestamp, body=body)
    assert verify_webhook_signature(
        secret=secret, timestamp=timestamp, body=body, signature=signature, now=timestamp
    )
    if body:
        i = flip % len(body)
        tampered = body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]
        assert not verify_webhook_signature(
            secret=secret, timestamp=timestamp, body=tampered, signature=signature, now=timestamp
        )


def test_the_webhook_body_is_signed_exactly_as_sent():
    notifier = WebhookNotifier()
    body, headers = notifier.build(
        contact=contact("webhook", "https://example.test/hook", secret=SECRET),
        message=page(title='Ünïcode "quotes" {braces}\nand lines'),
        now=1_700_000_000,
    )
    assert headers["X-Firebreak-Timestamp"] == "1700000000"
    assert json.loads(body)["sent_at"] == "2023-11-14T22:13:20Z"
    assert json.loads(body)["title"] == 'Ünïcode "quotes" {braces} and lines'
    assert verify_webhook_signature(
        secret=SECRET,
        timestamp=headers["X-Firebreak-Timestamp"],
        body=body,
        signature=headers["X-Firebreak-Signature"],
        now=1_700_000_100,
    )
