"""An outage that starts during planned maintenance and outlasts it must still page:
alerts held back by a window and still firing when it ends are routed then, once."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from incidents.alerting.routing_tasks import alerts_maintenance_release
from incidents.alerting.services import alerts_release_from_maintenance
from incidents.models import Alert, Incident, MaintenanceWindow, TimelineEntry
from oncall.models import Escalation
from tests.incidents.test_alert_intake import (
    make_integration,
    pd,
    post,
    service,  # noqa: F401  (fixture)
    url,
)

pytestmark = pytest.mark.django_db


def window(service, *, minutes=30):  # noqa: F811
    now = timezone.now()
    return MaintenanceWindow.objects.create(
        service=service,
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(minutes=minutes),
        reason="Database upgrade",
    )


def fire(service, key, severity="critical"):  # noqa: F811
    _, token = make_integration(service, "pagerduty")
    assert (
        post(url("pagerduty", token), pd(token, "trigger", key, severity=severity)).status_code
        == 202
    )
    return token


def test_a_still_firing_alert_pages_when_the_window_is_over(service):  # noqa: F811
    window(service)
    fire(service, "db-down")
    held = Alert.objects.get()
    assert held.in_maintenance and held.incident is None
    assert alerts_release_from_maintenance() == 0  # the window is still on
    with time_machine.travel(timezone.now() + timedelta(minutes=31), tick=False):
        assert alerts_maintenance_release() == 1
        assert alerts_maintenance_release() == 0  # once
    released = Alert.objects.get()
    assert not released.in_maintenance and released.incident is not None
    incident = Incident.objects.get()
    assert Escalation.objects.filter(subject_key=f"incident:{incident.pk}").count() == 1
    assert TimelineEntry.objects.filter(incident=incident, kind="alert").exists()


def test_ending_a_window_early_releases_its_alerts(service, commander):  # noqa: F811
    from incidents.alerting.services import maintenance_window_cancel

    held_by = window(service)
    fire(service, "db-down")
    assert Incident.objects.count() == 0
    assert maintenance_window_cancel(window=held_by, actor=commander)
    alerts_maintenance_release()
    assert Incident.objects.count() == 1


def test_resolved_acknowledged_or_quiet_alerts_are_not_released(service, commander):  # noqa: F811
    from incidents.alerting.services import alert_acknowledge

    window(service)
    token = fire(service, "resolved")
    post(url("pagerduty", token), pd(token, "resolve", "resolved"))
    fire(service, "acked")
    alert_acknowledge(alert=Alert.objects.get(dedup_key="acked"), actor=commander)
    fire(service, "warning-only", severity="warning")  # the default records warnings only
    with time_machine.travel(timezone.now() + timedelta(minutes=31), tick=False):
        alerts_maintenance_release()
        alerts_maintenance_release()
    assert Incident.objects.count() == 0
    assert Escalation.objects.count() == 0
