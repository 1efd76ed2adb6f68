"""Webhook subscribers, received by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from incidents.models import ComponentStatus, PublicStatus, StatusDelivery, StatusSubscriber
from incidents.statuspages import subscriptions
from incidents.statuspages.services import component_status_set, status_update_publish
from incidents.statuspages.tasks import status_tick
from oncall.notifiers import verify_webhook_signature
from tests.oncall.conftest import HttpReceiver
from tests.statuspages.conftest import make_component, make_status_page

SECRET = "a-long-enough-signing-secret"


@pytest.fixture
def receiver():
    receiver = HttpReceiver()
    receiver.thread.start()
    yield receiver
    receiver.close()


@pytest.fixture
def page(db):
    page = make_status_page("acme", title="Acme status")
    make_component(page, "API")
    make_component(page, "Dashboard")
    return page


def add_webhook(page, receiver, *, secret=SECRET, components=(), admin=None):
    return subscriptions.webhook_subscriber_add(
        page=page,
        url=receiver.url("/status-hook"),
        secret=secret,
        label="Ops bot",
        components=components,
        actor=admin,
    )


@pytest.mark.django_db
def test_a_webhook_receives_a_signed_update_and_a_retry_after_a_500(
    page, receiver, restricted_incident, django_capture_on_commit_callbacks
):
    add_webhook(page, receiver)
    receiver.answer(500, b"database down")
    with django_capture_on_commit_callbacks(execute=True):
        status_update_publish(
            incident=restricted_incident,
            pages=[page],
            status=PublicStatus.INVESTIGATING,
            message="Some people cannot sign in.",
            actor=restricted_incident.declared_by,
            title="Sign-in trouble",
        )
    assert len(receiver.requests) == 1
    delivery = StatusDelivery.objects.get()
    assert delivery.state == StatusDelivery.State.PENDING
    assert "answered 500" in delivery.error
    assert StatusSubscriber.objects.get().last_error

    receiver.answer(200, b"ok")
    status_tick()  # not due yet: backoff
    assert len(receiver.requests) == 1
    with time_machine.travel(timezone.now() + timedelta(seconds=15)):
        status_tick()
    assert len(receiver.requests) == 2
    delivery.refresh_from_db()
    assert delivery.state == StatusDelivery.State.SENT and delivery.attempts == 2

    first, retry = receiver.requests
    assert first.headers["x-firebreak-delivery"] == retry.headers["x-firebreak-delivery"]
    request = retry
    assert request.path == "/status-hook"
    assert request.headers["content-type"] == "application/json"
    assert verify_webhook_signature(
        secret=SECRET,
        timestamp=request.headers["x-firebreak-timestamp"],
        body=request.body,
        signature=request.headers["x-firebreak-signature"],
        now=int(time.time()) + 15,
    )
    assert not verify_webhook_signature(
        secret="another-secret-entirely",
        timestamp=request.headers["x-firebreak-timestamp"],
        body=request.body,
        signature=request.headers["x-firebreak-signature"],
        now=int(time.time()) + 15,
    )
    body = json.loads(request.body)
    assert body["type"] == "update"
    assert body["page"]["slug"] == "acme"
    assert body["update"]["title"] == "Sign-in trouble"
    assert body["update"]["status"] == "investigating"
    assert body["update"]["message"] == "Some people cannot sign in."
    assert body["delivery_id"] == request.headers["x-firebreak-delivery"]
    raw = request.body.decode()
    assert "Suspicious staff logins" not in raw
    assert restricted_incident.reference not in raw


@pytest.mark.django_db
def test_a_component_change_is_posted_without_a_signature_when_there_is_no_secret(
    page, receiver, commander, django_capture_on_commit_callbacks
):
    api, dashboard = page.components.order_by("name")
    add_webhook(page, receiver, secret="", components=[api])
    with django_capture_on_commit_callbacks(execute=True):
        component_status_set(
            component=dashboard, status=ComponentStatus.MAJOR_OUTAGE, actor=commander
        )
        component_status_set(component=api, status=ComponentStatus.PARTIAL_OUTAGE, actor=commander)
    [request] = receiver.requests
    assert "x-firebreak-signature" not in request.headers
    body = json.loads(request.body)
    assert body["type"] == "component"
    assert body["component"] == {
        "id": api.pk,
        "name": "API",
        "old_status": "operational",
        "new_status": "partial_outage",
        "at": body["component"]["at"],
    }


@pytest.mark.django_db
def test_a_refusing_receiver_is_recorded_as_failed_and_shown_to_managers(
    page, receiver, commander, admin_user, client, django_capture_on_commit_callbacks
):
    add_webhook(page, receiver)
    receiver.answer(404, b"no such hook")
    with django_capture_on_commit_callbacks(execute=True):
        component_status_set(
            component=page.components.first(), status=ComponentStatus.MAJOR_OUTAGE, actor=commander
        )
    delivery = StatusDelivery.objects.get()
    assert delivery.state == StatusDelivery.State.FAILED
    assert delivery.attempts == 1
    client.force_login(admin_user)
    listing = client.get(reverse("status:webhooks_manage", kwargs={"slug": page.slug}))
    assert "answered 404" in listing.content.decode()


@pytest.mark.django_db
def test_managers_add_and_remove_webhooks(client, page, admin_user, receiver):
    client.force_login(admin_user)
    url = reverse("status:webhooks_manage", kwargs={"slug": page.slug})
    assert client.get(url).status_code == 200
    response = client.post(
        url, {"url": receiver.url("/x"), "label": "Bot", "secret": SECRET}, follow=True
    )
    assert response.status_code == 200
    webhook = StatusSubscriber.objects.get(kind="webhook")
    assert webhook.is_active and webhook.created_by == admin_user
    assert "Bot" in response.content.decode()
    remove = reverse("status:webhook_remove", kwargs={"slug": page.slug, "pk": webhook.pk})
    assert client.post(remove).status_code == 302
    assert not StatusSubscriber.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    ["ftp://example.test/hook", "file:///etc/passwd", "javascript:alert(1)", "not a url", ""],
)
def test_a_webhook_must_be_an_http_url(client, page, admin_user, url):
    client.force_login(admin_user)
    response = client.post(
        reverse("status:webhooks_manage", kwargs={"slug": page.slug}), {"url": url}
    )
    assert response.status_code == 422
    assert 'class="field-error"' in response.content.decode()
    assert not StatusSubscriber.objects.exists()


@pytest.mark.django_db
def test_a_short_secret_is_refused(client, page, admin_user, receiver):
    client.force_login(admin_user)
    response = client.post(
        reverse("status:webhooks_manage", kwargs={"slug": page.slug}),
        {"url": receiver.url(), "secret": "short"},
    )
    assert response.status_code == 422
    assert not StatusSubscriber.objects.exists()
