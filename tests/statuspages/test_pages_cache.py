"""Status pages are answered from the cache, revalidate with 304s, and change at once."""

from __future__ import annotations

import pytest
from django.urls import reverse

from incidents.statuspages.models import ComponentStatus, StatusPageVisibility
from incidents.statuspages.services import component_status_set, status_update_publish
from incidents.statuspages.signals import status_page_invalidate
from tests.statuspages.conftest import make_component, make_status_page

READERS = ["page", "history", "summary", "badge", "feed"]


@pytest.mark.parametrize("name", READERS)
def test_a_second_reader_is_served_from_the_cache_without_touching_the_database(
    client, db, name, django_assert_num_queries
):
    page = make_status_page("acme")
    make_component(page, "API")
    url = reverse(f"status:{name}", args=["acme"])
    first = client.get(url)
    with django_assert_num_queries(0):
        second = client.get(url)
    assert second.status_code == 200
    assert second.content == first.content
    assert second["ETag"] == first["ETag"]
    assert "sessionid" not in second.cookies and "csrftoken" not in second.cookies


@pytest.mark.parametrize("name", READERS)
def test_a_conditional_get_is_answered_304(client, db, name):
    make_status_page("acme")
    url = reverse(f"status:{name}", args=["acme"])
    first = client.get(url)
    again = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again.content == b""
    since = client.get(url, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])
    assert since.status_code == 304
    other = client.get(url, HTTP_IF_NONE_MATCH='"something-else"')
    assert other.status_code == 200


def test_a_query_string_is_no_way_around_the_cache(client, db, django_assert_num_queries):
    make_status_page("acme")
    url = reverse("status:page", args=["acme"])
    client.get(url)
    with django_assert_num_queries(0):
        assert client.get(url + "?utm_source=twitter&nocache=7").status_code == 200


def test_head_is_answered_from_the_cache_without_a_body(client, db):
    make_status_page("acme")
    url = reverse("status:page", args=["acme"])
    client.get(url)
    response = client.head(url)
    assert response.status_code == 200 and response.content == b"" and response["ETag"]


def test_a_published_update_is_visible_on_the_next_request(
    client, incident, commander, django_capture_on_commit_callbacks
):
    page = make_status_page("acme")
    url = reverse("status:page", args=["acme"])
    summary_url = reverse("status:summary", args=["acme"])
    before = client.get(url)
    client.get(summary_url)
    with django_capture_on_commit_callbacks(execute=True):
        status_update_publish(
            incident=incident,
            pages=[page],
            status="investigating",
            message="Fresh news",
            title="Checkout trouble",
            actor=commander,
        )
    after = client.get(url, HTTP_IF_NONE_MATCH=before["ETag"])
    assert after.status_code == 200 and b"Fresh news" in after.content
    assert after["ETag"] != before["ETag"]
    assert client.get(summary_url).json()["incidents"][0]["name"] == "Checkout trouble"


def test_a_component_change_is_visible_on_the_next_request(
    client, commander, db, django_capture_on_commit_callbacks
):
    page = make_status_page("acme")
    api = make_component(page, "API")
    badge_url = reverse("status:badge", args=["acme"])
    assert b"All systems operational" in client.get(badge_url).content
    with django_capture_on_commit_callbacks(execute=True):
        component_status_set(component=api, status=ComponentStatus.MAJOR_OUTAGE, actor=commander)
    assert b"Major system outage" in client.get(badge_url).content
    assert client.get(reverse("status:summary", args=["acme"])).json()["status"] == {
        "indicator": "critical",
        "description": "Major system outage",
    }


def test_invalidating_a_page_drops_every_cached_rendering(client, db):
    page = make_status_page("acme", title="Old title")
    for name in READERS:
        client.get(reverse(f"status:{name}", args=["acme"]))
    page.title = "New title"
    page.save()
    status_page_invalidate(page=page)
    for name in READERS:
        assert b"New title" in client.get(reverse(f"status:{name}", args=["acme"])).content, name


def test_a_cached_internal_page_is_never_served_to_anonymous_readers(client, viewer):
    make_status_page("staff", title="Staff", visibility=StatusPageVisibility.INTERNAL)
    url = reverse("status:page", args=["staff"])
    client.force_login(viewer)
    assert client.get(url).status_code == 200  # now in the cache
    client.logout()
    assert client.get(url).status_code == 302


def test_a_cached_restricted_page_is_never_served_to_outsiders(client, viewer, outsider, make_team):
    team = make_team("Payments", members=[viewer])
    make_status_page("pay", visibility=StatusPageVisibility.RESTRICTED, teams=[team])
    url = reverse("status:summary", args=["pay"])
    client.force_login(viewer)
    assert client.get(url).status_code == 200
    client.force_login(outsider)
    assert client.get(url).status_code == 404


def test_rendering_a_page_takes_the_same_queries_however_much_is_on_it(client, incident, commander):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def render_count(page) -> int:
        status_page_invalidate(page=page)
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("status:page", args=[page.slug])).status_code == 200
        return len(ctx)

    small = make_status_page("small")
    make_component(small, "One", group="G")
    status_update_publish(
        incident=incident, pages=[small], status="investigating", message="m", title="t",
        actor=commander,
    )  # fmt: skip
    big = make_status_page("big")
    components = [make_component(big, f"C{n}", group=f"G{n % 4}") for n in range(30)]
    for component in components[:10]:
        component_status_set(component=component, status="partial_outage", actor=commander)
        component_status_set(component=component, status="operational", actor=commander)
    for n in range(8):
        status_update_publish(
            incident=incident, pages=[big], status="investigating", message=f"m{n}",
            title="t", actor=commander,
        )  # fmt: skip
    small_count = render_count(small)
    assert small_count > 0  # really rendered, not answered from the cache
    assert render_count(big) == small_count
