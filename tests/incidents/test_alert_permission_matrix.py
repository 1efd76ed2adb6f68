"""Every alerts and integrations URL, for every persona, generated from the URLconf.

A URL added to incidents/alerting/urls.py is picked up here automatically; one with a path
argument this file does not know how to fill fails the suite until it is taught.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import URLPattern, get_resolver, reverse

from incidents.alerting.services import integration_create
from incidents.models import Alert, Integration

pytestmark = pytest.mark.django_db

GET_URLS = {"list"}


def names(namespace: str) -> list[str]:
    patterns = get_resolver().namespace_dict[namespace][1].url_patterns
    return sorted(p.name for p in patterns if isinstance(p, URLPattern) and p.name)


def build(namespace: str, world) -> dict[str, str]:
    urls = {}
    for p in get_resolver().namespace_dict[namespace][1].url_patterns:
        groups = set(p.pattern.regex.groupindex)
        assert groups <= {"slug", "integration_id", "token"}, f"teach the matrix {groups}"
        kwargs = {g: world[g] for g in groups}
        urls[p.name] = reverse(f"{namespace}:{p.name}", kwargs=kwargs)
    return urls


@pytest.fixture
def world(make_service):
    service = make_service("Search")
    integration, token = integration_create(service=service, kind="generic")
    return {"slug": service.slug, "integration_id": integration.pk, "token": token}


def client_for(user=None, **kwargs) -> Client:
    client = Client(**kwargs)
    if user is not None:
        client.force_login(user)
    return client


def test_the_matrix_covers_the_alert_urls():
    assert {"list", "integration_add", "integration_rotate"} <= set(names("alerts"))
    assert {"alertmanager", "pagerduty", "generic", "pagerduty_enqueue"} <= set(
        names("integrations")
    )


@pytest.mark.parametrize("name", names("alerts"))
def test_anonymous_visitors_are_sent_to_sign_in(name, world):
    url = build("alerts", world)[name]
    response = Client().get(url) if name in GET_URLS else Client().post(url, {"kind": "generic"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", sorted(set(names("alerts")) - GET_URLS))
def test_only_responders_configure_integrations(name, world, viewer, outsider, responder):
    url = build("alerts", world)[name]
    hash_before = Integration.objects.get().token_hash
    for user in (viewer, outsider):
        assert client_for(user).post(url, {"kind": "generic"}).status_code == 403, user
    assert Integration.objects.count() == 1
    assert Integration.objects.get().token_hash == hash_before
    assert client_for(responder).post(url, {"kind": "generic"}).status_code == 200


@pytest.mark.parametrize("name", sorted(set(names("alerts")) - GET_URLS))
def test_configuring_without_a_csrf_token_is_refused(name, world, responder):
    client = client_for(responder, enforce_csrf_checks=True)
    assert client.post(build("alerts", world)[name], {"kind": "generic"}).status_code == 403
    assert Integration.objects.count() == 1


@pytest.mark.parametrize("name", names("alerts"))
def test_unknown_services_are_a_404(name, world, responder):
    world = world | {"slug": "no-such-service", "integration_id": 999_999}
    if name in GET_URLS:
        return
    assert client_for(responder).post(build("alerts", world)[name]).status_code == 404


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
    assert Alert.objects.count() == (1 if name == "generic" else 0)
