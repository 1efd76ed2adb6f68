"""A missed heartbeat, found by a real Celery worker process through the real broker."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents.alerting.heartbeats import heartbeat_create
from incidents.alerting.tasks import heartbeats_sweep
from incidents.models import Alert, HeartbeatMonitor, HeartbeatState, Incident
from tests.factories import make_service


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_worker_raises_a_missed_ping_once_and_the_next_ping_resolves_it(
    celery_worker_process,
):
    service = make_service("Backups")
    monitor, token = heartbeat_create(
        service=service, name="Nightly backup", interval_minutes=30, grace_minutes=5
    )
    url = reverse("integrations:heartbeat", kwargs={"token": token})
    with time_machine.travel(timezone.now() - timedelta(hours=2)):
        assert Client().get(url).status_code == 200  # the last ping, two hours ago

    # Three deliveries of the sweep, as a duplicated beat or a re-delivered message would.
    for _ in range(3):
        heartbeats_sweep.apply_async(queue=celery_worker_process.queue)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not Alert.objects.exists():
        time.sleep(0.2)
    time.sleep(2)  # give any duplicate the chance to land
    log = celery_worker_process.log_path.read_text()[-3000:]
    assert Alert.objects.count() == 1, log
    alert = Alert.objects.get()
    assert alert.status == "firing" and alert.title == "Missed heartbeat: Nightly backup"
    assert HeartbeatMonitor.objects.get(pk=monitor.pk).state == HeartbeatState.DOWN
    assert Incident.objects.get().alerts.get() == alert

    assert Client().post(url).status_code == 200
    alert.refresh_from_db()
    assert alert.status == "resolved"
    assert HeartbeatMonitor.objects.get(pk=monitor.pk).state == HeartbeatState.UP
