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

from incidents.alerting import services
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


def _send_together(url: str, body) -> list[int]:
    """Every sender posts at once; `body` is the body, or makes one for each sender."""
    barrier = threading.Barrier(SENDERS)
    statuses: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def send():
        try:
            data = body() if callable(body) else body
            barrier.wait()
            response = Client().post(url, data, content_type="application/json")
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


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_storm_of_new_alerts_on_a_quiet_service_opens_one_incident_and_loses_none():
    """Fifty different alerts at once, three times over: the first opens the incident
    while the others join it, some by the full path (under the service's opener lock),
    some by the settled INSERT (whose foreign-key checks share-lock the service and the
    incident). Every sender gets its 202; no deadlock; every alert on the one incident."""
    service = make_service("Checkout")
    _, token = integration_create(service=service, kind="pagerduty")
    url = reverse("integrations:pagerduty", kwargs={"token": token})
    keys = iter(range(10_000))

    def body() -> str:
        return json.dumps(
            {
                "event_action": "trigger",
                "dedup_key": f"checkout-{next(keys)}",
                "payload": {"summary": "Checkout 500s", "source": "web", "severity": "error"},
            }
        )

    for _ in range(3):
        assert _send_together(url, body) == [202] * SENDERS
    assert Alert.objects.count() == 3 * SENDERS
    incident = Incident.objects.get()
    assert Alert.objects.filter(incident=incident).count() == 3 * SENDERS
    # Every arrival is named on the timeline exactly once (what is still gathering, once
    # its task has run).
    services.alert_arrivals_note(incident_id=incident.pk)
    named = [
        pk for entry in incident.timeline.filter(data__event="fired") for pk in entry.data["alerts"]
    ]
    assert sorted(named) == sorted(Alert.objects.values_list("pk", flat=True))
