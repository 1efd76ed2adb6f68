"""Heartbeat monitors: a job pings a secret URL; a missed ping raises an alert on the
service through the ordinary ingest path, and the next ping resolves it."""

from __future__ import annotations

from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from incidents.alerting.heartbeats import heartbeat_create, heartbeat_mark_down
from incidents.alerting.services import token_hash
from incidents.alerting.tasks import heartbeats_sweep
from incidents.models import (
    Alert,
    AlertStatus,
    HeartbeatMonitor,
    HeartbeatState,
    Incident,
    Integration,
    IntegrationKind,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def backup(make_service):
    service = make_service("Backups")
    monitor, token = heartbeat_create(
        service=service, name="Nightly backup", interval_minutes=60, grace_minutes=5
    )
    return monitor, token


def ping_url(token: str) -> str:
    return reverse("integrations:heartbeat", kwargs={"token": token})


def ping(token: str, method: str = "get"):
    return getattr(Client(enforce_csrf_checks=True), method)(ping_url(token))


def reload(monitor) -> HeartbeatMonitor:
    return HeartbeatMonitor.objects.get(pk=monitor.pk)


def test_the_token_is_stored_hashed_and_is_a_heartbeat_integration(backup):
    monitor, token = backup
    integration = monitor.integration
    assert integration.kind == IntegrationKind.HEARTBEAT
    assert integration.token_hash == token_hash(token)
    assert token not in str(Integration.objects.values().get())


@pytest.mark.parametrize("method", ["get", "post", "head"])
def test_a_ping_by_any_method_answers_200_and_marks_it_up(backup, method):
    monitor, token = backup
    with time_machine.travel("2026-05-01 10:00Z", tick=False):
        response = ping(token, method)
    assert response.status_code == 200
    monitor = reload(monitor)
    assert monitor.state == HeartbeatState.UP
    assert monitor.last_ping_at.isoformat() == "2026-05-01T10:00:00+00:00"
    assert monitor.due_at.isoformat() == "2026-05-01T11:05:00+00:00"


def test_a_wrong_token_is_a_404_and_changes_nothing(backup):
    monitor, _ = backup
    assert ping("x" * 32).status_code == 404
    assert reload(monitor).state == HeartbeatState.NEW


def test_another_kinds_token_is_not_a_heartbeat(backup, make_service):
    from incidents.alerting.services import integration_create

    _, token = integration_create(service=make_service(), kind="generic")
    assert ping(token).status_code == 404


def test_other_methods_are_refused(backup):
    _, token = backup
    assert Client().put(ping_url(token)).status_code == 405


def test_a_new_monitor_is_never_missed_before_its_first_ping(backup):
    with time_machine.travel("2026-05-03 10:00Z", tick=False):
        assert heartbeats_sweep() == 0
    assert Alert.objects.count() == 0


def test_a_missed_ping_raises_one_alert_and_the_next_ping_resolves_it(backup):
    monitor, token = backup
    with time_machine.travel("2026-05-01 10:00Z", tick=False):
        ping(token)
    with time_machine.travel("2026-05-01 11:04Z", tick=False):  # within the grace
        assert heartbeats_sweep() == 0
    with time_machine.travel("2026-05-01 11:06Z", tick=False):
        assert heartbeats_sweep() == 1
        assert heartbeats_sweep() == 0  # a second beat raises nothing more
    alert = Alert.objects.get()
    assert alert.status == AlertStatus.FIRING
    assert alert.title == "Missed heartbeat: Nightly backup"
    assert alert.service == monitor.integration.service
    assert alert.labels["alertname"] == "MissedHeartbeat"
    assert "every 60 min" in alert.annotations["description"]
    assert reload(monitor).state == HeartbeatState.DOWN
    # The default severity (error) opens an incident, as any error alert would.
    assert Incident.objects.get().alerts.get() == alert

    with time_machine.travel("2026-05-01 11:30Z", tick=False):
        assert ping(token).status_code == 200
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED
    monitor = reload(monitor)
    assert monitor.state == HeartbeatState.UP
    assert monitor.due_at.isoformat() == "2026-05-01T12:35:00+00:00"


def test_a_second_miss_after_recovery_is_a_new_alert(backup):
    _, token = backup
    for day in ("01", "02"):
        with time_machine.travel(f"2026-05-{day} 10:00Z", tick=False):
            ping(token)
        with time_machine.travel(f"2026-05-{day} 12:00Z", tick=False):
            assert heartbeats_sweep() == 1
    assert Alert.objects.count() == 2
    assert Alert.objects.filter(status=AlertStatus.FIRING).count() == 1


def test_two_beats_claiming_the_same_monitor_raise_it_once(backup):
    monitor, token = backup
    with time_machine.travel("2026-05-01 10:00Z", tick=False):
        ping(token)
    with time_machine.travel("2026-05-01 12:00Z", tick=False):
        results = [heartbeat_mark_down(monitor_id=monitor.pk) for _ in range(3)]
    assert results == [True, False, False]
    assert Alert.objects.count() == 1


def test_a_ping_that_lands_first_wins_over_the_sweep(backup):
    monitor, token = backup
    with time_machine.travel("2026-05-01 10:00Z", tick=False):
        ping(token)
    with time_machine.travel("2026-05-01 12:00Z", tick=False):
        ping(token)
        assert heartbeat_mark_down(monitor_id=monitor.pk) is False
    assert Alert.objects.count() == 0


def test_a_paused_monitor_is_not_missed_and_its_alert_resolves(backup):
    from incidents.alerting.heartbeats import heartbeat_pause

    monitor, token = backup
    with time_machine.travel("2026-05-01 10:00Z", tick=False):
        ping(token)
    with time_machine.travel("2026-05-01 12:00Z", tick=False):
        heartbeats_sweep()
        heartbeat_pause(monitor=reload(monitor))
    assert Alert.objects.get().status == AlertStatus.RESOLVED
    with time_machine.travel("2026-05-09 12:00Z", tick=False):
        assert heartbeats_sweep() == 0
    assert reload(monitor).state == HeartbeatState.PAUSED


def test_create_integration_makes_a_heartbeat_and_prints_its_ping_url(make_service):
    service = make_service("Cron")
    out = StringIO()
    call_command(
        "create_integration",
        service.slug,
        "--kind",
        "heartbeat",
        "--name",
        "Hourly export",
        "--interval",
        "15",
        "--base-url",
        "http://fb.example.test",
        stdout=out,
    )
    url = out.getvalue().strip().splitlines()[-1]
    assert url.startswith("http://fb.example.test/integrations/") and url.endswith("/heartbeat")
    monitor = HeartbeatMonitor.objects.get()
    assert monitor.interval_minutes == 15 and monitor.integration.name == "Hourly export"
    token = url.split("/")[-2]
    assert ping(token).status_code == 200
    assert reload(monitor).state == HeartbeatState.UP


def test_create_integration_refuses_a_zero_interval(make_service):
    from django.core.management.base import CommandError

    service = make_service()
    with pytest.raises(CommandError):
        call_command("create_integration", service.slug, "--kind", "heartbeat", "--interval", "0")
    assert not Integration.objects.exists()


# --- The service page ------------------------------------------------------------------


def service_page(client, service):
    return client.get(reverse("services:service_detail", kwargs={"slug": service.slug}))


def test_a_responder_adds_a_heartbeat_and_sees_its_url_once(make_service, responder):
    service = make_service("Reports")
    client = Client()
    client.force_login(responder)
    response = client.post(
        reverse("alerts:heartbeat_add", kwargs={"slug": service.slug}),
        {
            "name": "Weekly report",
            "interval_minutes": "10080",
            "grace_minutes": "60",
            "severity": "warning",
        },
    )
    assert response.status_code == 302 and response["Location"].endswith("#heartbeats-h")
    response = client.get(response["Location"])
    url = response.context["new_heartbeat_url"]
    assert not response.context.get("new_url")  # shown in the heartbeats section, not above
    assert url.startswith("http://testserver/integrations/") and url.endswith("/heartbeat")
    assert url in response.content.decode()
    monitor = HeartbeatMonitor.objects.get()
    assert (monitor.interval_minutes, monitor.grace_minutes, monitor.severity) == (
        10080,
        60,
        "warning",
    )
    page = service_page(client, service).content.decode()
    assert "Weekly report" in page and url not in page
    assert "Waiting for the first ping" in page


def test_bad_heartbeat_input_shows_field_errors_and_writes_nothing(make_service, responder):
    service = make_service()
    client = Client()
    client.force_login(responder)
    response = client.post(
        reverse("alerts:heartbeat_add", kwargs={"slug": service.slug}),
        {"name": "", "interval_minutes": "0", "grace_minutes": "x", "severity": "loud"},
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert "Name the job that pings" in body
    assert "greater than or equal to 1" in body
    assert not Integration.objects.exists()


def test_pause_resume_and_delete_from_the_service_page(backup, responder):
    monitor, token = backup
    service = monitor.integration.service
    client = Client()
    client.force_login(responder)
    kwargs = {"slug": service.slug, "heartbeat_id": monitor.pk}
    ping(token)
    assert client.post(reverse("alerts:heartbeat_pause", kwargs=kwargs)).status_code == 302
    assert reload(monitor).state == HeartbeatState.PAUSED
    assert "Resume" in service_page(client, service).content.decode()
    client.post(reverse("alerts:heartbeat_pause", kwargs=kwargs))
    assert reload(monitor).state == HeartbeatState.NEW
    assert client.post(reverse("alerts:heartbeat_delete", kwargs=kwargs)).status_code == 302
    assert not HeartbeatMonitor.objects.exists()
    assert not Integration.objects.exists()  # it never raised an alert: nothing to keep
    assert ping(token).status_code == 404


def test_deleting_a_heartbeat_that_raised_alerts_keeps_them_and_kills_the_url(backup, responder):
    monitor, token = backup
    with time_machine.travel("2026-05-01 10:00Z", tick=False):
        ping(token)
    with time_machine.travel("2026-05-01 12:00Z", tick=False):
        heartbeats_sweep()
    client = Client()
    client.force_login(responder)
    kwargs = {"slug": monitor.integration.service.slug, "heartbeat_id": monitor.pk}
    client.post(reverse("alerts:heartbeat_delete", kwargs=kwargs))
    alert = Alert.objects.get()
    assert alert.status == AlertStatus.RESOLVED
    assert alert.integration.name == "Nightly backup (deleted heartbeat)"
    assert ping(token).status_code == 404


def test_viewers_cannot_configure_heartbeats(backup, viewer):
    monitor, _ = backup
    client = Client()
    client.force_login(viewer)
    kwargs = {"slug": monitor.integration.service.slug, "heartbeat_id": monitor.pk}
    assert client.post(reverse("alerts:heartbeat_pause", kwargs=kwargs)).status_code == 403
    assert client.post(reverse("alerts:heartbeat_delete", kwargs=kwargs)).status_code == 403
    assert reload(monitor).state == HeartbeatState.NEW
