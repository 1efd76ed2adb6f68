"""The settled path: on PostgreSQL a trigger that needs no decision beyond its INSERT (the
common new alert joining an open incident, a warning recorded on a quiet service) is one
prepared statement with no transaction around it. Everything that needs deciding (an
incident to open, maintenance, rules) writes nothing there and takes the full path."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from incidents.alerting import selectors, services
from incidents.alerting.parsers import parse_pagerduty
from incidents.alerting.services import integration_create
from incidents.models import (
    Alert,
    AlertArrival,
    AlertRule,
    Incident,
    MaintenanceWindow,
    TimelineEntry,
)
from tests.factories import make_incident, make_service, make_user

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the settled path is PostgreSQL's"
)


def body(key, *, severity="error", summary=None):
    return json.dumps(
        {
            "event_action": "trigger",
            "dedup_key": key,
            "payload": {
                "summary": summary or f"Alert {key}",
                "source": "prom",
                "severity": severity,
            },
        }
    )


def send(token, key, **kwargs):
    return Client().post(
        f"/integrations/{token}/pagerduty", body(key, **kwargs), content_type="application/json"
    )


def event(key, **kwargs):
    return parse_pagerduty(body(key, **kwargs).encode())[0]


def fired_entries(incident):
    return list(incident.timeline.filter(data__event="fired").order_by("pk"))


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_burst_joining_an_open_incident_is_one_statement_each_and_one_entry_for_the_rest(
    monkeypatch,
):
    # One burst however slowly this machine sends the four alerts.
    monkeypatch.setattr(services, "ARRIVAL_GATHER_SECONDS", 60)
    service = make_service("Checkout")
    _, token = integration_create(service=service, kind="pagerduty")
    assert send(token, "first", summary="Checkout 500s").status_code == 202  # opens
    incident = Incident.objects.get()
    assert send(token, "second", summary="Latency").status_code == 202  # first of its burst
    assert [e.body for e in fired_entries(incident)] == [
        "Error alert fired and opened this incident: Checkout 500s",
        "Error alert fired and joined this incident: Latency",
    ]

    # The rest of the burst: one statement each (no BEGIN, no COMMIT, no other query),
    # committed at once, attached to the incident and waiting to be gathered.
    for key in ("third", "fourth"):
        with CaptureQueriesContext(connection) as queries:
            assert send(token, key, summary=key.title()).status_code == 202
        assert len(queries.captured_queries) == 1, [q["sql"][:80] for q in queries]
        assert queries.captured_queries[0]["sql"].startswith("WITH j AS MATERIALIZED")
    assert set(AlertArrival.objects.values_list("alert__dedup_key", flat=True)) == {
        "third",
        "fourth",
    }
    assert Alert.objects.filter(incident=incident).count() == 4
    assert len(fired_entries(incident)) == 2

    assert services.alert_arrivals_note(incident_id=incident.pk) == 2  # what the task runs
    entries = fired_entries(incident)
    assert len(entries) == 3
    assert entries[-1].body.startswith("2 alerts fired and joined this incident")
    assert not AlertArrival.objects.exists()
    assert Incident.objects.count() == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_alerts_page_sees_a_settled_alert_at_once():
    service = make_service("Checkout")
    _, token = integration_create(service=service, kind="pagerduty")
    send(token, "first")
    send(token, "second")
    before = selectors.alerts_revision()
    assert selectors.alerts_revision() == before  # kept between polls
    assert send(token, "third").status_code == 202  # settled, not first of its burst
    assert selectors.alerts_revision() != before
    warning = selectors.alerts_revision()
    assert send(token, "disk", severity="warning").status_code == 202  # recorded, settled
    assert selectors.alerts_revision() != warning


@pytest.mark.django_db
def test_what_needs_deciding_writes_nothing_on_the_settled_path():
    service = make_service("Checkout")
    integration, _ = integration_create(service=service, kind="pagerduty")
    # No open incident to join: opening one is the full path's.
    assert services._ingest_settled(integration, event("a")) is None
    assert not Alert.objects.exists()

    # A quiet warning is settled: recorded, no incident.
    result = services._ingest_settled(integration, event("w", severity="warning"))
    assert result.created and Alert.objects.get(pk=result.alert_id).incident_id is None
    assert Alert.objects.get().dedup_key == "w"

    # Maintenance now, or any rule on the service: decided under a transaction.
    now = timezone.now()
    window = MaintenanceWindow.objects.create(
        service=service,
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
        reason="Database upgrade",
    )
    assert services._ingest_settled(integration, event("m", severity="warning")) is None
    window.delete()
    AlertRule.objects.create(service=service, name="Everything", position=1)
    assert services._ingest_settled(integration, event("r", severity="warning")) is None
    assert list(Alert.objects.values_list("dedup_key", flat=True)) == ["w"]


@pytest.mark.django_db
def test_a_repeat_is_counted_on_the_settled_path_and_a_rising_one_is_not():
    service = make_service("Checkout")
    integration, _ = integration_create(service=service, kind="pagerduty")
    services._ingest_settled(integration, event("cpu", severity="warning"))
    again = services._ingest_settled(integration, event("cpu", severity="warning"))
    assert again is not None and not again.created
    assert Alert.objects.get().times_seen == 2
    # Rising to critical with no incident: it may now page, so the full path routes it.
    assert services._ingest_settled(integration, event("cpu", severity="critical")) is None
    assert Alert.objects.get().times_seen == 2


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_storms_repeats_commit_without_waiting_for_the_disk_and_alerts_still_do():
    """A repeat's count commits asynchronously (a storm's repeats queue on one row's lock
    for as long as each commit takes); the setting is its own statement's, so the next
    new alert on the same connection commits durably again."""
    service = make_service("Checkout")
    _, token = integration_create(service=service, kind="pagerduty")
    for _ in range(3):
        assert send(token, "cpu", severity="critical").status_code == 202
    assert Alert.objects.get().times_seen == 3
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s "
            "AND statement LIKE %s",
            ["UPDATE incidents_alert SET times_seen%", "%set_config('synchronous_commit'%"],
        )
        assert cursor.fetchone()[0] == 1  # the repeats went by the unhurried statement
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
    assert send(token, "disk", severity="critical").status_code == 202
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_intake_statement_is_prepared_once_per_connection(settings):
    service = make_service("Checkout")
    _, token = integration_create(service=service, kind="pagerduty")
    send(token, "first")

    def prepared_intake():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                ["%FROM j WHERE NOT j.m AND NOT j.r%"],  # the settled INSERT
            )
            return cursor.fetchone()[0]

    for key in ("a", "b", "c"):
        send(token, key)
    assert prepared_intake() == 1  # three alerts, one plan

    settings.DB_PREPARED_STATEMENTS = False
    connection.close()  # a new connection has none prepared, and prepares none
    for key in ("d", "e"):
        assert send(token, key).status_code == 202
    assert prepared_intake() == 0
    assert Alert.objects.filter(incident__isnull=False).count() == 6
    assert TimelineEntry.objects.filter(data__event="fired").exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_alertmanager_intake_plans_its_statement_once_not_for_every_alert():
    """PostgreSQL chose to plan the Alertmanager intake statement afresh for each alert
    (two fifths of its time on the server); it keeps one generic plan instead."""
    service = make_service("Checkout")
    _, token = integration_create(service=service, kind="alertmanager")

    def notify(instance):
        alert = {
            "status": "firing",
            "labels": {"alertname": "HighLatency", "instance": instance, "severity": "critical"},
            "annotations": {"summary": f"Latency on {instance}"},
            "startsAt": "2026-11-22T00:00:00Z",
            "fingerprint": instance,
        }
        notification = {
            "version": "4",
            "groupKey": '{}:{alertname="HighLatency"}',
            "status": "firing",
            "alerts": [alert],
        }
        response = Client().post(
            f"/integrations/{token}/alertmanager",
            json.dumps(notification),
            content_type="application/json",
        )
        assert response.status_code == 200, response.content

    for n in range(10):
        notify(f"web-{n}")  # the first opens the incident (full path), the rest join it
    assert Alert.objects.filter(incident=Incident.objects.get()).count() == 10
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE %s",
            ["%FROM j WHERE NOT j.m AND NOT j.r%"],  # the settled INSERT
        )
        generic, custom = cursor.fetchone()
    assert (generic, custom) == (10, 0)  # the first, finding no incident, inserted nothing


def _alert_rows_in_plan(plan: dict) -> tuple[list[dict], int]:
    """An EXPLAIN ANALYZE plan's scans of the alert table, and the alert rows they read."""

    def scans(node):
        yield node
        for child in node.get("Plans", []):
            yield from scans(child)

    alert_scans = [n for n in scans(plan) if n.get("Relation Name") == "incidents_alert"]
    read = sum(
        (n["Actual Rows"] + n.get("Rows Removed by Filter", 0)) * n["Actual Loops"]
        for n in alert_scans
    )
    return alert_scans, read


@pytest.mark.django_db
def test_a_flood_of_recorded_warnings_is_not_read_by_the_next_paging_alerts_lookup():
    """The window lookup that finds an incident to join reads alerts in an incident only:
    two thousand recorded-only warnings in the window cost the next paging alert nothing."""
    service = make_service("Checkout")
    integration, token = integration_create(service=service, kind="pagerduty")
    send(token, "page", severity="error")  # opens the incident
    now = timezone.now()
    Alert.objects.bulk_create(
        Alert(
            integration=integration,
            service=service,
            dedup_key=f"warning-{n}",
            title="Disk 80%",
            severity="warning",
            first_seen=now,
            last_seen=now + timedelta(seconds=1),  # newer than the attached alert
        )
        for n in range(2000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE incidents_alert")
        since = connection.ops.adapt_datetimefield_value(now - timedelta(minutes=10))
        cursor.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + services._JOIN_WINDOW_DEFAULT,
            [service.pk, since, 0],
        )
        plan = cursor.fetchone()[0]
    plan = plan[0]["Plan"] if isinstance(plan, list) else json.loads(plan)[0]["Plan"]
    alert_scans, read = _alert_rows_in_plan(plan)
    assert alert_scans and read <= 2, alert_scans
    assert send(token, "another", severity="error").status_code == 202
    assert Alert.objects.get(dedup_key="another").incident_id is not None


def _alert_rows_read(cursor) -> int:
    """Alert rows this transaction has read so far, by index or by scan."""
    cursor.execute(
        "SELECT coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0) "
        "FROM pg_stat_xact_user_tables WHERE relname = 'incidents_alert'"
    )
    return cursor.fetchone()[0]


@pytest.mark.django_db
@pytest.mark.parametrize("analysed", ["before the storm", "never"])
def test_a_storm_in_one_alertmanager_group_joins_its_incident_reading_one_alert(analysed):
    """Each new alert of a group looks for the group's newest alert in an open incident:
    with two thousand of them open, it reads one, whether or not the statistics were
    taken before the storm (it read all of them, sorted, when the planner's row counts
    lagged behind a storm)."""
    service = make_service("Search")
    integration, _ = integration_create(service=service, kind="alertmanager")
    group = '{}:{alertname="IndexLag"}'
    incident = make_incident(declared_by=make_user("ada"), title="Index lag", services_=[service])
    if analysed == "before the storm":
        # What a Firebreak in use holds: other integrations' past alerts, none of this one.
        past, _ = integration_create(service=make_service("Checkout"), kind="pagerduty")
        Alert.objects.bulk_create(
            Alert(
                integration=past,
                service=past.service,
                dedup_key=f"past-{n}",
                title="Past",
                status="resolved",
                first_seen=timezone.now(),
                last_seen=timezone.now(),
            )
            for n in range(3000)
        )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE incidents_alert")
    now = timezone.now()
    Alert.objects.bulk_create(
        Alert(
            integration=integration,
            service=service,
            incident=incident,
            dedup_key=f"fp-{n}",
            group_key=group,
            title="Index lag",
            severity="critical",
            first_seen=now,
            last_seen=now - timedelta(seconds=n),
        )
        for n in range(2000)
    )
    sql, params = services._same_group_lookup(integration.pk, group, 0)
    with connection.cursor() as cursor:
        before = _alert_rows_read(cursor)
        for _ in range(7):  # past the point where a cached plan may turn generic
            cursor.execute(sql, params)
            assert cursor.fetchone()[0] == incident.pk
        read = _alert_rows_read(cursor) - before
    assert read <= 7, read


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_arrival_a_running_gathering_took_is_not_written_twice():
    """A settled alert is committed before its request announces it: a gathering running
    in between names it, and the request (first of a new burst) must not name it again."""
    import redis
    from django.conf import settings

    service = make_service("Checkout")
    _, token = integration_create(service=service, kind="pagerduty")
    send(token, "first")  # opens
    send(token, "second")  # first of its burst: claims the burst for 5 s
    incident = Incident.objects.get()
    assert send(token, "third", summary="Third").status_code == 202  # pending
    # The last burst's gathering runs now (its task) and takes "third"...
    assert services.alert_arrivals_note(incident_id=incident.pk) == 1
    # ...and the burst's claim runs out: "third" is announced again as first of a new one.
    redis.Redis.from_url(settings.REDIS_URL).delete(services.arrivals_claim_key(incident.pk))
    services._BURST_HELD.clear()
    third = Alert.objects.get(dedup_key="third")
    services._announce_arrival(third.pk, third.incident_id)
    bodies = [e.body for e in fired_entries(incident)]
    assert sum("Third" in body for body in bodies) == 1, bodies


@pytest.mark.django_db
def test_an_arrival_whose_gathering_was_lost_is_written_by_the_sweep():
    service = make_service("Checkout")
    _, token = integration_create(service=service, kind="pagerduty")
    send(token, "first")
    incident = Incident.objects.get()
    integration = incident.alerts.get().integration
    fresh = Alert.objects.create(  # its own gathering is still to come
        integration=integration,
        service=service,
        incident=incident,
        dedup_key="fresh",
        title="Disk full on db-3",
        severity="critical",
        # Firing for an hour, joined just now (its severity rose): it arrived now.
        first_seen=timezone.now() - timedelta(hours=1),
        last_seen=timezone.now(),
    )
    AlertArrival.objects.create(alert=fresh, incident=incident)
    assert services.alerts_arrivals_overdue() == 0  # nothing overdue: left alone
    stranded = Alert.objects.create(
        integration=integration,
        service=service,
        incident=incident,
        dedup_key="stranded",
        title="Disk full on db-2",
        severity="critical",
        first_seen=timezone.now() - timedelta(minutes=1),
        last_seen=timezone.now() - timedelta(minutes=1),
    )
    AlertArrival.objects.create(
        alert=stranded, incident=incident, arrived_at=timezone.now() - timedelta(minutes=1)
    )
    assert services.alerts_arrivals_overdue() == 2  # with the fresh one: one entry
    assert services.alerts_arrivals_overdue() == 0
    entry = fired_entries(incident)[-1]
    assert set(entry.data["alerts"]) == {stranded.pk, fresh.pk}
    assert not AlertArrival.objects.exists()

    # Resolved before its gathering came: still written, never left waiting.
    late = Alert.objects.create(
        integration=integration,
        service=service,
        incident=incident,
        dedup_key="late",
        title="Disk full on db-4",
        severity="critical",
        first_seen=timezone.now(),
        last_seen=timezone.now(),
    )
    AlertArrival.objects.create(
        alert=late, incident=incident, arrived_at=timezone.now() - timedelta(minutes=1)
    )
    Incident.objects.filter(pk=incident.pk).update(status="resolved")
    assert services.alerts_arrivals_overdue() == 1
    assert fired_entries(incident)[-1].data["alerts"] == [late.pk]
    assert not AlertArrival.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_poll_between_the_rate_check_and_the_insert_does_not_hide_the_alert():
    """Intake marks the alerts page dirty in its rate check and drops nothing after the
    INSERT: a revision computed in between (without the alert) must not be kept."""
    from incidents.alerting.ratelimit import integration_rate_check, redis_client

    service = make_service("Checkout")
    integration, _ = integration_create(service=service, kind="pagerduty")
    verdict = integration_rate_check(integration_id=integration.pk)  # the request's check
    assert verdict.allowed and verdict.marked
    before = selectors.alerts_revision()  # a poll lands here, before the INSERT
    services._ingest_settled(integration, event("w", severity="warning"), revision_marked=True)
    assert selectors.alerts_revision() != before

    # Once the mark is old, an idle poll is answered from Redis with no query at all.
    redis_client().set(selectors.alerts_dirty_redis_key(), 0)
    selectors.alerts_revision()
    with CaptureQueriesContext(connection) as queries:
        selectors.alerts_revision()
    assert len(queries.captured_queries) == 0


@pytest.mark.django_db
def test_a_storm_planned_on_statistics_from_before_it_still_reads_one_alert_per_lookup():
    """Statistics taken while hardly any alert was in an incident (a new install, or
    before autovacuum's next analyse) and a cached generic plan, as intake's prepared
    statement has: the window lookup still walks newest first and stops at once, instead
    of hashing every alert of the storm and sorting them for each new one."""
    service = make_service("Checkout")
    integration, token = integration_create(service=service, kind="pagerduty")
    send(token, "page", severity="error")  # opens the incident
    incident = Incident.objects.get()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE incidents_alert")
    now = timezone.now()
    Alert.objects.bulk_create(
        Alert(
            integration=integration,
            service=service,
            incident=incident,
            dedup_key=f"storm-{n}",
            title="Checkout 5xx",
            severity="error",
            first_seen=now,
            last_seen=now - timedelta(milliseconds=n),
        )
        for n in range(2000)
    )
    lookup = services._JOIN_WINDOW_DEFAULT
    for n in range(1, lookup.count("%s") + 1):
        lookup = lookup.replace("%s", f"${n}", 1)
    since = connection.ops.adapt_datetimefield_value(now - timedelta(minutes=10))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE window_lookup AS {lookup}")
        cursor.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE window_lookup(%s, %s, %s)",
            [service.pk, since, 0],
        )
        plan = cursor.fetchone()[0]
        cursor.execute("DEALLOCATE window_lookup")
    plan = plan[0]["Plan"] if isinstance(plan, list) else json.loads(plan)[0]["Plan"]
    alert_scans, read = _alert_rows_in_plan(plan)
    assert alert_scans and read <= 2, json.dumps(plan, indent=1)
