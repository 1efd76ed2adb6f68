"""Who reaches which status-page URL, generated from the URLconf; and restricted incidents
never show anything beyond what was published, on any surface."""

from __future__ import annotations

import json

import pytest
from django.urls import URLPattern, get_resolver, reverse

from incidents.models import IncidentRole
from incidents.services import role_assign
from incidents.statuspages.models import ComponentStatus, StatusPageVisibility
from incidents.statuspages.services import component_status_set, status_update_publish
from tests.statuspages.conftest import make_component, make_status_page

READER_URLS = {"page", "history", "summary", "badge", "feed"}
INCIDENT_ACTIONS = {"incident_publish", "incident_components"}


def status_url_names() -> set[str]:
    namespace = get_resolver().namespace_dict["status"][1]
    return {p.name for p in namespace.url_patterns if isinstance(p, URLPattern) and p.name}


def test_every_status_url_is_covered_by_this_matrix():
    known = READER_URLS | INCIDENT_ACTIONS | {"index", "manage", "incident_compose"}
    # statussubs' subscriber and maintenance URLs are covered by its own tests.
    mine = {
        n
        for n in status_url_names()
        if not n.startswith(("subscri", "unsubscribe", "maintenance", "webhook"))
    }
    assert mine <= known, f"teach the status permission matrix about {mine - known}"


@pytest.mark.parametrize("name", sorted(INCIDENT_ACTIONS))
def test_only_the_commander_or_communications_lead_may_speak(
    client, name, incident, commander, responder, viewer, outsider
):
    make_status_page("acme")
    url = reverse(f"status:{name}", args=[incident.pk])
    data = {"pages": [], "status": "investigating", "message": "x", "action": "publish"}
    client.force_login(outsider)
    assert client.post(url, data).status_code == 404
    client.force_login(viewer)
    assert client.post(url, data).status_code == 403
    client.force_login(responder)  # may respond to the incident, but holds no speaking role
    assert client.post(url, data).status_code == 403
    role_assign(
        incident=incident, actor=commander, user=responder, role=IncidentRole.COMMUNICATIONS_LEAD
    )
    client.force_login(responder)
    assert client.post(url, data).status_code in (200, 302, 422)
    client.logout()
    assert client.post(url, data).status_code == 302  # to sign in


@pytest.mark.parametrize("name", sorted(INCIDENT_ACTIONS))
def test_incident_actions_refuse_get(client, name, incident, commander):
    client.force_login(commander)
    assert client.get(reverse(f"status:{name}", args=[incident.pk])).status_code == 405


def test_the_compose_page_shows_nothing_editable_to_others(client, incident, viewer, commander):
    make_status_page("acme")
    client.force_login(viewer)
    text = client.get(reverse("status:incident_compose", args=[incident.pk])).content.decode()
    assert "<textarea" not in text and "<select" not in text
    client.force_login(commander)
    text = client.get(reverse("status:incident_compose", args=[incident.pk])).content.decode()
    assert 'name="message"' in text


def test_the_compose_page_is_404_for_outsiders_of_a_restricted_incident(
    client, restricted_incident, viewer
):
    client.force_login(viewer)
    url = reverse("status:incident_compose", args=[restricted_incident.pk])
    assert client.get(url).status_code == 404


def test_managing_is_for_administrators(client, viewer, admin_user):
    url = reverse("status:manage")
    assert client.get(url).status_code == 302
    client.force_login(viewer)
    assert client.get(url).status_code == 403
    client.force_login(admin_user)
    assert client.get(url).status_code == 200


def _every_surface(client, slug: str) -> str:
    texts = []
    for name in sorted(READER_URLS):
        response = client.get(reverse(f"status:{name}", args=[slug]))
        assert response.status_code == 200, name
        texts.append(response.content.decode())
    texts.append(client.get(reverse("status:history", args=[slug]) + "?page=2").content.decode())
    return "\n".join(texts)


def test_a_restricted_incident_shows_nothing_until_published(
    client, restricted_incident, commander, make_service
):
    service = make_service("Secret ledger")
    restricted_incident.services.add(service)
    page = make_status_page("acme", title="Acme status")
    component = make_component(page, "Ledger", services=[service])
    # Set from the incident: the component's status is public, the incident is not.
    component_status_set(
        component=component,
        status=ComponentStatus.PARTIAL_OUTAGE,
        actor=commander,
        incident=restricted_incident,
    )
    text = _every_surface(client, "acme")
    for secret in (
        "Suspicious staff logins",
        "SEV",
        "Secret ledger",
        f"INC-{restricted_incident.pk}",
    ):
        assert secret not in text
    summary = json.loads(client.get(reverse("status:summary", args=["acme"])).content)
    assert summary["incidents"] == []
    assert summary["components"][0]["status"] == "partial_outage"


def test_a_restricted_incident_shows_only_what_was_published_to_that_page(
    client, restricted_incident, commander, make_service
):
    acme = make_status_page("acme", title="Acme status")
    internal = make_status_page("staff", visibility=StatusPageVisibility.INTERNAL)
    status_update_publish(
        incident=restricted_incident,
        pages=[internal],
        status="investigating",
        message="Internal only message",
        title="Internal only title",
        actor=commander,
    )
    status_update_publish(
        incident=restricted_incident,
        pages=[acme],
        status="investigating",
        message="Some people must sign in again.",
        title="Sign-in trouble",
        actor=commander,
    )
    restricted_incident.summary = "Attacker used leaked credentials"
    restricted_incident.save()
    text = _every_surface(client, "acme")
    assert "Sign-in trouble" in text and "Some people must sign in again." in text
    for secret in (
        "Suspicious staff logins",
        "leaked credentials",
        "Internal only",
        "SEV",
        commander.username,
        "declared",
    ):
        assert secret not in text, secret


def test_administrators_manage_pages_components_and_templates_in_the_admin(
    client, admin_user, viewer
):
    page = make_status_page("acme")
    make_component(page, "API", group="Platform")
    client.force_login(admin_user)
    for url in (
        reverse("admin:incidents_statuspage_changelist"),
        reverse("admin:incidents_statuspage_add"),
        reverse("admin:incidents_statuspage_change", args=[page.pk]),
        reverse("admin:incidents_statusupdatetemplate_add"),
        reverse("admin:incidents_statusupdate_changelist"),
        reverse("status:manage"),
    ):
        assert client.get(url).status_code == 200, url
    client.force_login(viewer)
    assert client.get(reverse("admin:incidents_statuspage_changelist")).status_code == 302
