"""A real Prometheus Alertmanager sends its webhook to Firebreak: the alert opens an
incident, Alertmanager's repeats are deduplicated, and its resolved notification resolves
the alert and says so on the incident's timeline. Over the rate limit Firebreak answers
503, which Alertmanager retries; once the limit lifts, the retry makes one incident.

Without Alertmanager the tests skip, unless FIREBREAK_REQUIRE_SERVICES=1 (CI): then they
fail."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from incidents.alerting.ratelimit import WINDOW_SECONDS, integration_rate_count
from incidents.alerting.services import integration_create
from incidents.models import Alert, Incident
from tests.factories import make_service

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
AMTOOL = shutil.which("amtool")


@pytest.fixture(autouse=True)
def _alertmanager_installed():
    if ALERTMANAGER and AMTOOL:
        return
    message = "Alertmanager is missing: apt-get install -y prometheus-alertmanager"
    if os.environ.get("FIREBREAK_REQUIRE_SERVICES") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


@pytest.fixture
def alertmanager(tmp_path):
    def start(webhook_url: str) -> str:
        port = free_port()
        config = tmp_path / "alertmanager.yml"
        config.write_text(
            "route:\n"
            "  receiver: firebreak\n"
            "  group_by: [alertname]\n"
            "  group_wait: 1s\n"
            "  group_interval: 1s\n"
            "  repeat_interval: 1h\n"
            "receivers:\n"
            "  - name: firebreak\n"
            "    webhook_configs:\n"
            f"      - url: '{webhook_url}'\n"
            "        send_resolved: true\n"
        )
        log = open(tmp_path / "alertmanager.log", "w+")  # noqa: SIM115
        process = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append((process, log))
        url = f"http://127.0.0.1:{port}"

        def ready():
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                    return response.status == 200
            except OSError:
                return False

        assert wait_for(ready, 20), (tmp_path / "alertmanager.log").read_text()
        return url

    processes: list = []
    yield start
    for process, log in processes:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def amtool(url: str, *args: str) -> None:
    subprocess.run(
        [AMTOOL, f"--alertmanager.url={url}", "alert", "add", *args],
        check=True,
        capture_output=True,
        timeout=20,
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_alertmanager_opens_and_resolves_through_its_webhook(live_server, alertmanager):
    service = make_service("Storage")
    integration, token = integration_create(service=service, kind="alertmanager")
    hook = live_server.url + reverse("integrations:alertmanager", kwargs={"token": token})
    am = alertmanager(hook)
    labels = ["alertname=DiskFull", "severity=critical", "instance=db1"]
    amtool(am, *labels, "--annotation=summary=Disk full on db1")

    alert = wait_for(lambda: Alert.objects.filter(integration=integration).first())
    assert alert is not None, "Alertmanager's notification never arrived"
    assert alert.title == "Disk full on db1" and alert.severity == "critical"
    incident = Incident.objects.get()
    assert incident.detection_source == "alert" and alert.incident_id == incident.pk

    # Alertmanager re-sends the same alert: still one alert, one incident.
    amtool(am, *labels, "--annotation=summary=Disk full on db1")
    time.sleep(2.5)
    assert Alert.objects.count() == 1 and Incident.objects.count() == 1

    # A second alert of the same group joins the incident rather than opening another.
    second = ["alertname=DiskFull", "severity=error", "instance=db2"]
    amtool(am, *second, "--annotation=summary=Disk filling on db2")
    assert wait_for(lambda: Alert.objects.count() == 2), "the second alert never arrived"
    assert Incident.objects.count() == 1
    assert Alert.objects.get(title="Disk filling on db2").incident_id == incident.pk

    ended = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    amtool(am, *labels, "--annotation=summary=Disk full on db1", f"--end={ended}")
    assert wait_for(lambda: Alert.objects.filter(pk=alert.pk, status="resolved").exists()), (
        "the resolved notification never arrived"
    )
    assert wait_for(lambda: incident.timeline.filter(body="Alert resolved: Disk full on db1"))
    assert not incident.timeline.filter(data__event="all_resolved").exists()
    amtool(am, *second, "--annotation=summary=Disk filling on db2", f"--end={ended}")
    assert wait_for(
        lambda: incident.timeline.filter(body="All alerts on this incident have resolved.")
    ), "the second resolution never arrived"
    assert Alert.objects.filter(status="resolved").count() == 2
    assert Incident.objects.count() == 1


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_after_a_spell_of_503s_alertmanagers_retry_makes_one_incident(
    live_server, alertmanager, settings
):
    # The limit counts per clock minute: start early in one, so it cannot lift by itself.
    into_minute = time.time() % WINDOW_SECONDS
    if into_minute > WINDOW_SECONDS - 25:
        time.sleep(WINDOW_SECONDS - into_minute + 0.5)
    settings.ALERT_RATE_LIMIT_PER_MINUTE = 2
    service = make_service("Payments")
    integration, token = integration_create(service=service, kind="alertmanager")
    hook = live_server.url + reverse("integrations:alertmanager", kwargs={"token": token})
    # Spend the minute's allowance on requests that write nothing.
    assert [_post(hook, b"not json") for _ in range(2)] == [400, 400]
    assert _post(hook, b"not json") == 503

    am = alertmanager(hook)
    amtool(am, "alertname=CardDeclines", "severity=critical", "--annotation=summary=Declines")
    # Alertmanager is refused (503) and keeps retrying: each attempt is counted.
    assert wait_for(lambda: integration_rate_count(integration_id=integration.pk) >= 6, 40), (
        "Alertmanager did not retry after the 503"
    )
    assert Alert.objects.count() == 0 and Incident.objects.count() == 0

    settings.ALERT_RATE_LIMIT_PER_MINUTE = 1000  # the spell ends
    alert = wait_for(lambda: Alert.objects.filter(integration=integration).first(), 40)
    assert alert is not None, "Alertmanager gave up instead of retrying"
    time.sleep(3)  # room for any duplicate delivery to arrive
    assert Alert.objects.count() == 1 and Incident.objects.count() == 1
    assert Alert.objects.get().times_seen == 1
    assert alert.incident_id == Incident.objects.get().pk
