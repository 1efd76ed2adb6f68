"""The admin for integrations, alerts and heartbeats: useful for looking things up, never a
way to read a token hash or see an alert on a restricted incident one has no access to."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from incidents.alerting.heartbeats import heartbeat_create
from incidents.alerting.parsers import TRIGGER, AlertEvent
from incidents.alerting.services import alerts_ingest, integration_create
from incidents.models import Alert
from tests.factories import make_incident

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(make_service, commander):
    service = make_service("Checkout")
    integration, _ = integration_create(service=service, kind="generic", name="Grafana")
    monitor, _ = heartbeat_create(service=service, name="Nightly backup", interval_minutes=60)
    for key, title in (("open", "Cart errors"), ("secret", "Exfiltration suspected")):
        alerts_ingest(
            integration=integration,
            events=[AlertEvent(action=TRIGGER, dedup_key=key, title=title, severity="info")],
        )
    restricted = make_incident(declared_by=commander, restricted=True, title="Security")
    Alert.objects.filter(dedup_key="secret").update(incident=restricted)
    return {"integration": integration, "monitor": monitor}


@pytest.fixture
def staff(make_user):
    user = make_user("stan", groups=("Viewers",), is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_alert", "view_integration", "view_heartbeatmonitor"]
        )
    )
    return user


def admin_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_integration_page_never_shows_the_token_hash(world, admin_user):
    integration = world["integration"]
    client = admin_client(admin_user)
    for url in (
        reverse("admin:incidents_integration_changelist"),
        reverse("admin:incidents_integration_change", args=[integration.pk]),
    ):
        body = client.get(url).content.decode()
        assert "Grafana" in body
        assert integration.token_hash not in body
        assert "token_hash" not in body


def test_integrations_are_not_added_or_deleted_here(world, admin_user):
    client = admin_client(admin_user)
    assert client.get(reverse("admin:incidents_integration_add")).status_code == 403
    url = reverse("admin:incidents_integration_delete", args=[world["integration"].pk])
    assert client.get(url).status_code == 403


def test_alerts_are_searchable_and_read_only(world, admin_user):
    client = admin_client(admin_user)
    url = reverse("admin:incidents_alert_changelist")
    body = client.get(url, {"q": "cart"}).content.decode()
    assert "Cart errors" in body and "Exfiltration" not in body
    assert client.get(url, {"status__exact": "firing"}).status_code == 200
    alert = Alert.objects.get(dedup_key="open")
    change = client.get(reverse("admin:incidents_alert_change", args=[alert.pk]))
    assert change.status_code == 200
    assert 'name="_save"' not in change.content.decode()
    assert client.get(reverse("admin:incidents_alert_add")).status_code == 403


def test_alerts_on_restricted_incidents_stay_hidden_from_staff_without_access(world, staff):
    client = admin_client(staff)
    body = client.get(reverse("admin:incidents_alert_changelist")).content.decode()
    assert "Cart errors" in body and "Exfiltration suspected" not in body
    secret = Alert.objects.get(dedup_key="secret")
    response = client.get(reverse("admin:incidents_alert_change", args=[secret.pk]))
    assert response.status_code in (302, 404)  # the admin redirects "does not exist"
    assert "Exfiltration" not in response.content.decode()


def test_heartbeats_are_listed_with_their_service_and_state(world, admin_user):
    body = (
        admin_client(admin_user)
        .get(reverse("admin:incidents_heartbeatmonitor_changelist"))
        .content.decode()
    )
    assert "Nightly backup" in body and "Checkout" in body and "Waiting for the first ping" in body
