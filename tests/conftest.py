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
