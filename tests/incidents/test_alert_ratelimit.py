"""The per-integration rate limit: shared through Redis, answered the way each sender
expects, nothing written when refused, and open when its store is down."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache

from incidents.alerting import ratelimit
from incidents.models import Alert, Incident
from tests.incidents.test_alert_intake import (
    am_alert,
    am_body,
    make_integration,
    pd,
    post,
    service,  # noqa: F401  (fixture)
    url,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_counters(settings):
    settings.ALERT_RATE_LIMIT_PER_MINUTE = 3

    redis_url = django_settings.REDIS_URL  # a test may point it elsewhere meanwhile

    def clear():
        ratelimit._script.cache_clear()
        if redis_url:
            import redis

            client = redis.Redis.from_url(redis_url)
            for key in client.scan_iter(f"{ratelimit.KEY_PREFIX}:*"):
                client.delete(key)
        else:
            cache.clear()

    clear()
    yield
    clear()


def test_alertmanager_gets_a_503_with_retry_after_and_nothing_is_written(service):  # noqa: F811
    _, token = make_integration(service, "alertmanager")
    for n in range(3):
        assert post(url("alertmanager", token), am_body(am_alert(f"fp{n}"))).status_code == 200
    alerts, incidents = Alert.objects.count(), Incident.objects.count()
    response = post(url("alertmanager", token), am_body(am_alert("over")))
    assert response.status_code == 503  # Alertmanager retries 5xx; it would drop a 4xx
    assert 1 <= int(response["Retry-After"]) <= 61
    assert response.json()["status"] == "throttle exceeded"
    assert Alert.objects.count() == alerts and Incident.objects.count() == incidents
    assert not Alert.objects.filter(dedup_key="over").exists()


@pytest.mark.parametrize("endpoint", ["pagerduty", "enqueue", "generic"])
def test_pagerduty_and_generic_senders_get_a_429(service, endpoint):  # noqa: F811
    from django.urls import reverse

    kind = "generic" if endpoint == "generic" else "pagerduty"
    _, token = make_integration(service, kind)
    target = (
        reverse("integrations:pagerduty_enqueue") if endpoint == "enqueue" else url(kind, token)
    )

    def body(n):
        if kind == "generic":
            return {"title": f"t{n}", "dedup_key": f"k{n}", "severity": "info"}
        return pd(token, "trigger", f"k{n}", severity="info")

    assert [post(target, body(n)).status_code for n in range(4)] == [202, 202, 202, 429]
    assert Alert.objects.count() == 3
    assert int(post(target, body(9))["Retry-After"]) >= 1


def test_each_integration_has_its_own_limit(service):  # noqa: F811
    _, first = make_integration(service, "pagerduty")
    _, second = make_integration(service, "pagerduty")
    for n in range(3):
        post(url("pagerduty", first), pd(first, "trigger", f"a{n}", severity="info"))
    assert post(url("pagerduty", first), pd(first, "trigger", "a9")).status_code == 429
    assert post(url("pagerduty", second), pd(second, "trigger", "b")).status_code == 202


def test_a_wrong_token_is_not_counted(service):  # noqa: F811
    integration, token = make_integration(service, "pagerduty")
    for _ in range(5):
        assert post(url("pagerduty", "wrong"), pd("wrong", "trigger", "x")).status_code == 404
    assert post(url("pagerduty", token), pd(token, "trigger", "x")).status_code == 202


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="counts in Redis only with REDIS_URL")
def test_the_count_lives_in_redis_where_every_web_process_sees_it(service):  # noqa: F811
    import redis

    integration, token = make_integration(service, "pagerduty")
    post(url("pagerduty", token), pd(token, "trigger", "x"))
    post(url("pagerduty", token), pd(token, "trigger", "x"))
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    keys = list(client.scan_iter(f"{ratelimit.KEY_PREFIX}:{integration.pk}:*"))
    assert len(keys) == 1 and int(client.get(keys[0])) == 2
    assert 60 < client.ttl(keys[0]) <= 120


def test_with_its_store_down_the_limit_lets_alerts_through(service, settings):  # noqa: F811
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    ratelimit._script.cache_clear()
    _, token = make_integration(service, "pagerduty")
    codes = [
        post(url("pagerduty", token), pd(token, "trigger", f"k{n}")).status_code for n in range(5)
    ]
    assert codes == [202] * 5
    assert Alert.objects.count() == 5


def test_a_limit_of_zero_turns_it_off(service, settings):  # noqa: F811
    settings.ALERT_RATE_LIMIT_PER_MINUTE = 0
    _, token = make_integration(service, "pagerduty")
    codes = [
        post(url("pagerduty", token), pd(token, "trigger", f"k{n}")).status_code for n in range(5)
    ]
    assert codes == [202] * 5


def test_the_window_turns_over():
    ratelimit._script.cache_clear()
    at = 1_700_000_000.0 - (1_700_000_000.0 % 60)  # the start of a minute
    verdicts = [
        ratelimit.integration_rate_check(integration_id=987654, now=at + 1) for _ in range(4)
    ]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert verdicts[-1].retry_after == 60
    assert ratelimit.integration_rate_check(integration_id=987654, now=at + 61).allowed
