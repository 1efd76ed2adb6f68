"""Every postmortems URL, for every persona, generated from the URLconf.

A URL added to postmortems/urls.py is picked up automatically; one with a path argument
this file does not know how to fill fails the suite until it is taught.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, get_resolver, reverse

from incidents.models import TimelineEntry
from postmortems import services
from postmortems.models import ActionItem, PostmortemExport, ReviewComment, SectionRevision

pytestmark = pytest.mark.django_db

MISSING = 999_999
OBJECT_ARGS = {"pk", "incident_pk", "item_id", "comment_id", "export_id", "key"}


def patterns() -> list[URLPattern]:
    namespace = get_resolver().namespace_dict["postmortems"][1]
    return [p for p in namespace.url_patterns if isinstance(p, URLPattern) and p.name]


def names(*, per_object: bool) -> list[str]:
    return sorted(p.name for p in patterns() if bool(set(p.pattern.regex.groupindex)) == per_object)


def build_urls(world, *, missing: bool = False) -> dict[str, str]:
    urls = {}
    for pattern in patterns():
        args = set(pattern.pattern.regex.groupindex)
        unknown = args - OBJECT_ARGS
        assert not unknown, f"teach the matrix how to fill {unknown} in {pattern.name}"
        kwargs = {}
        for name in args:
            kwargs[name] = world[name] if (name == "key" or not missing) else MISSING
        if missing and "item_id" in args and "pk" not in args:
            kwargs["item_id"] = MISSING
        urls[pattern.name] = reverse(f"postmortems:{pattern.name}", kwargs=kwargs)
    return urls


@pytest.fixture
def world(commander, make_resolved_incident):
    """A published postmortem of a restricted incident, with everything hanging off it."""
    incident = make_resolved_incident(declared_by=commander, restricted=True, title="Secret")
    postmortem = services.postmortem_create(incident=incident, actor=commander)
    services.postmortem_submit_for_review(
        postmortem=postmortem, actor=commander, reviewers=[commander]
    )
    comment = services.postmortem_comment_add(
        postmortem=postmortem, actor=commander, body="hm", section_key="summary"
    )
    item = services.action_item_create(
        incident=incident, actor=commander, title="Secret fix", item_type="corrective"
    )
    services.postmortem_approve(postmortem=postmortem, actor=commander)
    services.postmortem_publish(postmortem=postmortem, actor=commander)
    postmortem.refresh_from_db()
    export = services.postmortem_export_request(postmortem=postmortem, actor=commander)
    pdf, pages = b"%PDF-1.7 secret", 1
    services.postmortem_export_claim(export_id=export.pk)
    services.postmortem_export_finish(export_id=export.pk, pdf=pdf, pages=pages)
    return {
        "pk": postmortem.pk,
        "incident_pk": incident.pk,
        "item_id": item.pk,
        "comment_id": comment.pk,
        "export_id": export.pk,
        "key": "summary",
    }


def post_data(user_pk: int) -> dict:
    return {
        "body": "hello",
        "base_version": "0",
        "title": "A title",
        "item_type": "corrective",
        "priority": "2",
        "status": "done",
        "reason": "because",
        "reviewers": [user_pk],
        "occurred_at": "2024-01-01T00:00",
        "entries": [],
    }


def counts():
    return (
        TimelineEntry.objects.count(),
        ActionItem.objects.count(),
        ReviewComment.objects.count(),
        SectionRevision.objects.count(),
        PostmortemExport.objects.count(),
    )


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_matrix_covers_every_postmortem_url():
    assert {"detail", "section_save", "export_download", "action_item_detail", "create"} <= set(
        names(per_object=True)
    )
    assert {"list", "action_items", "action_items_csv", "my_action_items"} <= set(
        names(per_object=False)
    )


@pytest.mark.parametrize("name", names(per_object=True))
def test_outsiders_cannot_tell_a_restricted_postmortem_exists(
    name, world, viewer, responder, outsider
):
    urls = build_urls(world)
    missing = build_urls(world, missing=True)
    before = counts()
    for user in (viewer, responder, outsider):
        client = client_for(user)
        for method in ("get", "post"):
            real = getattr(client, method)(urls[name], post_data(user.pk))
            ghost = getattr(client, method)(missing[name], post_data(user.pk))
            assert real.status_code in (404, 405), (user, method, name, real.status_code)
            assert real.status_code == ghost.status_code
            assert b"Secret" not in real.content
            assert b"%PDF" not in real.content
    assert counts() == before


@pytest.mark.parametrize("name", names(per_object=False))
def test_lists_counts_and_csv_hide_restricted_postmortems(name, world, viewer, outsider):
    for user in (viewer, outsider):
        response = client_for(user).get(reverse(f"postmortems:{name}"), {"status": ""})
        assert response.status_code == 200
        content = b"".join(response.streaming_content) if response.streaming else response.content
        assert b"Secret" not in content


@pytest.mark.parametrize("name", names(per_object=True))
def test_role_holders_and_admins_reach_every_restricted_url(name, world, commander, admin_user):
    urls = build_urls(world)
    for user in (commander, admin_user):
        client = client_for(user)
        get = client.get(urls[name])
        post = client.post(urls[name], post_data(user.pk))
        assert 404 not in (get.status_code, post.status_code), (user, name, get, post)
        assert get.status_code < 500 and post.status_code < 500


def test_anonymous_visitors_are_sent_to_log_in(world):
    client = Client()
    for name, url in build_urls(world).items():
        response = client.get(url)
        assert response.status_code in (302, 405), name
        if response.status_code == 302:
            assert "/accounts/login/" in response["Location"]


def test_the_pdf_of_a_restricted_postmortem_is_refused_to_outsiders_but_served_to_the_team(
    world, commander, viewer
):
    url = reverse("postmortems:export_download", args=[world["pk"]])
    assert client_for(viewer).get(url).status_code == 404
    response = client_for(commander).get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert "attachment" in response["Content-Disposition"]
