from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_healthz_is_ok_when_database_cache_and_broker_answer():
    response = Client().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "cache": True,
        "broker": True,
    }


@pytest.mark.django_db
def test_healthz_answers_503_and_names_the_broken_part(settings):
    # A port nothing listens on stands in for a Redis that is down.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"
    response = Client().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["broker"]["ok"] is False
    assert "error" in body["checks"]["broker"]
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_healthz_reports_a_broken_cache(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
        }
    }
    from django.core.cache import caches

    caches._settings = None  # the cache handler reads settings once
    with contextlib.suppress(AttributeError):
        del caches._connections.default
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["cache"]["ok"] is False


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "DJANGO_SETTINGS_MODULE"}}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY="a-long-random-production-key-" + "k3y" * 12,
        ALLOWED_HOSTS="firebreak.example.com",
        FIREBREAK_VAR_DIR=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", FIREBREAK_VAR_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


@pytest.mark.django_db
def test_healthz_keeps_connection_details_out_of_its_answer(settings):
    settings.CELERY_BROKER_URL = "redis://secret-user:hunter2@127.0.0.1:9/0"
    body = Client().get("/healthz").content.decode()
    assert "hunter2" not in body and "secret-user" not in body
    assert "broker unreachable" in body


@pytest.mark.django_db
def test_healthz_answers_head_for_load_balancers():
    assert Client().head("/healthz").status_code == 200


@pytest.mark.django_db
def test_people_sign_in_and_work_while_the_cache_is_down(settings, commander, incident):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
        }
    }
    client = Client()
    response = client.post("/accounts/login/", {"username": "ivy", "password": "pw"})
    assert response.status_code == 302
    page = client.get(f"/incidents/{incident.pk}/")
    assert page.status_code == 200 and b"Checkout is failing" in page.content
    assert client.post("/accounts/logout/").status_code == 302
