from __future__ import annotations

import os

import pytest

from tests import factories


@pytest.fixture(scope="session", autouse=True)
def _services_are_the_configured_ones(django_db_blocker):
    """In CI the suite must run against PostgreSQL and Redis; fail, never skip, without them."""
    if os.environ.get("FIREBREAK_REQUIRE_SERVICES") != "1":
        return
    from django.conf import settings
    from django.db import connection

    problems = []
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        problems.append("DATABASE_URL and REDIS_URL must both be set")
    if connection.vendor != "postgresql":
        problems.append(f"database is {connection.vendor}, not postgresql")
    try:
        import redis

        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as exc:
        problems.append(f"Redis at {settings.REDIS_URL} is unreachable: {exc}")
    with django_db_blocker.unblock():
        try:
            connection.ensure_connection()
        except Exception as exc:
            problems.append(f"PostgreSQL is unreachable: {exc}")
    if problems:
        pytest.exit("Required services missing: " + "; ".join(problems), returncode=3)


@pytest.fixture
def make_user(db):
    return factories.make_user


@pytest.fixture
def make_team(db):
    return factories.make_team


@pytest.fixture
def make_service(db):
    return factories.make_service


@pytest.fixture
def make_incident(db):
    return factories.make_incident


@pytest.fixture
def commander(db):
    return factories.make_user("ivy", first_name="Ivy", time_zone="Europe/London")


@pytest.fixture
def responder(db):
    return factories.make_user("raj", first_name="Raj")


@pytest.fixture
def viewer(db):
    return factories.make_user("sid", first_name="Sid", groups=("Viewers",))


@pytest.fixture
def outsider(db):
    return factories.make_user("olly", first_name="Olly", groups=())


@pytest.fixture
def admin_user(db):
    return factories.make_user("ada", first_name="Ada", is_staff=True, is_superuser=True)


@pytest.fixture
def incident(commander, make_service):
    return factories.make_incident(declared_by=commander, services_=[make_service("Checkout")])


@pytest.fixture
def restricted_incident(commander):
    return factories.make_incident(
        declared_by=commander, title="Suspicious staff logins", restricted=True
    )


class SmtpInbox:
    """A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives."""

    def __init__(self):
        import threading

        self.messages: list = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes
        from email.policy import default

        with self._lock:
            self.messages.append(message_from_bytes(envelope.content, policy=default))
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 30.0) -> list:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.1)
        return list(self.messages)


@pytest.fixture
def smtp_inbox():
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = SmtpInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    inbox.port = port
    yield inbox
    controller.stop()


@pytest.fixture
def celery_worker_process(transactional_db, smtp_inbox, tmp_path):
    """A real Celery worker process on the configured broker (Redis in CI, the filesystem
    broker on a bare machine), using the test database and the test SMTP server."""
    import subprocess
    import sys
    import uuid
    from pathlib import Path

    from django.db import connection

    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings_test",
        FIREBREAK_DB_NAME=str(connection.settings_dict["NAME"]),
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp_inbox.port),
    )
    root = Path(__file__).resolve().parent.parent
    log = open(tmp_path / "worker.log", "w+")  # noqa: SIM115
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "-Q",
            queue,
            "--hostname",
            f"{queue}@%h",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    worker.queue = queue
    worker.log_path = tmp_path / "worker.log"
    yield worker
    worker.terminate()
    try:
        worker.wait(timeout=15)
    except subprocess.TimeoutExpired:
        worker.kill()
    log.close()


@pytest.fixture(autouse=True)
def _fresh_cache(settings):
    """Each test starts with an empty cache (ids are reused between tests on SQLite).

    On Redis only this suite's keys are removed: the broker shares the server.
    """
    from django.core.cache import cache

    backend = settings.CACHES["default"]["BACKEND"]
    if backend.endswith("RedisCache"):
        import redis

        client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
        prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        # Bursts of alert arrivals are claimed in raw keys by incident id, and ids come
        # round again when the next run recreates the test database.
        keys += list(client.scan_iter(match="firebreak:alert-arrivals:*", count=1000))
        if keys:
            client.delete(*keys)
    else:
        cache.clear()
    from incidents.alerting import services as alerting
    from incidents.alerting.ratelimit import leases_forget

    # What alert intake keeps in this process: claims, token rows, recent triggers, leases.
    alerting._BURST_HELD.clear()
    alerting._TOKEN_ROWS.clear()
    alerting._RECENT_TRIGGERS.clear()
    leases_forget()
    yield


@pytest.fixture(autouse=True)
def _celery_tasks_run_in_process(request):
    """Tasks run eagerly in the test process, except in tests that start a real worker
    (marked `worker`), where they must travel through the real broker."""
    from config.celery import app

    if request.node.get_closest_marker("worker"):
        yield
        return
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False
