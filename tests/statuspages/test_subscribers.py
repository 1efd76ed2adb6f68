"""Email subscribers, end to end: the real SMTP server receives what a subscriber would, and
the links in those emails are followed with the test client."""

from __future__ import annotations

import re
import socket
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents.models import (
    ComponentStatus,
    PublicStatus,
    StatusDelivery,
    StatusEvent,
    StatusPageVisibility,
    StatusSubscriber,
)
from incidents.statuspages import subscriptions
from incidents.statuspages.services import component_status_set, status_update_publish
from tests.statuspages.conftest import make_component, make_status_page

LINK = re.compile(r"https?://\S+")


@pytest.fixture
def smtp(settings, smtp_inbox):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_inbox.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.SITE_URL = "http://testserver"
    return smtp_inbox


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def page(db):
    page = make_status_page("acme", title="Acme status")
    make_component(page, "API")
    make_component(page, "Dashboard")
    return page


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def link_in(message, fragment: str) -> str:
    links = [url for url in LINK.findall(text_of(message)) if fragment in url]
    assert links, text_of(message)
    return links[0].replace("http://testserver", "")


def subscribe(client, page, email="ann@example.test", components=()):
    return client.post(
        reverse("status:subscribe", kwargs={"slug": page.slug}),
        {"email": email, "components": [c.pk for c in components]},
        REMOTE_ADDR="203.0.113.7",
    )


def publish(incident, page, message="We are looking into errors.", title="Errors on the API"):
    return status_update_publish(
        incident=incident,
        pages=[page],
        status=PublicStatus.INVESTIGATING,
        message=message,
        actor=incident.declared_by,
        title=title,
    )


@pytest.mark.django_db
def test_double_opt_in_then_updates_then_one_click_unsubscribe(
    client, smtp, page, incident, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = subscribe(client, page, email="Ann@Example.test")
    assert response.status_code == 200
    assert "Check your email" in response.content.decode()
    [confirmation] = smtp.wait_for(1)
    assert confirmation["To"] == "ann@example.test"
    assert "Confirm your subscription to Acme status" in confirmation["Subject"]
    assert "List-Unsubscribe" not in confirmation

    # Nothing but the confirmation goes to an unconfirmed address.
    with django_capture_on_commit_callbacks(execute=True):
        publish(incident, page)
    assert len(smtp.wait_for(2, timeout=1)) == 1

    # A mail scanner's GET confirms nothing; the button does.
    confirm = link_in(confirmation, "/confirm/")
    page_html = client.get(confirm)
    assert page_html.status_code == 200
    assert "Confirm subscription" in page_html.content.decode()
    assert not StatusSubscriber.objects.get().is_active
    done = client.post(confirm)
    assert "You’re subscribed" in done.content.decode()
    assert StatusSubscriber.objects.get().is_active
    # The link works once.
    assert client.get(confirm).status_code == 404

    with django_capture_on_commit_callbacks(execute=True):
        publish(incident, page, message="We found the cause: a **bad deploy**.")
    received = smtp.wait_for(2)
    assert len(received) == 2
    update = received[1]
    assert update["Subject"] == "[Acme status] Investigating: Errors on the API"
    assert "We found the cause: a **bad deploy**." in text_of(update)
    assert "<strong>bad deploy</strong>" in html_of(update)
    assert "Times are in UTC" in text_of(update)
    unsubscribe = link_in(update, "/unsubscribe/")
    assert update["List-Unsubscribe"].strip() == f"<http://testserver{unsubscribe}>"
    assert update["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f'href="http://testserver{unsubscribe}"' in html_of(update)

    # RFC 8058: the mail provider POSTs to the link, without cookies or a CSRF token.
    provider = Client(enforce_csrf_checks=True)
    one_click = provider.post(
        unsubscribe,
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert one_click.status_code == 200
    assert "You’re unsubscribed" in one_click.content.decode()
    assert StatusSubscriber.objects.get().unsubscribed_at is not None

    with django_capture_on_commit_callbacks(execute=True):
        publish(incident, page, message="Fixed.")
    assert len(smtp.wait_for(3, timeout=1)) == 2


@pytest.mark.django_db
def test_unsubscribe_get_only_asks(client, page):
    subscriber = StatusSubscriber.objects.create(
        page=page, email="ann@example.test", confirmed_at=timezone.now()
    )
    url = reverse(
        "status:unsubscribe",
        kwargs={"pk": subscriber.pk, "token": subscriptions.unsubscribe_token(subscriber)},
    )
    response = client.get(url)
    assert response.status_code == 200
    assert "Stop sending updates" in response.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.is_active


@pytest.mark.django_db
@pytest.mark.parametrize("token", ["nope", "0" * 64, ""])
def test_a_forged_unsubscribe_or_confirm_link_is_a_404_and_changes_nothing(client, page, token):
    subscriber = StatusSubscriber.objects.create(
        page=page, email="ann@example.test", confirmed_at=timezone.now()
    )
    for name in ("status:unsubscribe", "status:subscription_confirm"):
        url = reverse(name, kwargs={"pk": subscriber.pk, "token": token or "x"})
        assert client.post(url).status_code == 404
        assert "This link does not work" in client.get(url).content.decode()
    subscriber.refresh_from_db()
    assert subscriber.is_active


@pytest.mark.django_db
def test_a_confirmation_link_expires(client, smtp, page, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        subscribe(client, page)
    confirm = link_in(smtp.wait_for(1)[0], "/confirm/")
    with time_machine.travel(timezone.now() + timedelta(hours=49)):
        assert client.post(confirm).status_code == 404
    assert not StatusSubscriber.objects.get().is_active


def _normalised(response) -> tuple[int, bytes]:
    return response.status_code, response.content


@pytest.mark.django_db
def test_subscribing_answers_the_same_whatever_the_address_state(
    client, smtp, page, django_capture_on_commit_callbacks
):
    StatusSubscriber.objects.create(
        page=page, email="confirmed@example.test", confirmed_at=timezone.now()
    )
    StatusSubscriber.objects.create(
        page=page,
        email="gone@example.test",
        confirmed_at=timezone.now(),
        unsubscribed_at=timezone.now(),
    )
    answers = []
    with django_capture_on_commit_callbacks(execute=True):
        for email in ("new@example.test", "confirmed@example.test", "gone@example.test"):
            answers.append(_normalised(subscribe(client, page, email=email)))
        # Pending (asked a moment ago): still the same answer.
        answers.append(_normalised(subscribe(client, page, email="new@example.test")))
    assert len(set(answers)) == 1, "the answer differs with the address's state"
    assert answers[0][0] == 200


@pytest.mark.django_db
def test_an_address_gets_at_most_one_confirmation_per_window(
    client, smtp, page, django_capture_on_commit_callbacks, settings
):
    settings.STATUS_SUBSCRIBE_PER_ADDRESS = 100
    StatusSubscriber.objects.create(
        page=page, email="confirmed@example.test", confirmed_at=timezone.now()
    )
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            subscribe(client, page, email="confirmed@example.test")
            subscribe(client, page, email="new@example.test")
    received = smtp.wait_for(3, timeout=2)
    assert sorted(m["To"] for m in received) == ["confirmed@example.test", "new@example.test"]
    change = next(m for m in received if m["To"] == "confirmed@example.test")
    assert "Confirm the change" in change["Subject"]
    # A confirmed subscriber keeps receiving what they chose until they click.
    subscriber = StatusSubscriber.objects.get(email="confirmed@example.test")
    assert subscriber.is_active

    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        with django_capture_on_commit_callbacks(execute=True):
            subscribe(client, page, email="new@example.test")
        assert len(smtp.wait_for(3)) == 3


@pytest.mark.django_db
def test_too_many_requests_get_a_clear_429_page(client, page, settings):
    settings.STATUS_SUBSCRIBE_PER_IP = 3
    statuses = [subscribe(client, page, email=f"p{n}@example.test").status_code for n in range(3)]
    assert statuses == [200, 200, 200]
    limited = subscribe(client, page, email="p9@example.test")
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    body = limited.content.decode()
    assert "Too many requests" in body and "try again" in body
    assert not StatusSubscriber.objects.filter(email="p9@example.test").exists()
    # Another client is not affected.
    other = client.post(
        reverse("status:subscribe", kwargs={"slug": page.slug}),
        {"email": "q@example.test"},
        REMOTE_ADDR="198.51.100.1",
    )
    assert other.status_code == 200


@pytest.mark.django_db
def test_one_address_is_limited_whatever_the_client(client, page, settings):
    settings.STATUS_SUBSCRIBE_PER_ADDRESS = 2
    codes = [
        client.post(
            reverse("status:subscribe", kwargs={"slug": page.slug}),
            {"email": "victim@example.test"},
            REMOTE_ADDR=f"198.51.100.{n}",
        ).status_code
        for n in range(4)
    ]
    assert codes == [200, 200, 429, 429]


@pytest.mark.django_db
@pytest.mark.parametrize("email", ["", "not-an-address", "a@b@c", "x" * 300 + "@example.test"])
def test_a_bad_address_is_a_422_with_the_field_error_and_writes_nothing(client, page, email):
    response = subscribe(client, page, email=email)
    assert response.status_code == 422
    assert 'class="field-error"' in response.content.decode()
    assert not StatusSubscriber.objects.exists()


@pytest.mark.django_db
def test_a_component_from_another_page_is_refused(client, page):
    other = make_component(make_status_page(), "Elsewhere")
    response = subscribe(client, page, components=[other])
    assert response.status_code == 422
    assert not StatusSubscriber.objects.exists()


def _active(page, email, components=()):
    subscriber = StatusSubscriber.objects.create(
        page=page, email=email, confirmed_at=timezone.now()
    )
    subscriber.components.set(components)
    return subscriber


@pytest.mark.django_db
def test_component_subscribers_hear_only_about_their_components(
    smtp, page, commander, django_capture_on_commit_callbacks
):
    api, dashboard = page.components.order_by("name")
    _active(page, "all@example.test")
    _active(page, "api@example.test", [api])
    _active(page, "dash@example.test", [dashboard])
    with django_capture_on_commit_callbacks(execute=True):
        component_status_set(component=api, status=ComponentStatus.MAJOR_OUTAGE, actor=commander)
    received = smtp.wait_for(2)
    assert sorted(m["To"] for m in received) == ["all@example.test", "api@example.test"]
    assert received[0]["Subject"] == "[Acme status] API: major outage"
    assert "API is now major outage (was operational)" in text_of(received[0])

    # Setting the same status again changes nothing and sends nothing.
    with django_capture_on_commit_callbacks(execute=True):
        component_status_set(component=api, status=ComponentStatus.MAJOR_OUTAGE, actor=commander)
    assert len(smtp.wait_for(3, timeout=1)) == 2
    assert StatusEvent.objects.count() == 1


@pytest.mark.django_db
def test_an_update_reaches_subscribers_of_the_components_it_set(
    smtp, page, incident, django_capture_on_commit_callbacks
):
    api, dashboard = page.components.order_by("name")
    _active(page, "api@example.test", [api])
    _active(page, "dash@example.test", [dashboard])
    with django_capture_on_commit_callbacks(execute=True):
        status_update_publish(
            incident=incident,
            pages=[page],
            status=PublicStatus.IDENTIFIED,
            message="A bad deploy; rolling back.",
            actor=incident.declared_by,
            title="API errors",
            component_statuses={api.pk: ComponentStatus.PARTIAL_OUTAGE},
        )
    received = smtp.wait_for(3, timeout=2)
    assert {m["To"] for m in received} == {"api@example.test"}
    assert sorted(m["Subject"] for m in received) == [
        "[Acme status] API: partial outage",
        "[Acme status] Identified: API errors",
    ]


@pytest.mark.django_db
def test_a_restricted_incident_is_named_only_by_what_was_published(
    smtp, page, restricted_incident, django_capture_on_commit_callbacks
):
    _active(page, "ann@example.test")
    with django_capture_on_commit_callbacks(execute=True):
        publish(
            restricted_incident,
            page,
            message="Some people cannot sign in.",
            title="Sign-in trouble",
        )
    [message] = smtp.wait_for(1)
    whole = message.as_string()
    assert "Sign-in trouble" in message["Subject"]
    assert "Suspicious staff logins" not in whole
    assert restricted_incident.reference not in whole
    assert f"/incidents/{restricted_incident.pk}" not in whole


@pytest.mark.django_db
def test_deliveries_are_unique_per_event_and_subscriber_and_sent_once(
    smtp, page, commander, django_capture_on_commit_callbacks
):
    _active(page, "ann@example.test")
    with django_capture_on_commit_callbacks(execute=True):
        component_status_set(
            component=page.components.first(),
            status=ComponentStatus.DEGRADED_PERFORMANCE,
            actor=commander,
        )
    event = StatusEvent.objects.get()
    # A re-delivered fan-out message and a sweep that races it write and send nothing twice.
    for _ in range(3):
        for batch in subscriptions.status_event_fan_out(event_id=event.pk):
            subscriptions.deliveries_send(delivery_ids=batch)
    from incidents.statuspages.tasks import status_tick

    status_tick()
    assert StatusDelivery.objects.count() == 1
    assert StatusDelivery.objects.get().state == StatusDelivery.State.SENT
    assert len(smtp.wait_for(2, timeout=1)) == 1


@pytest.mark.django_db
def test_an_smtp_outage_is_retried_with_backoff(
    smtp, page, commander, settings, django_capture_on_commit_callbacks, closed_port
):
    _active(page, "ann@example.test")
    settings.EMAIL_PORT = closed_port
    with django_capture_on_commit_callbacks(execute=True):
        component_status_set(
            component=page.components.first(), status=ComponentStatus.MAJOR_OUTAGE, actor=commander
        )
    delivery = StatusDelivery.objects.get()
    assert delivery.state == StatusDelivery.State.PENDING
    assert delivery.attempts == 1
    assert "mail server" in delivery.error
    assert delivery.due_at > timezone.now()

    settings.EMAIL_PORT = smtp.port
    from incidents.statuspages.tasks import status_tick

    status_tick()  # not due yet
    assert StatusDelivery.objects.get().state == StatusDelivery.State.PENDING
    with time_machine.travel(timezone.now() + timedelta(seconds=30)):
        status_tick()
    delivery.refresh_from_db()
    assert delivery.state == StatusDelivery.State.SENT
    assert delivery.attempts == 2
    assert len(smtp.wait_for(1)) == 1


@pytest.mark.django_db
def test_many_subscribers_fan_out_in_batches_with_few_queries(
    page, commander, settings, django_assert_max_num_queries
):
    settings.STATUS_DELIVERY_BATCH = 50
    StatusSubscriber.objects.bulk_create(
        [
            StatusSubscriber(page=page, email=f"s{n}@example.test", confirmed_at=timezone.now())
            for n in range(520)
        ]
    )
    event = subscriptions.status_event_record(
        page=page, kind=StatusEvent.Kind.COMPONENT, key="k", data={}, component_ids=[]
    )
    # SQLite caps the variables in one statement, so Django splits the bulk INSERT there.
    from django.db import connection

    with django_assert_max_num_queries(8 if connection.vendor == "postgresql" else 12):
        batches = subscriptions.status_event_fan_out(event_id=event.pk)
    assert [len(b) for b in batches] == [50] * 10 + [20]
    assert StatusDelivery.objects.filter(event=event).count() == 520


@pytest.mark.django_db
def test_recording_an_event_costs_the_same_for_10_or_1000_subscribers(
    page, commander, monkeypatch, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    from incidents.statuspages import tasks

    enqueued = []
    monkeypatch.setattr(tasks.status_event_fan_out, "delay", lambda pk: enqueued.append(pk))
    component = page.components.first()

    def record(n: int) -> int:
        StatusSubscriber.objects.bulk_create(
            [
                StatusSubscriber(
                    page=page, email=f"{n}-{i}@example.test", confirmed_at=timezone.now()
                )
                for i in range(n)
            ]
        )
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx, capture(execute=True):
            subscriptions._on_component_status_changed(
                sender=None,
                component=component,
                old_status="operational",
                new_status="major_outage",
                at=timezone.now(),
            )
        return len(ctx.captured_queries)

    assert record(10) == record(1000)
    assert len(enqueued) == 2  # one fan-out task per event, none per subscriber


# --- Internal pages ----------------------------------------------------------------------


@pytest.mark.django_db
def test_internal_page_subscription_needs_a_reader_and_uses_their_own_address(
    client, smtp, make_team, responder, outsider, django_capture_on_commit_callbacks
):
    team = make_team("Payments", members=[responder])
    page = make_status_page(
        "inside", title="Inside", visibility=StatusPageVisibility.RESTRICTED, teams=[team]
    )
    url = reverse("status:subscribe", kwargs={"slug": page.slug})

    anonymous = client.post(url, {"email": "someone@example.test"})
    assert anonymous.status_code == 302 and "/login" in anonymous["Location"]

    client.force_login(outsider)
    assert client.get(url).status_code == 404
    assert client.post(url, {"email": "olly@example.test"}).status_code == 404

    member = Client(enforce_csrf_checks=True)
    member.force_login(responder)
    assert member.post(url, {"email": "x@example.test"}).status_code == 403  # no CSRF token
    form = member.get(url)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.content.decode())[1]
    with django_capture_on_commit_callbacks(execute=True):
        response = member.post(
            url, {"email": "elsewhere@example.test", "csrfmiddlewaretoken": token}
        )
    assert response.status_code == 200
    [confirmation] = smtp.wait_for(1)
    assert confirmation["To"] == responder.email
    assert not StatusSubscriber.objects.filter(email="elsewhere@example.test").exists()
    assert StatusSubscriber.objects.get().user == responder


@pytest.mark.django_db
def test_a_reader_who_loses_access_receives_nothing_more(
    smtp, make_team, responder, commander, django_capture_on_commit_callbacks
):
    team = make_team("Payments", members=[responder])
    page = make_status_page("inside", visibility=StatusPageVisibility.RESTRICTED, teams=[team])
    component = make_component(page, "Ledger")
    StatusSubscriber.objects.create(
        page=page, email=responder.email, user=responder, confirmed_at=timezone.now()
    )
    team.memberships.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        component_status_set(
            component=component, status=ComponentStatus.MAJOR_OUTAGE, actor=commander
        )
    assert StatusDelivery.objects.get().state == StatusDelivery.State.CANCELLED
    assert smtp.wait_for(1, timeout=1) == []


@pytest.mark.django_db
def test_with_the_broker_down_publishing_works_and_the_beat_sends_later(
    client, smtp, page, commander, monkeypatch, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError

    from incidents.statuspages import tasks

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    _active(page, "ann@example.test")
    with monkeypatch.context() as patched:
        patched.setattr(tasks.status_event_fan_out, "delay", broker_down)
        patched.setattr(tasks.status_confirmation_send, "delay", broker_down)
        with django_capture_on_commit_callbacks(execute=True):
            assert subscribe(client, page, email="bo@example.test").status_code == 200
            component_status_set(
                component=page.components.first(),
                status=ComponentStatus.MAJOR_OUTAGE,
                actor=commander,
            )
    assert smtp.wait_for(1, timeout=0.5) == []
    assert StatusEvent.objects.get().fanned_out_at is None

    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        from incidents.statuspages.tasks import status_tick

        status_tick()
    [notice] = smtp.wait_for(1)
    assert notice["To"] == "ann@example.test"
