"""The alerts page and an alert's own page, as the people using them see them: filters and
search, the live refresh, bulk actions with their permissions, declaring an incident from an
alert, and what the detail page shows (and refuses to show)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from incidents.alerting.parsers import TRIGGER, AlertEvent
from incidents.alerting.services import alerts_ingest, integration_create
from incidents.alerting.tasks import alert_payloads_expire
from incidents.models import Alert, AlertStatus, Incident, Severity, TimelineEntry
from tests.factories import make_incident

pytestmark = pytest.mark.django_db

LIST = reverse("alerts:list")


@pytest.fixture
def checkout(make_service):
    return make_service("Checkout")


@pytest.fixture
def feed(checkout):
    integration, _ = integration_create(service=checkout, kind="generic", name="Prometheus")
    return integration


def fire(integration, key, *, title=None, severity="warning", labels=None, payload=None, **kw):
    event = AlertEvent(
        action=TRIGGER,
        dedup_key=key,
        title=title or f"Alert {key}",
        severity=severity,
        labels=labels or {},
        payload=payload or {"key": key},
        **kw,
    )
    alerts_ingest(integration=integration, events=[event])
    return Alert.objects.get(integration=integration, dedup_key=key, status__in=["firing"])


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def listed(client, query="") -> str:
    response = client.get(LIST + query)
    assert response.status_code == 200
    return response.content.decode()


# --- Filters and search ------------------------------------------------------------------


def test_filters_narrow_the_list(feed, make_service, viewer):
    other_service = make_service("Search")
    other, _ = integration_create(service=other_service, kind="pagerduty", name="Pingdom")
    fire(feed, "disk", title="Disk almost full", severity="warning")
    fire(feed, "cpu", title="CPU saturated", severity="info")
    fire(other, "latency", title="Search latency high", severity="warning")
    Alert.objects.filter(dedup_key="cpu").update(status=AlertStatus.RESOLVED)
    client = signed_in(viewer)

    body = listed(client, "?status=open")
    assert "Disk almost full" in body and "Search latency high" in body
    assert "CPU saturated" not in body
    body = listed(client, "?status=resolved")
    assert "CPU saturated" in body and "Disk almost full" not in body
    body = listed(client, f"?service={other_service.slug}")
    assert "Search latency high" in body and "Disk almost full" not in body
    body = listed(client, "?severity=info")
    assert "CPU saturated" in body and "Disk almost full" not in body
    body = listed(client, f"?integration={other.pk}")
    assert "Search latency high" in body and "CPU saturated" not in body
    body = listed(client, "?service=no-such-service")
    assert "No alerts match." in body
    # A bad value for one filter drops only that filter.
    body = listed(client, "?status=bogus&severity=info")
    assert "CPU saturated" in body and "Disk almost full" not in body


def test_only_unattached_and_the_time_range(feed, viewer, commander):
    incident = make_incident(declared_by=commander, title="Payments outage")
    with time_machine.travel(timezone.now() - timedelta(days=3)):
        old = fire(feed, "old", title="Three days old")
    attached = fire(feed, "att", title="On an incident")
    Alert.objects.filter(pk=attached.pk).update(incident=incident)
    fire(feed, "new", title="Fresh and loose")
    client = signed_in(viewer)
    body = listed(client, "?unattached=on")
    assert "Fresh and loose" in body and "On an incident" not in body
    body = listed(client, "?since=24h")
    assert "Fresh and loose" in body and "Three days old" not in body
    assert old.title in listed(client, "?since=7d")


def test_search_finds_titles_dedup_keys_and_labels(feed, viewer):
    fire(feed, "k-7f3a", title="Checkout 5xx above 5%", labels={"team": "payments"})
    fire(feed, "k-0001", title="Queue backlog", labels={"team": "platform", "queue": "emails"})
    client = signed_in(viewer)
    body = listed(client, "?q=5xx")
    assert "Checkout 5xx" in body and "Queue backlog" not in body
    body = listed(client, "?q=k-0001")
    assert "Queue backlog" in body and "Checkout 5xx" not in body
    body = listed(client, "?q=k-7f")  # the first characters of a long key
    assert "Checkout 5xx" in body and "Queue backlog" not in body
    body = listed(client, "?q=team=payments")
    assert "Checkout 5xx" in body and "Queue backlog" not in body
    body = listed(client, "?q=emails")  # any label value
    assert "Queue backlog" in body and "Checkout 5xx" not in body
    assert "No alerts match." in listed(client, "?q=nothing-like-this")


def test_times_are_in_the_viewers_zone_and_named(feed, make_user):
    tokyo = make_user("kenji", groups=("Viewers",), time_zone="Asia/Tokyo")
    with time_machine.travel("2026-02-03 09:30Z", tick=False):
        fire(feed, "tz", title="Zone check")
    body = listed(signed_in(tokyo))
    assert "3 Feb 18:30 JST" in body
    assert "Times in Asia/Tokyo" in body


def test_the_list_pages_through_many_alerts(feed, viewer):
    for n in range(55):
        fire(feed, f"k{n}")
    client = signed_in(viewer)
    first = listed(client)
    assert "55 alerts" in first and "Page 1 of 2" in first and "Older" in first
    second = listed(client, "?page=2")
    assert second.count('class="row-title"') == 5


def test_the_query_count_stays_flat_as_rows_grow(feed, commander, viewer):
    incident = make_incident(declared_by=commander)
    client = signed_in(viewer)

    def count() -> int:
        client.get(LIST)  # warm the session and permission caches
        with CaptureQueriesContext(connection) as queries:
            assert client.get(LIST).status_code == 200
        return len(queries)

    fire(feed, "a0")
    few = count()
    for n in range(1, 30):
        alert = fire(feed, f"a{n}", labels={"n": str(n)})
        if n % 2:
            Alert.objects.filter(pk=alert.pk).update(incident=incident)
    assert count() == few


# --- The live refresh ---------------------------------------------------------------------


def test_the_refresh_is_a_cheap_204_until_an_alert_arrives(
    feed, viewer, django_capture_on_commit_callbacks
):
    fire(feed, "first", title="First alert")
    client = signed_in(viewer)
    page = client.get(LIST)
    revision = page.context["revision"]
    headers = {"HX-Request": "true", "HX-Target": "alert-results"}
    client.get(LIST, headers=headers)  # warm the caches
    with CaptureQueriesContext(connection) as queries:
        quiet = client.get(LIST + f"?rev={revision}", headers=headers)
    assert quiet.status_code == 204
    assert len(queries) <= 2  # the session's user, at most; nothing about alerts

    with django_capture_on_commit_callbacks(execute=True):
        fire(feed, "second", title="Second alert")
    fresh = client.get(LIST + f"?rev={revision}", headers=headers)
    assert fresh.status_code == 200
    body = fresh.content.decode()
    assert "Second alert" in body and "<html" not in body
    assert f"rev={revision}" not in body and "rev=" in body  # the next poll asks anew


def test_without_the_cache_hint_a_change_shows_within_seconds(feed, viewer):
    """Repeats are counted with a bare UPDATE (no signal): the revision is rebuilt from
    the database when its short-lived cache entry expires."""
    from django.core.cache import cache

    from incidents.alerting.selectors import ALERTS_REVISION_KEY, alerts_revision

    fire(feed, "r", title="Repeating")
    before = alerts_revision()
    with time_machine.travel(timezone.now() + timedelta(seconds=2)):
        fire(feed, "r", title="Repeating")  # a repeat: last_seen moves on
    assert alerts_revision() == before  # still cached
    cache.delete(ALERTS_REVISION_KEY)  # what the TTL does a few seconds later
    assert alerts_revision() != before


def test_watchers_see_an_attach_on_their_next_refresh(feed, viewer, responder, commander):
    incident = make_incident(declared_by=commander, title="Checkout slow")
    alert = fire(feed, "a", title="p99 high")
    watcher = signed_in(viewer)
    revision = watcher.get(LIST).context["revision"]
    headers = {"HX-Request": "true", "HX-Target": "alert-results"}
    assert watcher.get(LIST + f"?rev={revision}", headers=headers).status_code == 204
    bulk(signed_in(responder), "attach", [alert], incident=incident.pk)
    fresh = watcher.get(LIST + f"?rev={revision}", headers=headers)
    assert fresh.status_code == 200 and incident.reference in fresh.content.decode()


def test_a_plain_request_always_gets_the_whole_page(feed, viewer):
    client = signed_in(viewer)
    revision = client.get(LIST).context["revision"]
    response = client.get(LIST + f"?rev={revision}")
    assert response.status_code == 200 and "<html" in response.content.decode()


# --- Acting on alerts ----------------------------------------------------------------------


def bulk(client, action, alerts, **extra):
    data = {"action": action, "alert": [a.pk for a in alerts], "next": LIST + "?status=open"}
    return client.post(reverse("alerts:bulk"), data | extra)


def test_a_responder_acknowledges_and_resolves_several(feed, responder):
    a, b = fire(feed, "a"), fire(feed, "b")
    client = signed_in(responder)
    response = bulk(client, "acknowledge", [a, b])
    assert response.status_code == 302 and response["Location"] == LIST + "?status=open"
    a.refresh_from_db()
    assert a.status == AlertStatus.ACKNOWLEDGED and a.acknowledged_by == responder
    page = client.get(response["Location"]).content.decode()
    assert "2 alerts acknowledged." in page

    bulk(client, "resolve", [a, b])
    assert set(Alert.objects.values_list("status", flat=True)) == {AlertStatus.RESOLVED}


def test_a_stale_action_is_explained_not_an_error(feed, responder):
    alert = fire(feed, "gone", title="Already gone")
    Alert.objects.filter(pk=alert.pk).update(status=AlertStatus.RESOLVED)
    client = signed_in(responder)
    response = bulk(client, "resolve", [alert])
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "“Already gone” was already resolved" in page


def test_nothing_selected_is_a_clear_422(feed, responder):
    fire(feed, "a")
    response = signed_in(responder).post(reverse("alerts:bulk"), {"action": "resolve"})
    assert response.status_code == 422
    assert "Select at least one alert." in response.content.decode()
    assert Alert.objects.get().status == AlertStatus.FIRING


def test_attach_needs_an_incident(feed, responder):
    alert = fire(feed, "a")
    response = bulk(signed_in(responder), "attach", [alert])
    assert response.status_code == 422
    assert "Choose the incident to attach the alerts to." in response.content.decode()


def test_a_responder_attaches_alerts_to_an_incident(feed, responder, commander):
    incident = make_incident(declared_by=commander, title="Checkout slow")
    a, b = fire(feed, "a", title="p99 high"), fire(feed, "b", title="errors up")
    client = signed_in(responder)
    assert incident.pk in {i.pk for i in client.get(LIST).context["attachable"]}
    response = bulk(client, "attach", [a, b], incident=incident.pk)
    assert response.status_code == 302
    assert set(incident.alerts.values_list("pk", flat=True)) == {a.pk, b.pk}
    assert TimelineEntry.objects.filter(incident=incident, data__event="attached").exists()
    again = bulk(client, "attach", [a], incident=incident.pk)
    assert "already on" in client.get(again["Location"]).content.decode()


def test_viewers_cannot_act_and_nothing_changes(feed, viewer):
    alert = fire(feed, "a")
    html = listed(signed_in(viewer))
    # No buttons or checkboxes to be refused by...
    assert "Alert a" in html and "With the selected alerts" not in html
    assert 'name="alert"' not in html
    # ...and a forged post is refused with a reason that fits an unattached alert.
    response = bulk(signed_in(viewer), "acknowledge", [alert])
    assert response.status_code == 403
    assert b"to declare incidents" in response.content
    assert Alert.objects.get().status == AlertStatus.FIRING


def test_responders_get_the_bulk_actions(feed, responder):
    fire(feed, "a")
    html = listed(signed_in(responder))
    assert "With the selected alerts" in html and 'name="alert"' in html


def test_one_forbidden_alert_refuses_the_whole_batch(feed, responder, commander):
    restricted = make_incident(declared_by=commander, restricted=True, title="Secret")
    from incidents.permissions import incident_grant_access

    incident_grant_access(incident=restricted, user=responder, respond=False)
    mine, hidden = fire(feed, "mine"), fire(feed, "hidden")
    Alert.objects.filter(pk=hidden.pk).update(incident=restricted)
    response = bulk(signed_in(responder), "resolve", [mine, hidden])
    assert response.status_code == 403
    assert set(Alert.objects.values_list("status", flat=True)) == {AlertStatus.FIRING}


def test_alerts_one_cannot_see_are_refused_without_saying_what_they_are(feed, responder, commander):
    restricted = make_incident(declared_by=commander, restricted=True, title="Secret")
    alert = fire(feed, "secret", title="Secret alert")
    Alert.objects.filter(pk=alert.pk).update(incident=restricted)
    response = bulk(signed_in(responder), "resolve", [alert])
    assert response.status_code == 422
    assert "Secret alert" not in response.content.decode()
    assert Alert.objects.get().status == AlertStatus.FIRING


def test_attaching_to_an_incident_one_cannot_change_is_refused(feed, responder, commander):
    restricted = make_incident(declared_by=commander, restricted=True)
    alert = fire(feed, "a")
    response = bulk(signed_in(responder), "attach", [alert], incident=restricted.pk)
    assert response.status_code == 422
    assert "Choose an incident you can change." in response.content.decode()
    assert Alert.objects.get().incident is None


def test_a_foreign_next_url_is_not_followed(feed, responder):
    alert = fire(feed, "a")
    response = bulk(signed_in(responder), "resolve", [alert], next="https://evil.example/")
    assert response["Location"] == LIST


# --- Declaring an incident from an alert ---------------------------------------------------


def test_declare_is_prefilled_from_the_alert(feed, responder):
    alert = fire(feed, "crit", title="Payments API down", severity="critical")
    # Routing opened an incident for it; as if it had arrived during maintenance:
    Alert.objects.filter(pk=alert.pk).update(incident=None)
    response = signed_in(responder).get(reverse("alerts:declare", kwargs={"alert_id": alert.pk}))
    form = response.context["form"]
    assert form.initial["title"] == "Payments API down"
    assert form.initial["severity"].name == "SEV1"
    warn = fire(feed, "warn", title="Slow", severity="warning")
    response = signed_in(responder).get(reverse("alerts:declare", kwargs={"alert_id": warn.pk}))
    assert response.context["form"].initial["severity"].name == "SEV3"


def test_declaring_lands_on_the_new_incident(feed, responder, checkout):
    alert = fire(feed, "w", title="Disk filling", severity="warning")
    client = signed_in(responder)
    url = reverse("alerts:declare", kwargs={"alert_id": alert.pk})
    response = client.post(
        url, {"title": "Disk filling on db1", "severity": Severity.objects.get(name="SEV2").pk}
    )
    incident = Incident.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("incidents:detail", kwargs={"pk": incident.pk})
    assert incident.title == "Disk filling on db1" and incident.severity.name == "SEV2"
    assert list(incident.services.all()) == [checkout]
    assert incident.detection_source == "alert"
    alert.refresh_from_db()
    assert alert.incident == incident
    # A second declare (a double click, another tab) does not open a second incident.
    again = client.post(url, {"title": "Again", "severity": Severity.objects.get(name="SEV2").pk})
    assert again.status_code == 302 and Incident.objects.count() == 1


def test_declare_shows_field_errors(feed, responder):
    alert = fire(feed, "w")
    url = reverse("alerts:declare", kwargs={"alert_id": alert.pk})
    response = signed_in(responder).post(url, {"title": "", "severity": ""})
    assert response.status_code == 422
    body = response.content.decode()
    assert "Give the incident a title." in body and "Choose a severity" in body
    assert not Incident.objects.exists()


def test_viewers_cannot_declare_from_an_alert(feed, viewer):
    alert = fire(feed, "w")
    url = reverse("alerts:declare", kwargs={"alert_id": alert.pk})
    assert signed_in(viewer).post(url, {"title": "x", "severity": 1}).status_code == 403
    assert not Incident.objects.exists()


# --- An alert's own page -------------------------------------------------------------------


def test_the_detail_page_shows_what_was_received(feed, viewer):
    alert = fire(
        feed,
        "d1",
        title="Checkout errors",
        labels={"alertname": "CheckoutErrors", "env": "prod"},
        annotations={
            "description": "5xx above 5% for 10 minutes",
            "runbook_url": "https://rb.example/checkout",
        },
        payload={
            "generatorURL": "javascript:alert(1)",
            "links": [
                {"href": "https://grafana.example/d/1", "text": "Dashboard"},
                {"href": "data:text/html,<b>x</b>", "text": "Bad"},
            ],
            "nested": {"value": 42},
        },
    )
    response = signed_in(viewer).get(reverse("alerts:detail", kwargs={"alert_id": alert.pk}))
    body = response.content.decode()
    assert response.status_code == 200
    assert "CheckoutErrors" in body and "5xx above 5% for 10 minutes" in body
    assert 'href="https://grafana.example/d/1"' in body
    assert 'href="https://rb.example/checkout"' in body
    assert 'href="javascript:' not in body and 'href="data:' not in body
    assert "&quot;nested&quot;: {\n    &quot;value&quot;: 42\n  }" in body  # pretty-printed
    assert "First seen" in body and "Times in UTC" in body


def test_the_detail_page_never_shows_a_routing_key(feed, viewer):
    alert = fire(feed, "rk", payload={"routing_key": "s3cret-token-value", "summary": "x"})
    body = signed_in(viewer).get(reverse("alerts:detail", kwargs={"alert_id": alert.pk}))
    assert "s3cret-token-value" not in body.content.decode()


def test_an_alert_on_a_restricted_incident_is_hidden_from_others(feed, viewer, commander):
    restricted = make_incident(declared_by=commander, restricted=True, title="Secret")
    alert = fire(feed, "s", title="Secret alert")
    Alert.objects.filter(pk=alert.pk).update(incident=restricted)
    client = signed_in(viewer)
    assert client.get(reverse("alerts:detail", kwargs={"alert_id": alert.pk})).status_code == 404
    assert "Secret alert" not in listed(client)
    assert (
        signed_in(commander)
        .get(reverse("alerts:detail", kwargs={"alert_id": alert.pk}))
        .status_code
        == 200
    )


def test_the_history_shows_acknowledgement_and_resolution(feed, responder):
    alert = fire(feed, "h", title="History")
    client = signed_in(responder)
    bulk(client, "acknowledge", [alert])
    bulk(client, "resolve", [alert])
    body = client.get(reverse("alerts:detail", kwargs={"alert_id": alert.pk})).content.decode()
    assert "Acknowledged" in body and f"by {responder.display_name}" in body
    assert "Resolved" in body


# --- Payload retention ---------------------------------------------------------------------


def test_old_resolved_payloads_are_cleared_and_the_alert_kept(feed, settings):
    settings.ALERT_PAYLOAD_RETENTION_DAYS = 30
    old = fire(feed, "old", payload={"big": "x" * 100})
    recent = fire(feed, "recent", payload={"big": "y"})
    firing = fire(feed, "firing", payload={"big": "z"})
    now = timezone.now()
    Alert.objects.filter(pk=old.pk).update(status="resolved", resolved_at=now - timedelta(days=31))
    Alert.objects.filter(pk=recent.pk).update(
        status="resolved", resolved_at=now - timedelta(days=29)
    )
    assert alert_payloads_expire() == 1
    assert alert_payloads_expire() == 0
    old.refresh_from_db()
    assert old.payload == {} and old.title == "Alert old"
    assert Alert.objects.get(pk=recent.pk).payload == {"big": "y"}
    assert Alert.objects.get(pk=firing.pk).payload == {"big": "z"}


def test_an_alert_that_arrived_in_maintenance_says_so(feed, checkout, viewer, commander):
    from incidents.models import MaintenanceWindow

    now = timezone.now()
    MaintenanceWindow.objects.create(
        service=checkout,
        starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(hours=1),
        reason="Database upgrade",
        created_by=commander,
    )
    quiet = fire(feed, "during", severity="critical")
    assert quiet.in_maintenance and quiet.incident is None
    client = signed_in(viewer)
    assert "In maintenance" in listed(client)
    detail = client.get(reverse("alerts:detail", args=[quiet.pk])).content.decode()
    assert "In maintenance" in detail and "no incident and no page" in detail
