"""Profile: contact methods, test sends through the real notifiers, personal rules."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from oncall.models import ContactMethod, NotificationRule
from tests.factories import make_user

pytestmark = pytest.mark.django_db

PROFILE = reverse("profile")
ADD = reverse("oncall:contact_method_create")


@pytest.fixture
def ivy():
    return make_user("ivy", first_name="Ivy", time_zone="Europe/London")


@pytest.fixture
def client(ivy) -> Client:
    client = Client()
    client.force_login(ivy)
    return client


def htmx(client: Client, url: str, data=None):
    return client.post(url, data or {}, HTTP_HX_REQUEST="true")


def test_a_new_person_is_reached_by_email_at_once(client, ivy):
    body = client.get(PROFILE).content.decode()
    assert "ivy@example.test" in body
    assert "At once" in body
    assert "Send me a test" in body


def test_it_adds_a_phone_number_in_international_format(client, ivy):
    response = client.post(ADD, {"kind": "sms", "label": "Phone", "address": "+44 (7700) 900-123"})
    assert response.status_code == 302
    assert ContactMethod.objects.get(user=ivy, kind="sms").address == "+447700900123"


@pytest.mark.parametrize("address", ["07700 900123", "+44", "call me", "+0 7700 900123"])
def test_it_refuses_a_phone_number_without_a_country_code(client, ivy, address):
    response = client.post(ADD, {"kind": "sms", "address": address})
    assert response.status_code == 422
    assert "international format" in response.content.decode()
    assert not ContactMethod.objects.filter(user=ivy, kind="sms").exists()


@pytest.mark.parametrize(
    ("kind", "address", "error"),
    [
        ("email", "not-an-address", "Enter an email address"),
        ("slack", "hooks.slack.com/services/x", "full webhook URL"),
        ("webhook", "ftp://example.test/hook", "full webhook URL"),
    ],
)
def test_it_refuses_addresses_that_cannot_work(client, kind, address, error):
    response = client.post(ADD, {"kind": kind, "address": address})
    assert response.status_code == 422
    assert error in response.content.decode()
    assert 'class="field-error"' in response.content.decode()


def test_a_signed_webhook_secret_is_shown_once(client, ivy):
    client.post(ADD, {"kind": "webhook", "label": "Pager bridge", "address": "https://h.test/x"})
    method = ContactMethod.objects.get(user=ivy, kind="webhook")
    assert len(method.secret) >= 32
    first = client.get(PROFILE).content.decode()
    assert method.secret in first
    assert "shown only now" in first
    assert method.secret not in client.get(PROFILE).content.decode()


def test_regenerating_the_secret_replaces_it_in_place(client, ivy):
    client.post(ADD, {"kind": "webhook", "address": "https://h.test/x"})
    method = ContactMethod.objects.get(user=ivy, kind="webhook")
    old = method.secret
    response = htmx(client, reverse("oncall:contact_method_secret", args=[method.pk]))
    method.refresh_from_db()
    assert method.secret != old
    body = response.content.decode()
    assert body.lstrip().startswith(f'<li id="method-{method.pk}"')
    assert method.secret in body and old not in body


def test_it_answers_for_someone_elses_contact_method_as_if_it_did_not_exist(client):
    other = make_user("raj")
    theirs = other.contact_methods.get()
    for name in ("contact_method_test", "contact_method_delete", "contact_method_secret"):
        assert client.post(reverse(f"oncall:{name}", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("oncall:contact_method_edit", args=[theirs.pk])).status_code == 404
    assert ContactMethod.objects.filter(pk=theirs.pk).exists()


def test_removing_a_method_removes_its_rules(client, ivy):
    method = ivy.contact_methods.get()
    client.post(reverse("oncall:contact_method_delete", args=[method.pk]))
    assert not NotificationRule.objects.filter(user=ivy).exists()
    assert "nobody can page you" in client.get(PROFILE).content.decode()


def test_rules_read_in_order_of_delay(client, ivy):
    email = ivy.contact_methods.get()
    client.post(ADD, {"kind": "sms", "label": "Phone", "address": "+447700900123"})
    sms = ivy.contact_methods.get(kind="sms")
    assert (
        client.post(
            reverse("oncall:rule_create"), {"contact_method": sms.pk, "delay_minutes": 5}
        ).status_code
        == 302
    )
    client.post(reverse("oncall:rule_create"), {"contact_method": email.pk, "delay_minutes": 15})
    body = client.get(PROFILE).content.decode()
    rules = body[body.index('<ol class="rules">') : body.index("</ol>", body.index('"rules"'))]
    steps = [chunk.split("</span>")[0] for chunk in rules.split('class="rule-delay">')[1:]]
    assert steps == ["At once", "After 5 min", "After 15 min"]
    assert rules.index("Phone") < rules.index("After 15 min")


@pytest.mark.parametrize(
    ("delay", "error"),
    [("0", "You already have a rule"), ("-1", "greater than or equal to 0"), ("5000", "at most")],
)
def test_it_refuses_impossible_rules(client, ivy, delay, error):
    email = ivy.contact_methods.get()
    response = client.post(
        reverse("oncall:rule_create"), {"contact_method": email.pk, "delay_minutes": delay}
    )
    assert response.status_code == 422
    assert error in response.content.decode()
    assert NotificationRule.objects.filter(user=ivy).count() == 1


def test_a_rule_cannot_use_someone_elses_method(client, ivy):
    theirs = make_user("raj").contact_methods.get()
    response = client.post(
        reverse("oncall:rule_create"), {"contact_method": theirs.pk, "delay_minutes": 3}
    )
    assert response.status_code == 422
    assert not NotificationRule.objects.filter(contact_method=theirs, delay_minutes=3).exists()


def test_send_me_a_test_delivers_a_real_email(client, ivy, smtp_inbox, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp_inbox.port
    method = ivy.contact_methods.get()
    response = htmx(client, reverse("oncall:contact_method_test", args=[method.pk]))
    assert response.status_code == 200
    assert "Test sent" in response.content.decode()
    [mail] = smtp_inbox.wait_for(1)
    assert mail["To"] == "ivy@example.test"
    assert mail["Subject"].startswith("[Test]")
    assert mail["X-Firebreak-Kind"] == "test"


def test_a_permanent_failure_pauses_the_method_until_a_test_succeeds(client, ivy, http_receiver):
    client.post(ADD, {"kind": "slack", "label": "Team chat", "address": http_receiver.url()})
    method = ivy.contact_methods.get(kind="slack")
    http_receiver.answer(404, b"no_service")
    failed = htmx(client, reverse("oncall:contact_method_test", args=[method.pk]))
    assert "Paused since" in failed.content.decode()
    method.refresh_from_db()
    assert method.disabled_at is not None and "check the URL" in method.disabled_reason
    assert "Paused since" in client.get(PROFILE).content.decode()
    payload = json.loads(http_receiver.last.body)
    assert "Test" in json.dumps(payload)

    http_receiver.answer(200, b"ok")
    passed = htmx(client, reverse("oncall:contact_method_test", args=[method.pk]))
    assert "Test sent" in passed.content.decode()
    method.refresh_from_db()
    assert method.disabled_at is None and method.disabled_reason == ""
    assert "Paused since" not in client.get(PROFILE).content.decode()


def test_a_temporary_failure_is_shown_but_does_not_pause(client, ivy, closed_port):
    client.post(ADD, {"kind": "slack", "address": f"http://127.0.0.1:{closed_port}/hook"})
    method = ivy.contact_methods.get(kind="slack")
    response = client.post(reverse("oncall:contact_method_test", args=[method.pk]), follow=True)
    method.refresh_from_db()
    assert method.disabled_at is None
    assert "test-failed" not in response.content.decode()  # no htmx: a message instead
    assert "Slack" in response.content.decode()


def test_correcting_the_address_gives_a_paused_method_another_chance(client, ivy):
    method = ivy.contact_methods.get()
    ContactMethod.objects.filter(pk=method.pk).update(
        disabled_at="2026-01-01T00:00Z", disabled_reason="refused"
    )
    client.post(
        reverse("oncall:contact_method_edit", args=[method.pk]),
        {"kind": "email", "label": "Work", "address": "ivy.new@example.test"},
    )
    method.refresh_from_db()
    assert method.address == "ivy.new@example.test" and method.disabled_at is None
