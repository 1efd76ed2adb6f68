"""A storm's alert arrivals gathered by a real Celery worker through the real broker: the
burst is kept going while arrivals come, so no intake request writes the backlog."""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from incidents.alerting import routing_tasks
from incidents.models import Alert, AlertArrival, Incident
from tests.factories import make_service
from tests.incidents.test_alert_intake import make_integration, pd, post, url

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL, reason="the worker and the web process share burst claims in Redis"
)


def _named(incident) -> list[int]:
    return [
        pk
        for data in incident.timeline.filter(data__event="fired").values_list("data", flat=True)
        for pk in data["alerts"]
    ]


def _wait_until(check, timeout: float, log) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_worker_gathers_a_storm_and_keeps_its_burst_going(
    celery_worker_process, monkeypatch
):
    task = routing_tasks.alert_arrivals_note_task
    send = task.apply_async
    monkeypatch.setattr(
        task, "apply_async", lambda **kw: send(**kw, queue=celery_worker_process.queue)
    )
    _, token = make_integration(make_service("Search"), "pagerduty")

    def trigger(key):
        response = post(url("pagerduty", token), pd(token, "trigger", key, summary=key.upper()))
        assert response.status_code == 202

    for key in ("a", "b", "c", "d"):  # opens, joins (written at once), then two wait
        trigger(key)
    started = time.monotonic()
    incident = Incident.objects.get()
    assert len(_named(incident)) == 2
    log = celery_worker_process.log_path
    _wait_until(lambda: not AlertArrival.objects.exists(), 15, log)
    assert time.monotonic() - started > 3  # gathered on schedule, not at once

    # Past the end of the first claim: still the same burst, so this one waits too,
    # for the worker's next gathering, instead of being written (with any backlog) here.
    time.sleep(max(0.0, started + 6.5 - time.monotonic()))
    trigger("e")
    assert AlertArrival.objects.filter(alert__dedup_key="e").exists()
    _wait_until(lambda: not AlertArrival.objects.exists(), 15, log)

    named = _named(incident)
    assert sorted(named) == sorted(Alert.objects.values_list("pk", flat=True))  # each once
    fired = incident.timeline.filter(data__event="fired").order_by("pk")
    bodies = list(fired.values_list("body", flat=True))
    assert bodies[-1] == "Critical alert fired and joined this incident: E"
    assert "2 alerts fired and joined this incident: C; D" in bodies
