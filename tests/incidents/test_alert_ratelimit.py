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


# --- Leases: a process takes several requests' worth of the count at once (Redis only) ---

needs_redis = pytest.mark.skipif(
    not django_settings.REDIS_URL, reason="leases are taken from Redis only"
)


@pytest.fixture
def redis_asked(monkeypatch):
    """How many times intake asked Redis for its count (the real scripts still run)."""
    asked = []
    real = ratelimit._reading_script

    def counted(client, marking):
        script = real(client, marking)

        def call(**kwargs):
            asked.append(kwargs["args"][2])  # the units asked for
            return script(**kwargs)

        return call

    monkeypatch.setattr(ratelimit, "_reading_script", counted)
    return asked


@pytest.fixture
def lease_clock(monkeypatch):
    """The clock leases live by, moved by hand."""
    clock = [1000.0]
    monkeypatch.setattr(ratelimit, "_clock", lambda: clock[0])
    return clock


MINUTE = 1_700_000_000.0 - (1_700_000_000.0 % 60)  # the start of a window


@needs_redis
def test_a_steady_sender_asks_redis_once_a_lease_not_once_a_request(
    service,  # noqa: F811
    settings,
    redis_asked,
    lease_clock,
):
    import redis
    import time_machine

    settings.ALERT_RATE_LIMIT_PER_MINUTE = 600  # a lease holds at most 10
    integration, token = make_integration(service, "pagerduty")
    with time_machine.travel(MINUTE + 10, tick=False):  # one window throughout
        codes = [
            post(url("pagerduty", token), pd(token, "trigger", f"k{n}", severity="info"))
            for n in range(40)
        ]
    assert [c.status_code for c in codes] == [202] * 40 and Alert.objects.count() == 40
    # The first request (a token not kept yet) is counted by the plain check; the other 39
    # by leases: 7 round trips, not 39.
    assert redis_asked == [1, 2, 4, 8, 10, 10, 10]
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    key = f"{ratelimit.KEY_PREFIX}:{integration.pk}:{int((MINUTE + 10) // 60)}"
    assert int(client.get(key)) == 46  # all 40, and the 6 the last lease still holds


@needs_redis
@pytest.mark.parametrize("limit", [120, 600, 1800])
def test_a_sender_under_the_limit_is_never_refused(settings, lease_clock, limit):
    """Evenly spread, five sixths of the limit in one minute: all admitted, though leases
    end with units unspent (given back with the next one)."""
    settings.ALERT_RATE_LIMIT_PER_MINUTE = limit
    sent = limit * 5 // 6
    verdicts = []
    for n in range(sent):
        lease_clock[0] = 1000.0 + n * 60 / sent
        verdicts.append(
            ratelimit.integration_rate_check_reading(
                integration_id=515151, now=MINUTE + n * 60 / sent
            )[0]
        )
    assert all(v.allowed for v in verdicts)
    counted = int(
        ratelimit.redis_client().get(f"{ratelimit.KEY_PREFIX}:515151:{int(MINUTE) // 60}")
    )
    most = max(1, min(ratelimit.LEASE_MOST, limit // 60))
    assert sent <= counted <= sent + most  # only the last lease's unspent units on top


@needs_redis
def test_leases_of_two_processes_never_grant_past_the_limit(settings, monkeypatch, lease_clock):
    settings.ALERT_RATE_LIMIT_PER_MINUTE = 120  # a lease holds at most 2
    at = MINUTE + 5  # one window throughout
    first, second = {}, {}  # each web process's own leases

    def check(leases):
        monkeypatch.setattr(ratelimit, "_LEASES", leases)
        return ratelimit.integration_rate_check_reading(integration_id=424242, now=at)[0]

    verdicts = [check(first if n % 2 else second) for n in range(150)]
    allowed = [v.allowed for v in verdicts]
    assert allowed.count(True) == 120  # not one more, and no unit left unspent here
    assert allowed[-20:] == [False] * 20
    assert {v.retry_after for v in verdicts if not v.allowed} == {56}  # the window's end


@needs_redis
def test_a_token_rotated_by_another_process_stops_working_within_a_lease(
    service,  # noqa: F811
    settings,
):
    import time

    from incidents.alerting.services import token_hash

    settings.ALERT_RATE_LIMIT_PER_MINUTE = 6000
    integration, old = make_integration(service, "pagerduty")
    for n in range(5):  # this process keeps the row and holds a lease
        assert post(url("pagerduty", old), pd(old, "trigger", f"k{n}")).status_code == 202
    # Another web process rotates: its save changes the row and the shared generation,
    # and leaves this process's memory alone.
    type(integration).objects.filter(pk=integration.pk).update(token_hash=token_hash("new"))
    ratelimit.integrations_generation_bump()
    time.sleep(ratelimit.LEASE_SECONDS)
    assert post(url("pagerduty", old), pd(old, "trigger", "after")).status_code == 404
    assert not Alert.objects.filter(dedup_key="after").exists()


@needs_redis
def test_a_lease_marks_the_alerts_page_dirty_until_it_ends_and_nothing_pulls_that_back(
    service,  # noqa: F811
    settings,
):
    """A request spending a lease asks Redis nothing, so the lease's mark must reach past
    it: the alerts page trusts no revision computed before the mark plus its grace."""
    from incidents.alerting import selectors

    settings.ALERT_RATE_LIMIT_PER_MINUTE = 6000
    integration, _ = make_integration(service, "pagerduty")
    client = ratelimit.redis_client()
    dirty = selectors.alerts_dirty_redis_key()
    client.delete(dirty)
    seconds, micros = client.time()
    taken_ms = seconds * 1000 + micros // 1000
    verdict, _ = ratelimit.integration_rate_check_reading(integration_id=integration.pk)
    assert verdict.allowed and verdict.marked
    mark = int(client.get(dirty))
    assert taken_ms + ratelimit.LEASE_SECONDS * 1000 <= mark < taken_ms + 1000
    # The plain check (a token not kept yet) marks with the time now: not earlier.
    ratelimit.integration_rate_check(integration_id=integration.pk)
    assert int(client.get(dirty)) == mark
