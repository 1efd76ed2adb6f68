"""A real Prometheus Alertmanager sends its webhook to Firebreak: the alert opens an
incident, Alertmanager's repeats are deduplicated, and its resolved notification resolves
the alert and says so on the incident's timeline."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from incidents.alerting.services import integration_create
from incidents.models import Alert, Incident
from tests.factories import make_service

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
AMTOOL = shutil.which("amtool")

pytestmark = pytest.mark.skipif(
    not (ALERTMANAGER and AMTOOL), reason="apt-get install -y prometheus-alertmanager"
)


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

    ended = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    amtool(am, *labels, "--annotation=summary=Disk full on db1", f"--end={ended}")
    assert wait_for(lambda: Alert.objects.filter(pk=alert.pk, status="resolved").exists()), (
        "the resolved notification never arrived"
    )
    assert wait_for(
        lambda: incident.timeline.filter(body__contains="alert on this incident has resolved")
    )
