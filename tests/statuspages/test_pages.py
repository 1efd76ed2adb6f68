from __future__ import annotations

import pytest
from django.urls import reverse

from incidents.statuspages.models import ComponentStatus, StatusPageVisibility
from incidents.statuspages.services import component_status_set, status_update_publish
from tests.statuspages.conftest import make_component, make_status_page


def test_anyone_reads_a_public_page_and_all_operational_says_so(client, db):
    page = make_status_page("acme", title="Acme status")
    make_component(page, "API", group="Platform")
    make_component(page, "Website")
    response = client.get(reverse("status:page", args=["acme"]))
    assert response.status_code == 200
    text = response.content.decode()
    assert "All systems operational" in text
    assert "API" in text and "Platform" in text and "Website" in text
    assert response["ETag"] and response["Last-Modified"]


def test_the_worst_component_sets_the_overall_status(client, commander, db):
    page = make_status_page("acme")
    api = make_component(page, "API")
    web = make_component(page, "Website")
    component_status_set(
        component=api, status=ComponentStatus.DEGRADED_PERFORMANCE, actor=commander
    )
    component_status_set(component=web, status=ComponentStatus.MAJOR_OUTAGE, actor=commander)
    text = client.get(reverse("status:page", args=["acme"])).content.decode()
    assert "Major system outage" in text
    assert "Degraded performance" in text


def test_the_page_shows_published_updates_under_the_public_title(client, incident, commander):
    page = make_status_page("acme")
    status_update_publish(
        incident=incident,
        pages=[page],
        status="identified",
        message="We found the *cause*.",
        title="Payments are slow",
        actor=commander,
    )
    text = client.get(reverse("status:page", args=["acme"])).content.decode()
    assert "Payments are slow" in text and "<em>cause</em>" in text and "Identified" in text
    assert incident.title not in text


def test_an_unknown_page_is_404(client, db):
    assert client.get(reverse("status:page", args=["nope"])).status_code == 404


@pytest.mark.parametrize("name", ["page", "history", "summary", "badge", "feed"])
def test_internal_pages_send_anonymous_readers_to_sign_in(client, db, name):
    make_status_page("staff", visibility=StatusPageVisibility.INTERNAL)
    response = client.get(reverse(f"status:{name}", args=["staff"]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_internal_pages_are_read_by_anyone_signed_in(client, outsider):
    make_status_page("staff", title="Staff status", visibility=StatusPageVisibility.INTERNAL)
    client.force_login(outsider)
    response = client.get(reverse("status:page", args=["staff"]))
    assert response.status_code == 200 and b"Staff status" in response.content
    assert "private" in response["Cache-Control"]


@pytest.mark.parametrize("name", ["page", "history", "summary", "badge", "feed"])
def test_restricted_pages_are_404_to_people_outside_their_teams(client, viewer, make_team, name):
    team = make_team("Payments")
    make_status_page("payments", visibility=StatusPageVisibility.RESTRICTED, teams=[team])
    client.force_login(viewer)
    assert client.get(reverse(f"status:{name}", args=["payments"])).status_code == 404


def test_restricted_pages_are_read_by_their_teams(client, viewer, make_team):
    team = make_team("Payments", members=[viewer])
    make_status_page(
        "payments",
        title="Payments status",
        visibility=StatusPageVisibility.RESTRICTED,
        teams=[team],
    )
    client.force_login(viewer)
    response = client.get(reverse("status:page", args=["payments"]))
    assert response.status_code == 200 and b"Payments status" in response.content


def test_the_index_lists_only_pages_the_reader_may_open(client, viewer, make_team):
    make_status_page("public-one", title="Public one")
    make_status_page("staff", title="Staff only", visibility=StatusPageVisibility.INTERNAL)
    make_status_page(
        "secret",
        title="Secret team",
        visibility=StatusPageVisibility.RESTRICTED,
        teams=[make_team("Other")],
    )
    anonymous = client.get(reverse("status:index")).content.decode()
    assert "Public one" in anonymous and "Staff only" not in anonymous
    client.force_login(viewer)
    signed_in = client.get(reverse("status:index")).content.decode()
    assert "Staff only" in signed_in and "Secret team" not in signed_in
