"""Every alerts and integrations URL, for every persona, generated from the URLconf.

A URL added to incidents/alerting/urls.py is picked up here automatically; one with a path
argument this file does not know how to fill fails the suite until it is taught.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import URLPattern, get_resolver, reverse

from incidents.alerting.heartbeats import heartbeat_create
from incidents.alerting.services import integration_create
from incidents.models import Alert, Integration

pytestmark = pytest.mark.django_db

GET_URLS = {"list", "detail", "declare"}
# Configuration of a service's integrations and heartbeats: responders only.
CONFIG_URLS = {
    "integration_add",
    "integration_rotate",
    "heartbeat_add",
    "heartbeat_pause",
    "heartbeat_delete",
}


def names(namespace: str) -> list[str]:
    patterns = get_resolver().namespace_dict[namespace][1].url_patterns
    return sorted(p.name for p in patterns if isinstance(p, URLPattern) and p.name)


def build(namespace: str, world) -> dict[str, str]:
    urls = {}
    for p in get_resolver().namespace_dict[namespace][1].url_patterns:
        groups = set(p.pattern.regex.groupindex)
        known = {"slug", "integration_id", "token", "alert_id", "heartbeat_id"}
        assert groups <= known, f"teach the matrix {groups}"
        kwargs = {g: world[g] for g in groups}
        urls[p.name] = reverse(f"{namespace}:{p.name}", kwargs=kwargs)
    return urls


@pytest.fixture
def world(make_service):
    service = make_service("Search")
    integration, token = integration_create(service=service, kind="generic")
    monitor, _ = heartbeat_create(service=service, name="Cron", interval_minutes=5)
    body = json.dumps({"title": "Search latency high", "severity": "warning"})
    Client().post(
        reverse("integrations:generic", kwargs={"token": token}),
        body,
        content_type="application/json",
    )
    return {
        "slug": service.slug,
        "integration_id": integration.pk,
        "token": token,
        "alert_id": Alert.objects.get().pk,
        "heartbeat_id": monitor.pk,
    }


def client_for(user=None, **kwargs) -> Client:
    client = Client(**kwargs)
    if user is not None:
        client.force_login(user)
    return client


def test_the_matrix_covers_the_alert_urls():
    routing = {"rules", "rule_delete", "rule_move", "maintenance", "maintenance_cancel"}
    assert set(names("alerts")) == GET_URLS | CONFIG_URLS | {"bulk"} | routing, "teach the matrix"
    assert {"alertmanager", "pagerduty", "generic", "pagerduty_enqueue", "heartbeat"} <= set(
        names("integrations")
    )


@pytest.mark.parametrize("name", names("alerts"))
def test_anonymous_visitors_are_sent_to_sign_in(name, world):
    url = build("alerts", world)[name]
    response = Client().get(url) if name in GET_URLS else Client().post(url, CONFIG_BODY)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def integrations_snapshot():
    return sorted(Integration.objects.values_list("pk", "token_hash", "heartbeat__state"))


CONFIG_BODY = {
    "kind": "generic",
    "name": "Job",
    "interval_minutes": "5",
    "grace_minutes": "1",
    "severity": "error",
}


@pytest.mark.parametrize("name", sorted(CONFIG_URLS))
def test_only_responders_configure_integrations(name, world, viewer, outsider, responder):
    url = build("alerts", world)[name]
    before = integrations_snapshot()
    for user in (viewer, outsider):
        assert client_for(user).post(url, CONFIG_BODY).status_code == 403, user
    assert integrations_snapshot() == before
    assert client_for(responder).post(url, CONFIG_BODY).status_code in (200, 302)
    assert integrations_snapshot() != before


@pytest.mark.parametrize("name", sorted(set(names("alerts")) - {"list", "detail"}))
def test_changes_without_a_csrf_token_are_refused(name, world, responder):
    client = client_for(responder, enforce_csrf_checks=True)
    before = integrations_snapshot()
    body = CONFIG_BODY | {"action": "resolve", "alert": world["alert_id"]}
    assert client.post(build("alerts", world)[name], body).status_code == 403
    assert integrations_snapshot() == before
    assert Alert.objects.get().status == "firing"


@pytest.mark.parametrize("name", sorted(CONFIG_URLS))
def test_unknown_services_are_a_404(name, world, responder):
    world = world | {"slug": "no-such-service", "integration_id": 999_999}
    assert client_for(responder).post(build("alerts", world)[name]).status_code == 404


@pytest.mark.parametrize("name", ["integration_rotate", "heartbeat_pause", "heartbeat_delete"])
def test_another_services_integration_is_a_404(name, world, responder, make_service):
    other = make_service("Other")
    url = build("alerts", world | {"slug": other.slug})[name]
    before = integrations_snapshot()
    assert client_for(responder).post(url).status_code == 404
    assert integrations_snapshot() == before


@pytest.mark.parametrize("name", ["detail", "declare"])
def test_unknown_alerts_are_a_404(name, world, responder):
    url = build("alerts", world | {"alert_id": 999_999})[name]
    assert client_for(responder).get(url).status_code == 404


def test_outsiders_do_not_see_unattached_alerts(world, outsider, viewer):
    urls = build("alerts", world)
    assert client_for(outsider).get(urls["detail"]).status_code == 404
    assert client_for(outsider).get(urls["declare"]).status_code == 404
    assert "Search latency high" not in client_for(outsider).get(urls["list"]).content.decode()
    assert client_for(viewer).get(urls["detail"]).status_code == 200
    assert client_for(viewer).get(urls["declare"]).status_code == 403


def test_everyone_signed_in_reaches_the_alerts_page(world, viewer, outsider, responder):
    for user in (viewer, outsider, responder):
        assert client_for(user).get(reverse("alerts:list")).status_code == 200


@pytest.mark.parametrize("name", sorted(set(names("integrations")) - {"pagerduty_enqueue"}))
def test_intake_needs_the_token_not_a_session_or_csrf(name, world):
    urls = build("integrations", world)
    wrong = build("integrations", world | {"token": "x" * 32})
    body = json.dumps({"title": "t", "severity": "info"})
    client = Client(enforce_csrf_checks=True)
    assert client.post(wrong[name], body, content_type="application/json").status_code == 404
    expected = 202 if name == "generic" else 404  # the token is for a generic integration
    assert client.post(urls[name], body, content_type="application/json").status_code == expected
    assert Alert.objects.count() == (2 if name == "generic" else 1)  # the world has one


def test_a_heartbeat_ping_needs_its_token_not_a_session_or_csrf(world):
    monitor, token = heartbeat_create(
        service=Integration.objects.first().service, name="Ping", interval_minutes=5
    )
    client = Client(enforce_csrf_checks=True)
    url = reverse("integrations:heartbeat", kwargs={"token": token})
    assert client.post(url).status_code == 200
    generic = reverse("integrations:heartbeat", kwargs={"token": world["token"]})
    assert client.post(generic).status_code == 404  # a generic token is not a heartbeat
