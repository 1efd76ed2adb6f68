"""The PostgreSQL backend's health check (config/postgresql): free when the persistent
connection is quiet, and still catching a connection the server has dropped, so the next
request reconnects instead of failing."""

from __future__ import annotations

import os
import resource
import time

import psycopg
import pytest
from django.db import connection

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's backend"),
    pytest.mark.django_db(transaction=True),  # autocommit, as between requests
]


def _other_connection():
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.connect(**params, autocommit=True)


def _last_statement(pid: int) -> str:
    with _other_connection() as other:
        return other.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[
            0
        ]


def test_a_quiet_connection_is_usable_without_a_round_trip():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'last thing asked'")
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    assert connection.is_usable()
    # Django's own check would have sent SELECT 1; the server saw nothing new.
    assert _last_statement(pid) == "SELECT pg_backend_pid()"


def test_a_quiet_connection_past_descriptor_1024_is_usable_and_kept():
    """A process with many files open (a threaded worker, Celery): select() would refuse
    the socket, and the connection would be replaced before every request."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"this machine allows only {hard} open files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1030)]
    try:
        connection.close()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        assert connection.connection.fileno() > 1024
        assert connection.is_usable()
        assert _last_statement(pid) == "SELECT pg_backend_pid()"
    finally:
        connection.close()
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_connection_the_server_dropped_is_replaced_before_the_next_request():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with _other_connection() as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 5
    while connection.is_usable() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not connection.is_usable()

    # What Django does as a request starts using the database.
    connection.health_check_done = False
    connection.close_if_health_check_failed()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid
