"""Routing rules, severity that rises, maintenance windows: what a new alert does."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.alerting.matchers import parse_matchers
from incidents.models import (
    Alert,
    AlertArrival,
    AlertRule,
    Incident,
    MaintenanceWindow,
    Severity,
    TimelineEntry,
)
from oncall.models import Escalation
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


def rule(on, position, matchers="", *, action="open", severity="SEV3", **fields):
    return AlertRule.objects.create(
        service=on,
        position=position,
        matchers=parse_matchers(matchers),
        action=action,
        severity=Severity.objects.get(name=severity) if action == "open" else None,
        **fields,
    )


def am(service, *alerts, group='{}:{alertname="X"}'):  # noqa: F811
    integration = service.integrations.filter(kind="alertmanager").first()
    if integration is None:
        _, token = make_integration(service, "alertmanager")
        service._am_token = token
    response = post(url("alertmanager", service._am_token), am_body(*alerts, group=group))
    assert response.status_code == 200, response.content
    return response


def labelled(fp, severity="critical", **labels):
    alert = am_alert(fp, severity=severity, summary=f"alert {fp}")
    alert["labels"].update(labels)
    return alert


def test_a_matching_rule_opens_an_incident_at_its_severity(service):  # noqa: F811
    rule(service, 0, "labels.team = payments", severity="SEV3")
    am(service, labelled("a", severity="warning", team="payments"))
    incident = Incident.objects.get()
    assert incident.severity.name == "SEV3"
    assert Alert.objects.get().rule.position == 0
    assert Escalation.objects.filter(subject_key=f"incident:{incident.pk}").exists()


def test_a_record_only_rule_keeps_even_a_critical_alert_quiet(service):  # noqa: F811
    rule(service, 0, "labels.env = staging", action="record")
    am(service, labelled("a", env="staging"))
    assert Alert.objects.get().incident is None
    assert Incident.objects.count() == 0 and Escalation.objects.count() == 0


def test_the_first_matching_rule_wins(service):  # noqa: F811
    rule(service, 0, "labels.instance =~ db-[0-9]+", severity="SEV1")
    rule(service, 1, "labels.instance exists", action="record")
    am(service, labelled("db", severity="info", instance="db-12"))
    assert Incident.objects.get().severity.name == "SEV1"
    am(service, labelled("web", severity="critical", instance="web-1"), group="other")
    assert Alert.objects.get(dedup_key="web").incident is None
    assert Incident.objects.count() == 1


def test_alerts_no_rule_matches_get_the_default(service):  # noqa: F811
    rule(service, 0, "labels.team != checkout", action="record")
    am(service, labelled("c", severity="critical", team="checkout"))
    assert Incident.objects.get().severity.name == "SEV1"
    am(service, labelled("w", severity="warning", team="checkout"), group="other")
    assert Alert.objects.get(dedup_key="w").incident is None


def test_rules_match_event_fields_too(service):  # noqa: F811
    rule(service, 0, "integration = pagerduty\nsource = db1", severity="SEV2")
    _, token = make_integration(service, "pagerduty")
    post(url("pagerduty", token), pd(token, "trigger", "k", severity="info"))
    assert Incident.objects.get().severity.name == "SEV2"


def test_grouping_none_opens_an_incident_per_alert(service):  # noqa: F811
    rule(service, 0, "", grouping="none")
    am(service, labelled("a"), labelled("b"))
    assert Incident.objects.count() == 2


def test_grouping_by_group_key_alone_does_not_join_by_time(service):  # noqa: F811
    rule(service, 0, "", grouping="group_key")
    am(service, labelled("a"), group="g1")
    am(service, labelled("b"), group="g1")
    assert Incident.objects.count() == 1
    am(service, labelled("c"), group="g2")
    assert Incident.objects.count() == 2


def test_grouping_by_window_uses_the_rules_own_window(service):  # noqa: F811
    rule(service, 0, "", grouping="window", window_minutes=3)
    am(service, labelled("a"), group="g1")
    am(service, labelled("b"), group="g2")  # another group, within three minutes: joins
    assert Incident.objects.count() == 1
    Alert.objects.update(last_seen=timezone.now() - timedelta(minutes=4))
    am(service, labelled("c"), group="g3")
    assert Incident.objects.count() == 2


def test_joining_alerts_of_one_notification_make_one_timeline_entry(service):  # noqa: F811
    am(service, *[labelled(f"a{n}") for n in range(5)])
    incident = Incident.objects.get()
    entries = incident.timeline.filter(data__event="fired")
    assert entries.count() == 1
    assert entries.get().body.startswith("5 alerts fired and opened this incident")
    assert incident.alerts.count() == 5


def test_auto_resolve_resolves_the_incident_when_its_alerts_resolve(service):  # noqa: F811
    rule(service, 0, "", severity="SEV2", auto_resolve=True)
    am(service, labelled("a"), labelled("b"))
    incident = Incident.objects.get()
    resolved = [labelled(fp) | {"status": "resolved"} for fp in ("a", "b")]
    am(service, *resolved)
    incident.refresh_from_db()
    assert incident.status == "resolved" and incident.resolved_at is not None
    bodies = list(incident.timeline.values_list("body", flat=True))
    assert any(b.startswith("All alerts on this incident have resolved.") for b in bodies)
    assert any("changed the status from Investigating to Resolved" in b for b in bodies)


def test_without_auto_resolve_the_incident_stays_open(service):  # noqa: F811
    rule(service, 0, "", severity="SEV2", auto_resolve=False)
    am(service, labelled("a"))
    am(service, labelled("a") | {"status": "resolved"})
    assert Incident.objects.get().status == "investigating"


def test_a_repeat_whose_severity_rises_routes_once(service):  # noqa: F811
    _, token = make_integration(service, "pagerduty")
    post(url("pagerduty", token), pd(token, "trigger", "disk", severity="warning"))
    assert Incident.objects.count() == 0
    post(url("pagerduty", token), pd(token, "trigger", "disk", severity="critical"))
    alert = Alert.objects.get()
    incident = Incident.objects.get()
    assert alert.incident == incident and alert.severity == "critical"
    assert incident.severity.name == "SEV1"
    before = TimelineEntry.objects.count()
    for severity in ("critical", "warning", "critical"):
        post(url("pagerduty", token), pd(token, "trigger", "disk", severity=severity))
    assert Incident.objects.count() == 1 and Alert.objects.count() == 1
    assert Alert.objects.get().times_seen == 5
    assert TimelineEntry.objects.count() == before


def maintenance(on, *, start=-5, end=60, cancelled=False):
    now = timezone.now()
    return MaintenanceWindow.objects.create(
        service=on,
        starts_at=now + timedelta(minutes=start),
        ends_at=now + timedelta(minutes=end),
        reason="Database upgrade",
        cancelled_at=now if cancelled else None,
    )


def test_alerts_during_maintenance_are_recorded_but_page_nobody(service):  # noqa: F811
    maintenance(service)
    am(service, labelled("a"))
    alert = Alert.objects.get()
    assert alert.in_maintenance and alert.incident is None
    assert Incident.objects.count() == 0 and Escalation.objects.count() == 0
    # A repeat that rises in severity during the window stays quiet too.
    _, token = make_integration(service, "pagerduty")
    post(url("pagerduty", token), pd(token, "trigger", "k", severity="warning"))
    post(url("pagerduty", token), pd(token, "trigger", "k", severity="critical"))
    assert Incident.objects.count() == 0


@pytest.mark.parametrize(
    "window", [dict(start=5, end=60), dict(cancelled=True), dict(start=-60, end=-1)]
)
def test_future_cancelled_or_past_windows_do_not_hold_alerts(service, window):  # noqa: F811
    maintenance(service, **window)
    am(service, labelled("a"))
    assert not Alert.objects.get().in_maintenance
    assert Incident.objects.count() == 1


# --- A burst of arrivals: one timeline entry, not one per alert ------------------------


def _end_burst(incident_id):
    """What ARRIVAL_GATHER_SECONDS of quiet does: the next arrival starts a new burst."""
    from django.conf import settings as django_settings
    from django.core.cache import cache

    from incidents.alerting import ratelimit, services

    key = services.arrivals_claim_key(incident_id)
    services._BURST_HELD.clear()
    if django_settings.REDIS_URL:
        ratelimit._script().registered_client.delete(key)
    else:
        cache.delete(key)


def test_a_burst_of_joining_alerts_is_gathered_into_one_entry(service):  # noqa: F811
    from incidents.alerting.services import alert_arrivals_note

    _, token = make_integration(service, "pagerduty")
    for n in range(5):
        post(url("pagerduty", token), pd(token, "trigger", f"k{n}", summary=f"Errors {n}"))
    incident = Incident.objects.get()
    assert incident.alerts.count() == 5
    fired = list(incident.timeline.filter(data__event="fired").order_by("pk"))
    # The opener and the first to join are written at once; the other three wait.
    assert [e.body for e in fired] == [
        "Critical alert fired and opened this incident: Errors 0",
        "Critical alert fired and joined this incident: Errors 1",
    ]
    assert AlertArrival.objects.count() == 3

    assert alert_arrivals_note(incident_id=incident.pk) == 3  # what the scheduled task runs
    last = incident.timeline.filter(data__event="fired").order_by("-pk").first()
    assert last.body == "3 alerts fired and joined this incident: Errors 2; Errors 3; Errors 4"
    assert sorted(last.data["alerts"]) == sorted(
        Alert.objects.filter(dedup_key__in=["k2", "k3", "k4"]).values_list("pk", flat=True)
    )
    assert not AlertArrival.objects.exists()
    assert alert_arrivals_note(incident_id=incident.pk) == 0  # nothing twice


def _claim_left(key, settings) -> float | None:
    """Seconds the burst's claim has left (None without Redis, whose cache cannot say)."""
    from incidents.alerting import ratelimit

    if not settings.REDIS_URL:
        return None
    return ratelimit._script().registered_client.pttl(key) / 1000


def _shorten_claim(key, seconds, settings) -> None:
    """What time does to a claim, without waiting for it (the gathering's extension is
    what is tested, so not through extend_burst)."""
    from django.core.cache import cache

    from incidents.alerting import ratelimit, services

    services._BURST_HELD.clear()
    if settings.REDIS_URL:
        assert ratelimit._script().registered_client.pexpire(key, int(seconds * 1000))
    else:
        assert cache.touch(key, seconds)


@pytest.fixture
def scheduled(monkeypatch):
    """The gatherings scheduled, in order, instead of sent to the broker."""
    from incidents.alerting import routing_tasks

    calls = []
    monkeypatch.setattr(
        routing_tasks.alert_arrivals_note_task, "apply_async", lambda **kw: calls.append(kw)
    )
    return calls


def test_the_first_joiner_schedules_the_gathering_before_its_claim_ends(
    service,  # noqa: F811
    django_capture_on_commit_callbacks,
    scheduled,
):
    from incidents.alerting import services

    _, token = make_integration(service, "pagerduty")
    post(url("pagerduty", token), pd(token, "trigger", "a"))
    for key in ("b", "c"):
        with django_capture_on_commit_callbacks(execute=True):
            post(url("pagerduty", token), pd(token, "trigger", key))
    incident = Incident.objects.get()
    assert len(scheduled) == 1  # once per burst
    (call,) = scheduled
    assert call["args"] == (incident.pk,) and call["kwargs"]["token"]
    # A second before the claim (taken by "b") ends, wherever in it "b" committed.
    claim = services.ARRIVAL_GATHER_SECONDS + services.BURST_CLAIM_LEAD
    assert claim - services.BURST_CLAIM_LEAD - 1 < call["countdown"] <= claim - 1


def test_a_gathering_keeps_its_burst_going_while_arrivals_come_then_ends_it(
    service,  # noqa: F811
    django_capture_on_commit_callbacks,
    scheduled,
    settings,
):
    """A storm's arrivals are gathered by the scheduled task every few seconds, never
    inside a request: while it finds arrivals it keeps the burst's claim and comes back;
    once it finds none, one last gathering follows the claim's end."""
    from incidents.alerting import services

    _, token = make_integration(service, "pagerduty")
    with django_capture_on_commit_callbacks(execute=True):
        for key in ("a", "b", "c", "d"):
            post(url("pagerduty", token), pd(token, "trigger", key, summary=key.upper()))
    incident = Incident.objects.get()
    assert AlertArrival.objects.count() == 2  # c and d wait
    claim_token = scheduled.pop()["kwargs"]["token"]
    key = services.arrivals_claim_key(incident.pk)

    _shorten_claim(key, 0.3, settings)
    assert services.alert_arrivals_gather(incident_id=incident.pk, token=claim_token) == 2
    assert scheduled.pop() == {
        "args": (incident.pk,),
        "kwargs": {"token": claim_token},
        "countdown": services.ARRIVAL_GATHER_SECONDS,
    }
    left = _claim_left(key, settings)
    assert left is None or left > services.ARRIVAL_GATHER_SECONDS
    time.sleep(0.4)  # the shortened claim would have ended by now
    services._BURST_HELD.clear()  # this process asks the store again
    post(url("pagerduty", token), pd(token, "trigger", "e", summary="E"))
    assert AlertArrival.objects.filter(alert__dedup_key="e").exists()  # same burst: waits

    assert services.alert_arrivals_gather(incident_id=incident.pk, token=claim_token) == 1
    assert scheduled.pop()["countdown"] == services.ARRIVAL_GATHER_SECONDS
    # Quiet: nothing to gather, so the last gathering is set for after the claim ends.
    assert services.alert_arrivals_gather(incident_id=incident.pk, token=claim_token) == 0
    last = scheduled.pop()
    assert last["kwargs"] == {"last": True}
    assert last["countdown"] > services.BURST_CLAIM_LEAD
    # An arrival in the claim's final moments is left to that last gathering...
    post(url("pagerduty", token), pd(token, "trigger", "f", summary="F"))
    assert services.alert_arrivals_gather(incident_id=incident.pk, last=True) == 1
    assert scheduled == []  # ...which schedules nothing more
    named = [
        pk
        for data in incident.timeline.filter(data__event="fired").values_list("data", flat=True)
        for pk in data["alerts"]
    ]
    assert sorted(named) == sorted(Alert.objects.values_list("pk", flat=True))


def test_a_late_gathering_neither_restarts_its_claim_nor_keeps_the_next_bursts(
    service,  # noqa: F811
    django_capture_on_commit_callbacks,
    scheduled,
    settings,
):
    from incidents.alerting import services

    _, token = make_integration(service, "pagerduty")
    with django_capture_on_commit_callbacks(execute=True):
        for key in ("a", "b", "c"):
            post(url("pagerduty", token), pd(token, "trigger", key))
    incident = Incident.objects.get()
    first_token = scheduled.pop()["kwargs"]["token"]
    key = services.arrivals_claim_key(incident.pk)
    _end_burst(incident.pk)  # the worker came late: the claim has ended
    assert services.alert_arrivals_gather(incident_id=incident.pk, token=first_token) == 1
    assert scheduled.pop()["kwargs"] == {"last": True}
    assert _claim_left(key, settings) in (None, -2.0 / 1000)  # not taken again

    # The next arrival starts a new burst (written at once), with a claim of its own...
    with django_capture_on_commit_callbacks(execute=True):
        post(url("pagerduty", token), pd(token, "trigger", "d", summary="D"))
        post(url("pagerduty", token), pd(token, "trigger", "e", summary="E"))
    latest = incident.timeline.filter(data__event="fired").order_by("-pk").first()
    assert latest.body.endswith("joined this incident: D")
    second_token = scheduled.pop()["kwargs"]["token"]
    assert second_token != first_token
    # ...which a gathering of the old burst, finding "e", does not keep alive.
    _shorten_claim(key, 0.3, settings)
    assert services.alert_arrivals_gather(incident_id=incident.pk, token=first_token) == 1
    assert scheduled.pop()["kwargs"] == {"last": True}
    left = _claim_left(key, settings)
    assert left is None or left <= 0.3


def test_the_worker_knows_the_gathering_task():
    import incidents.tasks  # noqa: F401  (what the worker's autodiscovery imports)
    from config.celery import app

    assert "incidents.alerting.routing_tasks.alert_arrivals_note_task" in app.tasks


def test_gathered_arrivals_join_the_next_entry_if_the_task_never_ran(service):  # noqa: F811
    _, token = make_integration(service, "pagerduty")
    for key in ("a", "b", "c"):
        post(url("pagerduty", token), pd(token, "trigger", key, summary=key.upper()))
    incident = Incident.objects.get()
    assert AlertArrival.objects.filter(alert__dedup_key="c").exists()
    _end_burst(incident.pk)
    post(url("pagerduty", token), pd(token, "trigger", "d", summary="D"))
    last = incident.timeline.filter(data__event="fired").order_by("-pk").first()
    assert last.body == "2 alerts fired and joined this incident: C; D"
    # A resolution also writes any waiting arrival first.
    post(url("pagerduty", token), pd(token, "trigger", "e", summary="E"))
    post(url("pagerduty", token), pd(token, "resolve", "a"))
    bodies = list(incident.timeline.order_by("-pk").values_list("body", flat=True)[:2])
    assert bodies == ["Alert resolved: A", "Critical alert fired and joined this incident: E"]


def test_with_redis_down_every_arrival_is_written_at_once(service, settings):  # noqa: F811
    from incidents.alerting import ratelimit

    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    ratelimit._script.cache_clear()
    try:
        _, token = make_integration(service, "pagerduty")
        for key in ("a", "b", "c"):
            response = post(url("pagerduty", token), pd(token, "trigger", key, summary=key))
            assert response.status_code == 202
    finally:
        ratelimit._script.cache_clear()
    incident = Incident.objects.get()
    assert incident.timeline.filter(data__event="fired").count() == 3
    assert not AlertArrival.objects.exists()
