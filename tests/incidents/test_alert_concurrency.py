"""Fifty monitoring senders trigger the same key at once: exactly one alert, one incident
(also when they all raise an open warning to critical).

On PostgreSQL the partial unique index decides and the losers update the winner's row;
on SQLite writers are serialised by IMMEDIATE transactions.
"""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from incidents.alerting.services import integration_create
from incidents.models import Alert, Incident
from tests.factories import make_service

SENDERS = 50


def _body(severity: str) -> str:
    return json.dumps(
        {
            "event_action": "trigger",
            "dedup_key": "disk-full",
            "payload": {"summary": "Disk full", "source": "db1", "severity": severity},
        }
    )


def _send_together(url: str, body: str) -> list[int]:
    barrier = threading.Barrier(SENDERS)
    statuses: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def send():
        try:
            barrier.wait()
            response = Client().post(url, body, content_type="application/json")
            with lock:
                statuses.append(response.status_code)
        except BaseException as exc:  # re-checked below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    return statuses


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_fifty_concurrent_triggers_with_one_key_make_one_alert():
    service = make_service("Storage")
    _, token = integration_create(service=service, kind="pagerduty")
    url = reverse("integrations:pagerduty", kwargs={"token": token})
    assert _send_together(url, _body("critical")) == [202] * SENDERS
    alert = Alert.objects.get()
    assert alert.times_seen == SENDERS
    assert Incident.objects.count() == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_fifty_concurrent_repeats_that_raise_the_severity_open_one_incident():
    service = make_service("Storage")
    _, token = integration_create(service=service, kind="pagerduty")
    url = reverse("integrations:pagerduty", kwargs={"token": token})
    assert Client().post(url, _body("warning"), content_type="application/json").status_code == 202
    assert Incident.objects.count() == 0
    assert _send_together(url, _body("critical")) == [202] * SENDERS
    alert = Alert.objects.get()
    assert alert.times_seen == SENDERS + 1 and alert.severity == "critical"
    assert Incident.objects.count() == 1 and alert.incident_id == Incident.objects.get().pk
