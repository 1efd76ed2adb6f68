"""Every incident URL, for every persona, generated from the URLconf.

A URL added to incidents/urls.py is picked up here automatically; one with a path
argument this file does not know how to fill fails the suite until it is taught.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, get_resolver, reverse

from incidents import paging, services
from incidents.models import TimelineEntry
from tests.factories import make_user as factories_make_user
from tests.factories import severity

pytestmark = pytest.mark.django_db

MISSING_PK = 999_999


def incident_url_names(*, per_incident: bool = False) -> list[str]:
    namespace = get_resolver().namespace_dict["incidents"][1]
    return sorted(
        p.name
        for p in namespace.url_patterns
        if isinstance(p, URLPattern)
        and p.name
        and (not per_incident or "pk" in p.pattern.regex.groupindex)
    )


def build_urls(incident, extra) -> dict[str, str]:
    namespace = get_resolver().namespace_dict["incidents"][1]
    urls = {}
    for pattern in namespace.url_patterns:
        names = set(pattern.pattern.regex.groupindex)
        unknown = names - {"pk", "entry_id", "task_id", "assignment_id", "user_id", "escalation_id"}
        assert not unknown, f"teach the permission matrix how to fill {unknown} in {pattern.name}"
        kwargs = {name: extra[name] for name in names if name != "pk"}
        if "pk" in names:
            kwargs["pk"] = incident.pk if incident else MISSING_PK
        urls[pattern.name] = reverse(f"incidents:{pattern.name}", kwargs=kwargs)
    return urls


@pytest.fixture
def world(commander, responder):
    from tests.factories import make_incident, make_user

    restricted = make_incident(declared_by=commander, title="Secret", restricted=True)
    task = services.task_add(incident=restricted, actor=commander, title="Rotate keys")
    scribe = services.role_assign(
        incident=restricted, actor=commander, user=commander, role="scribe"
    )
    entry = services.note_add(incident=restricted, author=commander, body="found it")
    auditor = make_user("audrey", groups=())
    services.incident_share(incident=restricted, actor=commander, user=auditor, respond=False)
    escalation = paging.incident_page(incident=restricted, actor=commander, user=commander)
    extra = {
        "escalation_id": escalation.pk,
        "entry_id": entry.pk,
        "task_id": task.pk,
        "assignment_id": scribe.pk,
        "user_id": auditor.pk,
    }
    return restricted, extra


def post_data(user_pk: int) -> dict:
    return {
        "to_status": "identified",
        "severity": severity("SEV1").pk,
        "reason": "because",
        "body": "hello",
        "title": "A title",
        "role": "deputy",
        "user": user_pk,
        "done": "1",
        "pinned": "1",
        "restricted": "0",
        "milestone": "impact_started_at",
        "value": "2020-01-01T00:00",
        "details_version": "0",
        "summary": "s",
    }


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_matrix_covers_every_incident_url():
    # A sanity floor: if the URLconf shrank to nothing the matrix would pass vacuously.
    assert {"detail", "timeline_poll", "note", "status", "role_assign"} <= set(incident_url_names())


@pytest.mark.parametrize("name", incident_url_names(per_incident=True))
def test_outsiders_cannot_tell_a_restricted_incident_exists(
    name, world, viewer, responder, outsider
):
    restricted, extra = world
    urls = build_urls(restricted, extra)
    missing = build_urls(None, extra)
    before = TimelineEntry.objects.count()
    for user in (viewer, responder, outsider):
        client = client_for(user)
        for method in ("get", "post"):
            real = getattr(client, method)(urls[name], post_data(user.pk))
            ghost = getattr(client, method)(missing[name], post_data(user.pk))
            assert real.status_code in (404, 405), (user, method, name, real.status_code)
            assert real.status_code == ghost.status_code
            assert b"Secret" not in real.content
    assert TimelineEntry.objects.count() == before


@pytest.mark.parametrize("name", incident_url_names(per_incident=True))
def test_role_holders_and_admins_reach_every_restricted_url(name, world, commander, admin_user):
    restricted, extra = world
    urls = build_urls(restricted, extra)
    for user in (commander, admin_user):
        client = client_for(user)
        response = (
            client.get(urls[name])
            if name in GET_URLS
            else client.post(urls[name], post_data(user.pk))
        )
        assert response.status_code in (200, 204, 302, 422), (user, name, response.status_code)


GET_URLS = {"list", "declare", "detail", "timeline", "timeline_poll"}
VIEWER_MAY_POST = {"note"}  # anyone who can read an incident records findings


@pytest.mark.parametrize("name", incident_url_names())
def test_viewers_read_but_do_not_act_on_open_incidents(name, incident, viewer, commander):
    task = services.task_add(incident=incident, actor=commander, title="t")
    scribe = services.role_assign(incident=incident, actor=commander, user=commander, role="scribe")
    entry = services.note_add(incident=incident, author=commander, body="n")
    reader = factories_make_user("rita", groups=("Viewers",))
    services.incident_share(incident=incident, actor=commander, user=reader, respond=False)
    escalation = paging.incident_page(incident=incident, actor=commander, user=commander)
    urls = build_urls(
        incident,
        {
            "escalation_id": escalation.pk,
            "entry_id": entry.pk,
            "task_id": task.pk,
            "assignment_id": scribe.pk,
            "user_id": reader.pk,
        },
    )
    client = client_for(viewer)
    if name in GET_URLS:
        response = client.get(urls[name])
        expected = {"declare": {403}, "timeline": {302}}.get(name, {200, 204})
        assert response.status_code in expected, (name, response.status_code)
    else:
        before = incident.timeline.count()
        response = client.post(urls[name], post_data(viewer.pk))
        if name in VIEWER_MAY_POST:
            assert response.status_code == 302
        else:
            assert response.status_code == 403, (name, response.status_code)
            assert incident.timeline.count() == before


@pytest.mark.parametrize("name", incident_url_names())
def test_anonymous_visitors_are_sent_to_sign_in(name, world):
    restricted, extra = world
    url = build_urls(restricted, extra)[name]
    response = Client().get(url) if name in GET_URLS else Client().post(url, {})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", sorted(set(incident_url_names()) - GET_URLS))
def test_state_changes_without_a_csrf_token_are_refused(name, world, commander):
    restricted, extra = world
    client = Client(enforce_csrf_checks=True)
    client.force_login(commander)
    before = TimelineEntry.objects.count()
    response = client.post(build_urls(restricted, extra)[name], post_data(commander.pk))
    assert response.status_code == 403
    assert TimelineEntry.objects.count() == before


def test_lists_search_and_counts_hide_restricted_incidents(world, incident, viewer, commander):
    client = client_for(viewer)
    for url in (
        reverse("incidents:list"),
        reverse("incidents:list") + "?q=Secret",
        reverse("incidents:list") + f"?q=INC-{world[0].pk}",
        reverse("home"),
    ):
        body = client.get(url).content.decode()
        assert f'href="/incidents/{world[0].pk}/"' not in body, url
    assert "1 incident" in client.get(reverse("incidents:list")).content.decode()
    body = client_for(commander).get(reverse("incidents:list") + "?q=Secret").content.decode()
    assert f'href="/incidents/{world[0].pk}/"' in body
