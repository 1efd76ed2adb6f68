"""Writes for integrations and alerts: ingest, deduplicate, route into incidents."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache, partial
from typing import NamedTuple

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from config.celery import current_task_queue, running_eagerly
from incidents.alerting import prepared, routing_tasks, selectors
from incidents.alerting.matchers import AlertFacts, all_hold
from incidents.alerting.parsers import ACKNOWLEDGE, RESOLVE, TRIGGER, AlertEvent
from incidents.alerting.ratelimit import (
    Verdict,
    claim_burst,
    extend_burst,
    integration_rate_check,
    integration_rate_check_reading,
    integrations_cacheable,
    integrations_generation,
    integrations_generation_bump,
    leases_forget,
)
from incidents.models import (
    OPEN_STATUSES,
    Alert,
    AlertArrival,
    AlertRule,
    AlertSeverity,
    AlertStatus,
    DetectionSource,
    Incident,
    IncidentStatus,
    Integration,
    IntegrationKind,
    MaintenanceWindow,
    RuleAction,
    RuleGrouping,
    Service,
    Severity,
    TimelineKind,
)
from incidents.services import (
    IncidentRefused,
    _lock,
    _name,
    incident_declare,
    incident_transition,
    timeline_record,
)

# With no rule that matches, alerts of these severities open (or join) an incident at
# this severity; the rest are recorded only.
PAGING_SEVERITIES = {AlertSeverity.CRITICAL: "SEV1", AlertSeverity.ERROR: "SEV2"}
# Most severe first: a repeat that moves up this list may have to open an incident.
SEVERITY_RANK = {s: i for i, s in enumerate(AlertSeverity.values)}

log = logging.getLogger(__name__)


def _window() -> timedelta:
    return timedelta(minutes=settings.ALERT_GROUPING_WINDOW_MINUTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


_TOKEN_LOOKUP: dict[str, tuple[str, list]] = {}  # per database vendor: SQL, converters


def _token_lookup() -> tuple[str, list]:
    """The SELECT and, per column, the converters Django's compiler would apply."""
    if connection.vendor not in _TOKEN_LOOKUP:
        fields = Integration._meta.concrete_fields
        sql = (
            f"SELECT {', '.join(f.column for f in fields)} FROM {Integration._meta.db_table} "
            "WHERE token_hash = %s LIMIT 1"
        )
        converters = []
        for field in fields:
            column = field.get_col(Integration._meta.db_table)
            found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
            converters.append((column, found))
        _TOKEN_LOOKUP[connection.vendor] = (sql, converters)
    return _TOKEN_LOOKUP[connection.vendor]


def integration_for_token(token: str) -> Integration | None:
    """The integration whose secret this is, or None. Compared in constant time.

    Every alert request starts here, so it is one precomposed SELECT by the unique hash
    (composing or instantiating through the ORM cost as much as running it).
    `integration.service` is loaded only if used (opening an incident).
    """
    wanted = token_hash(token)
    row = _integration_row(wanted)
    return None if row is None else _integration_from_row(wanted, row)


def _integration_row(wanted: str) -> tuple | None:
    sql, _ = _token_lookup()
    with connection.cursor() as cursor:
        cursor.execute(sql, [wanted])
        return cursor.fetchone()


def _integration_from_row(wanted: str, row: tuple) -> Integration | None:
    """A new instance from the row as the database gave it (nothing shared between
    requests: field_mapping is decoded afresh)."""
    _, converters = _token_lookup()
    values = []
    for value, (column, found) in zip(row, converters, strict=True):
        for convert in found:
            value = convert(value, column, connection)
        values.append(value)
    integration = Integration.from_db(
        connection.alias, [f.attname for f in Integration._meta.concrete_fields], values
    )
    if not hmac.compare_digest(wanted, integration.token_hash):
        return None
    return integration


# Token hash -> (when kept, the integrations' generation read before the row, the row).
# An entry is good only while the generation the request's rate check reads is the one it
# was kept under: any change to any integration (rotation, deletion, edit) bumps it, so a
# rotated token stops working at once in the process that rotated it and within a lease
# (ratelimit.LEASE_SECONDS, a fifth of a second) in every other. Entries also age out, in
# case a bump was lost while Redis was down.
_TOKEN_ROWS: dict[str, tuple[float, str, tuple]] = {}
TOKEN_ROWS_KEPT = 256
TOKEN_ROW_SECONDS = 30


def integration_admit(token: str, *, kind: str) -> tuple[Integration | None, Verdict | None]:
    """The integration of this kind whose secret this is, and this request's rate verdict;
    (None, None) for no such integration (nothing counted).

    With the rate limit in Redis, a token seen lately in this process costs no SELECT:
    the round trip that took the rate limit's lease also read the generation that says the
    row is current (at most ratelimit.LEASE_SECONDS ago; at once after a change made by
    this process).
    """
    wanted = token_hash(token)
    if not integrations_cacheable():
        integration = integration_for_token(token)
        if integration is None or integration.kind != kind:
            return None, None
        return integration, integration_rate_check(integration_id=integration.pk)
    verdict = None
    counted_for = None
    kept = _TOKEN_ROWS.get(wanted)
    if kept is not None:
        kept_at, generation, row = kept
        integration = _integration_from_row(wanted, row)
        if integration is not None and integration.kind == kind:
            verdict, current = integration_rate_check_reading(integration_id=integration.pk)
            counted_for = integration.pk
            if current == generation and time.monotonic() - kept_at < TOKEN_ROW_SECONDS:
                return integration, verdict
        _TOKEN_ROWS.pop(wanted, None)
    generation = integrations_generation()  # read before the row: a change after it shows
    row = _integration_row(wanted)
    integration = None if row is None else _integration_from_row(wanted, row)
    if integration is None or integration.kind != kind:
        return None, None
    if generation is not None:
        if len(_TOKEN_ROWS) >= TOKEN_ROWS_KEPT:
            _TOKEN_ROWS.clear()
        _TOKEN_ROWS[wanted] = (time.monotonic(), generation, row)
    if verdict is None or counted_for != integration.pk:
        verdict = integration_rate_check(integration_id=integration.pk)
    return integration, verdict


def _integration_changed(sender, **kwargs) -> None:
    # Now (this process, and any request that reads between here and the commit keeps
    # what it read under a generation that the commit's bump ends) and after the commit.
    _integrations_changed_now()
    transaction.on_commit(_integrations_changed_now, robust=True)


def _integrations_changed_now() -> None:
    # This process's leases carry the generation they read: dropped, so it stops at once;
    # other processes' leases end within ratelimit.LEASE_SECONDS.
    leases_forget()
    integrations_generation_bump()


post_save.connect(_integration_changed, sender=Integration, dispatch_uid="integration-generation")
post_delete.connect(
    _integration_changed, sender=Integration, dispatch_uid="integration-generation-delete"
)


def integration_create(
    *, service: Service, kind: str, name: str = "", field_mapping: dict | None = None
) -> tuple[Integration, str]:
    """Returns the integration and its token: the only time the token is known."""
    token = secrets.token_urlsafe(24)  # 32 characters, the length of a PagerDuty routing key
    integration = Integration.objects.create(
        service=service,
        kind=kind,
        name=name.strip() or IntegrationKind(kind).label,
        token_hash=token_hash(token),
        field_mapping=field_mapping or {},
    )
    return integration, token


def integration_rotate(*, integration: Integration) -> str:
    """A new secret; the old URL stops working at once."""
    token = secrets.token_urlsafe(24)
    with transaction.atomic():
        integration = Integration.objects.select_for_update(no_key=True).get(pk=integration.pk)
        integration.token_hash = token_hash(token)
        integration.rotated_at = timezone.now()
        integration.save(update_fields=["token_hash", "rotated_at"])
    return token


@dataclass
class IngestResult:
    alert: Alert | None  # None for a repeat, and for a new alert stored by one statement
    created: bool
    dedup_key: str
    alert_id: int | None = None


# A burst of new alerts joining one incident is written on its timeline as few entries:
# the first writes at once, the rest are gathered into one entry this many seconds on,
# and again every this many seconds while the burst goes on (see alert_arrivals_gather).
ARRIVAL_GATHER_SECONDS = 5
# The burst's claim outlasts each gathering by this much, so a gathering that finds the
# burst still going keeps the claim before it ends: otherwise the next arrival would be
# "first" again and write the whole backlog inside its own request (measured: a request
# writing 5,000 arrivals every 5 s of a storm, the p99 latency of everyone queued behind).
BURST_CLAIM_LEAD = 1
# The last gathering of a burst runs this long after its claim ends: an arrival told "not
# first" just before the end is committed by then (a slower one is left to the sweep).
LAST_GATHER_MARGIN = 2


def _burst_claim_seconds() -> float:
    return ARRIVAL_GATHER_SECONDS + BURST_CLAIM_LEAD


def arrivals_claim_key(incident_id: int) -> str:
    """Whether this incident has a burst of arrivals going on (its first one claimed it)."""
    return f"firebreak:alert-arrivals:{incident_id}"


# Incident id -> until when (time.monotonic()) this process knows its burst of arrivals
# is claimed, by itself or by another process (Redis said for how long): arrivals until
# then are pending, and a gathering due before the claim ends (or the last one, after)
# takes them. Saves the claim's round trip for all but the first arrival a process sees in
# each burst. Ends BURST_MARGIN early, so an arrival is committed before that last
# gathering. Claims are only extended, never cut short, so this says "held" when it is
# not only if Redis lost the key (a restart): those arrivals are left to the sweep.
_BURST_HELD: dict[int, float] = {}
BURST_MARGIN = 0.5


@dataclass(frozen=True)
class _Burst:
    """A burst of arrivals this request started: its claim's token, and when (wall clock,
    the gathering runs in another process) the claim ends. No token: the claim store is
    down, every arrival is written at once, and there is nothing to gather."""

    token: str
    ends: float


def _first_of_burst(incident_id: int) -> _Burst | None:
    held = _BURST_HELD.get(incident_id)
    if held is not None and time.monotonic() < held:
        return None
    seconds = _burst_claim_seconds()
    claim = claim_burst(key=arrivals_claim_key(incident_id), seconds=seconds)
    if claim.left > BURST_MARGIN:
        if len(_BURST_HELD) >= 256:
            _BURST_HELD.clear()
        _BURST_HELD[incident_id] = time.monotonic() + claim.left - BURST_MARGIN
    if not claim.first:
        return None
    return _Burst(claim.token, time.time() + seconds)


class _TimelineBatch:
    """Timeline entries a request owes its incidents, written once per incident at the end.

    An Alertmanager notification can carry a hundred alerts of one group: the incident
    gets one entry saying so, not a hundred, and its row lock is taken once. Arrivals
    gathered from earlier requests (AlertArrival) join the entry.
    """

    def __init__(self, actor=None):
        self.actor = actor
        self.fired: dict[int, list[tuple[Alert, bool]]] = defaultdict(list)  # (alert, opened)
        self.resolved: dict[int, list[Alert]] = defaultdict(list)
        self.gather_after: dict[int, _Burst] = {}  # the bursts this request started

    def flush(self) -> None:
        """Call inside the transaction that changed the alerts. Takes pending arrivals'
        rows, then each incident's lock in id order: the order intake takes them in, so
        two requests (or the gathering task) never wait on each other crosswise."""
        for incident_id in sorted(set(self.fired) | set(self.resolved)):
            # An alert this request attached is flagged pending until here: it is named
            # once, as this request's own.
            own = {alert.pk for alert, _ in self.fired.get(incident_id, [])}
            gathered = [a for a in _claim_pending_arrivals(incident_id) if a.pk not in own]
            # Only what the entries need: the lock, the revision, whether it is open.
            incident = (
                Incident.objects.select_for_update(no_key=True)
                .only("id", "revision", "status")
                .get(pk=incident_id)
            )
            fired = [(a, False) for a in gathered] + self.fired.get(incident_id, [])
            if fired:
                _record_fired(incident, fired)
            if self.resolved.get(incident_id):
                _record_resolved(incident, self.resolved[incident_id], actor=self.actor)
        for incident_id, burst in self.gather_after.items():
            transaction.on_commit(
                partial(_schedule_first_gathering, incident_id, burst),
                robust=True,  # broker down: the next burst's first arrival writes them
            )
        self.fired.clear()
        self.resolved.clear()
        self.gather_after.clear()


def _schedule_gathering(incident_id: int, *, countdown: float, **kwargs) -> None:
    queue = current_task_queue()  # a gathering's follow-up stays on its queue
    routing_tasks.alert_arrivals_note_task.apply_async(
        args=(incident_id,),
        kwargs=kwargs,
        countdown=countdown,
        **({"queue": queue} if queue else {}),
    )


def _schedule_first_gathering(incident_id: int, burst: _Burst) -> None:
    """A burst's first gathering, BURST_CLAIM_LEAD before its claim ends (counted from the
    claim, not from this commit, which may come late)."""
    if not burst.token:
        return
    countdown = max(0.0, burst.ends - BURST_CLAIM_LEAD - time.time())
    _schedule_gathering(incident_id, countdown=round(countdown, 3), token=burst.token)


def alert_arrivals_gather(*, incident_id: int, token: str = "", last: bool = False) -> int:
    """The scheduled gathering (a Celery task): write the incident's pending arrivals as
    one entry; returns how many. While the burst goes on (this found some) it keeps the
    burst's claim (only its own, by `token`) and comes back in ARRIVAL_GATHER_SECONDS, so
    a storm's arrivals are written here, never inside an intake request. Once it finds
    none, or its claim has ended (the worker was late), one last gathering after the
    claim's end takes the arrivals of its final moments. Idempotent: a second run finds
    nothing. Run eagerly (CELERY_TASK_ALWAYS_EAGER: no countdown), it does not chain."""
    named = alert_arrivals_note(incident_id=incident_id)
    if last or running_eagerly():
        return named
    key = arrivals_claim_key(incident_id)
    if named and token and extend_burst(key=key, token=token, seconds=_burst_claim_seconds()):
        _schedule_gathering(incident_id, countdown=ARRIVAL_GATHER_SECONDS, token=token)
    else:
        _schedule_gathering(incident_id, countdown=BURST_CLAIM_LEAD + LAST_GATHER_MARGIN, last=True)
    return named


@dataclass(frozen=True)
class _Arrived:
    """What a timeline entry names of a gathered alert. Not an Alert instance: a storm's
    gathering takes thousands, and building model instances was nine tenths of its time
    (in the worker, taking a core from the web processes every few seconds)."""

    pk: int
    title: str
    severity: str

    def get_severity_display(self) -> str:
        return dict(AlertSeverity.choices).get(self.severity, self.severity)  # as Alert's


def _claim_pending_arrivals(incident_id: int) -> list[_Arrived]:
    """Take this incident's pending arrivals (deleting them, which also waits for anyone
    else taking them): what the next timeline entry must name.

    An alert moved to another incident by hand since it arrived is named there by the
    move, so its arrival here is dropped, not named. Checked here rather than deleted by
    the move: the move holds its incident's lock, and waiting then for an arrival row that
    a gathering holds while it waits for that incident would be a deadlock."""
    arrivals = AlertArrival._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"DELETE FROM {arrivals} p USING {Alert._meta.db_table} a "
                "WHERE p.incident_id = %s AND a.id = p.alert_id "
                "RETURNING a.id, a.title, a.severity, a.incident_id",
                [incident_id],
            )
            rows = cursor.fetchall()
        else:  # SQLite's DELETE takes no USING: the alerts are read after
            cursor.execute(
                f"DELETE FROM {arrivals} WHERE incident_id = %s RETURNING alert_id", [incident_id]
            )
            taken = [alert_id for (alert_id,) in cursor.fetchall()]
            rows = Alert.objects.filter(pk__in=taken).values_list(
                "id", "title", "severity", "incident_id"
            )
    return [
        _Arrived(pk, title, severity)
        for pk, title, severity, now_on in sorted(rows)
        if now_on == incident_id
    ]


def alert_arrivals_note(*, incident_id: int) -> int:
    """Write the incident's gathered alert arrivals as one timeline entry; returns how
    many. Idempotent: claimed by deleting them, so a second run (or a request that got
    there first) finds nothing to write."""
    with transaction.atomic():
        gathered = _claim_pending_arrivals(incident_id)
        if not gathered:
            return 0
        incident = (
            Incident.objects.select_for_update(no_key=True)
            .only("id", "revision", "status")
            .get(pk=incident_id)
        )
        _record_fired(incident, [(a, False) for a in gathered])
    return len(gathered)


def _titles(alerts: list[Alert], limit: int = 5) -> str:
    shown = "; ".join(a.title for a in alerts[:limit])
    more = len(alerts) - limit
    return shown + (f" (and {more} more)" if more > 0 else "")


def _record_fired(incident: Incident, fired: list[tuple[Alert, bool]]) -> None:
    alerts = [alert for alert, _ in fired]
    verb = "opened" if any(opened for _, opened in fired) else "joined"
    if len(alerts) == 1:
        alert = alerts[0]
        body = f"{alert.get_severity_display()} alert fired and {verb} this incident: {alert.title}"
    else:
        body = f"{len(alerts)} alerts fired and {verb} this incident: {_titles(alerts)}"
    timeline_record(
        incident=incident,
        kind=TimelineKind.ALERT,
        actor=None,
        body=body,
        data={
            "alert": alerts[0].pk,
            "alerts": [a.pk for a in alerts],
            "event": "fired",
            "severity": alerts[0].severity,
        },
    )


def _record_resolved(incident: Incident, alerts: list[Alert], *, actor) -> None:
    if len(alerts) == 1:
        body = (
            f"{_name(actor)} resolved the alert: {alerts[0].title}"
            if actor is not None
            else f"Alert resolved: {alerts[0].title}"
        )
    else:
        who = f"{_name(actor)} resolved" if actor is not None else "Resolved"
        body = f"{who} {len(alerts)} alerts: {_titles(alerts)}"
    timeline_record(
        incident=incident,
        kind=TimelineKind.ALERT,
        actor=actor,
        body=body,
        data={"alert": alerts[0].pk, "alerts": [a.pk for a in alerts], "event": "resolved"},
    )
    if incident.alerts.exclude(status=AlertStatus.RESOLVED).exists():
        return
    total = incident.alerts.count()
    auto = incident.is_open and incident.alerts.filter(rule__auto_resolve=True).exists()
    body = (
        "All alerts on this incident have resolved."
        if total != 1
        else "The alert on this incident has resolved."
    )
    if auto:
        body += " Its routing rule resolves the incident automatically."
    timeline_record(
        incident=incident,
        kind=TimelineKind.ALERT,
        actor=None,
        body=body,
        data={"event": "all_resolved", "alerts": total, "auto_resolve": auto},
    )
    if auto:
        # If someone moved it meanwhile, their word stands.
        with contextlib.suppress(IncidentRefused):
            incident_transition(incident=incident, actor=None, to_status=IncidentStatus.RESOLVED)


# --- Intake ------------------------------------------------------------------------------


def alerts_ingest(
    *, integration: Integration, events: list[AlertEvent], revision_marked: bool = False
) -> list[IngestResult]:
    """Apply a request's events in one transaction: all of them or none.

    Locks, cheapest first: a repeat of an open alert is one conditional UPDATE and takes no
    lock beyond that row; a new alert takes its service's row lock only when it may open
    an incident; the timeline is written at the end, one entry per incident.
    """
    if len(events) == 1 and events[0].action == TRIGGER:
        event = events[0]
        # Most likely a repeat (a storm): counted in one statement, in no transaction of
        # its own (BEGIN and COMMIT were two of its four round trips).
        if _repeating(integration, event) and _count_repeat(integration, event, timezone.now()):
            return [IngestResult(None, False, event.dedup_key)]
        settled = _ingest_settled(integration, event, revision_marked=revision_marked)
        if settled is not None:
            _remember_trigger(integration, event)
            return [settled]
    with transaction.atomic():
        batch = _TimelineBatch()
        results = [_ingest_one(integration, event, batch) for event in events]
        batch.flush()
    for event in events:
        if event.action == TRIGGER:
            _remember_trigger(integration, event)
    return results


# (integration id, dedup key) of triggers this process handled lately, newest last: only a
# guess at what is open (it may have resolved since), so it picks which statement to try
# first and never decides anything.
_RECENT_TRIGGERS: OrderedDict[tuple[int, str], None] = OrderedDict()
RECENT_TRIGGERS_KEPT = 1024


def _repeating(integration: Integration, event: AlertEvent) -> bool:
    return (integration.pk, event.dedup_key) in _RECENT_TRIGGERS


def _remember_trigger(integration: Integration, event: AlertEvent) -> None:
    key = (integration.pk, event.dedup_key)
    _RECENT_TRIGGERS[key] = None
    _RECENT_TRIGGERS.move_to_end(key)
    while len(_RECENT_TRIGGERS) > RECENT_TRIGGERS_KEPT:
        _RECENT_TRIGGERS.popitem(last=False)


class _Changes(NamedTuple):
    """Which optional fields an event brings (what a repeat's SET changes): the shape
    statements are composed for, once each."""

    title: bool
    labels: bool
    annotations: bool


def _changes(event: AlertEvent) -> _Changes:
    return _Changes(bool(event.title), bool(event.labels), bool(event.annotations))


def _repeat_sets(changes: _Changes, *, postgres: bool, new: str, old: str = "a") -> list[str]:
    """What a repeat changes; `new` names the incoming row (EXCLUDED, or a table of
    parameters), `old` the stored one."""
    a = old
    sets = [f"times_seen = {a}.times_seen + 1", f"payload = {new}.payload"]
    if postgres:
        # last_seen is indexed: changing it makes every repeat a non-HOT update (a new
        # entry in each of the table's indexes). To the second is all a person reads, so
        # a storm's repeats within one second leave it, and the indexes, alone.
        sets.append(
            f"last_seen = CASE WHEN {new}.last_seen >= {a}.last_seen + interval '1 second' "
            f"THEN {new}.last_seen ELSE {a}.last_seen END"
        )
    else:
        sets.append(f"last_seen = {new}.last_seen")
    for name in ("title", "labels", "annotations"):
        if getattr(changes, name):
            sets.append(f"{name} = {new}.{name}")
    return sets


def _count_repeat(integration: Integration, event: AlertEvent, now) -> bool:
    """Count a repeat of the open alert with this key, the way _upsert_trigger's conflict
    branch does (same changes, same condition: not one that raises the severity of an
    alert in no incident). False, with nothing written, when there is no such alert."""
    postgres = connection.vendor == "postgresql"
    # A statement of its own (no transaction around it, see alerts_ingest) commits without
    # waiting for its WAL to reach the disk. A storm's repeats all update one row, each
    # holding its lock until its commit: waiting for the flush inside that lock made the
    # storm as slow as the disk. What a crash of PostgreSQL could lose is the last
    # fraction of a second of counting (times_seen, last_seen, the latest payload) of an
    # alert that is itself stored; a new alert's INSERT still commits durably.
    unhurried = postgres and connection.get_autocommit() and not connection.in_atomic_block
    params = [
        json.dumps(event.payload),
        connection.ops.adapt_datetimefield_value(now),
        event.title,
        json.dumps(event.labels),
        json.dumps(event.annotations),
        integration.pk,
        event.dedup_key,
        event.severity,
    ]
    sql = _count_repeat_sql(postgres, _changes(event), unhurried)
    return prepared.fetch_one(sql, params) is not None


@lru_cache(maxsize=32)
def _count_repeat_sql(postgres: bool, changes: _Changes, unhurried: bool) -> str:
    table = Alert._meta.db_table
    as_json = "%s::jsonb" if postgres else "%s"
    when = "%s::timestamptz" if postgres else "%s"
    # The stored row is named by its table (SQLite's RETURNING refuses an alias).
    sets = _repeat_sets(changes, postgres=postgres, new="n", old=table)
    off = ", set_config('synchronous_commit', 'off', true) AS unhurried" if unhurried else ""
    return (
        f"UPDATE {table} SET {', '.join(sets)} "
        f"FROM (SELECT {as_json} AS payload, {when} AS last_seen, %s AS title, "
        f"{as_json} AS labels, {as_json} AS annotations{off}) n "
        f"WHERE {table}.integration_id = %s AND {table}.dedup_key = %s "
        f"AND NOT ({table}.status = 'resolved') AND ({table}.incident_id IS NOT NULL OR "
        f"{_SEVERITY_RANK_SQL.format(col=f'{table}.severity')} "
        f"<= {_SEVERITY_RANK_SQL.format(col='%s')}) "
        f"RETURNING {table}.id"
    )


def _repeat_fields(event: AlertEvent, now) -> dict:
    fields: dict = {"last_seen": now, "payload": event.payload}
    if event.title:
        fields["title"] = event.title
    if event.labels:
        fields["labels"] = event.labels
    if event.annotations:
        fields["annotations"] = event.annotations
    return fields


def _open_alert(integration: Integration, key: str) -> Alert | None:
    return (
        Alert.objects.select_for_update()
        .filter(integration=integration, dedup_key=key)
        .exclude(status=AlertStatus.RESOLVED)
        .first()
    )


@dataclass(frozen=True)
class _Upserted:
    alert_id: int
    times_seen: int
    # Only for a new alert on PostgreSQL (read in the same statement); else None.
    in_maintenance: bool | None = None
    has_rules: bool | None = None
    incident_id: int | None = None  # the incident the INSERT attached it to, if it looked
    looked: bool = False  # whether the INSERT looked for an incident to join


_SEVERITY_RANK_SQL = (
    "CASE {col} "
    + " ".join(f"WHEN '{s}' THEN {r}" for s, r in SEVERITY_RANK.items())
    + f" ELSE {SEVERITY_RANK[AlertSeverity.WARNING]} END"
)


# Both intake INSERTs (_upsert_trigger, _settled_statement) share these pieces.
_IN_MAINTENANCE_SQL = (
    f"EXISTS (SELECT 1 FROM {MaintenanceWindow._meta.db_table} w WHERE w.service_id = %s "
    "AND w.cancelled_at IS NULL AND w.starts_at <= %s AND w.ends_at > %s)"
)
_HAS_RULES_SQL = f"EXISTS (SELECT 1 FROM {AlertRule._meta.db_table} r WHERE r.service_id = %s)"
_INSERT_ALERT_SQL = (
    f"INSERT INTO {Alert._meta.db_table} AS a (integration_id, service_id, dedup_key, "
    "group_key, status, title, severity, source, labels, annotations, payload, first_seen, "
    "last_seen, times_seen, in_maintenance, incident_id) "
)


def _with_pending_arrival(statement: str, *, with_clause: str = "", new_only: bool = True) -> str:
    """PostgreSQL: an INSERT or UPDATE ... RETURNING (id and incident_id among its columns)
    as a data-modifying CTE that also records the alert, if it is in an incident, as a
    pending arrival, in the same statement; its result is the statement's. `new_only`: a
    row whose times_seen is not 1 (a repeat, counted) did not arrive."""
    new = "times_seen = 1 AND " if new_only else ""
    return (
        f"{f'{with_clause}, ' if with_clause else 'WITH '}stored AS ({statement}), "
        f"pending AS (INSERT INTO {AlertArrival._meta.db_table} (alert_id, incident_id) "
        f"SELECT id, incident_id FROM stored WHERE {new}incident_id IS NOT NULL) "
        "SELECT * FROM stored"
    )


def _on_conflict_sql(changes: _Changes, *, postgres: bool) -> str:
    """A repeat of the open alert is counted, unless it raises the severity of an alert in
    no incident (that one is routed by the caller)."""
    sets = _repeat_sets(changes, postgres=postgres, new="EXCLUDED")
    return (
        "ON CONFLICT (integration_id, dedup_key) WHERE NOT (status = 'resolved') "
        f"DO UPDATE SET {', '.join(sets)} "
        "WHERE a.incident_id IS NOT NULL OR "
        f"{_SEVERITY_RANK_SQL.format(col='a.severity')} "
        f"<= {_SEVERITY_RANK_SQL.format(col='EXCLUDED.severity')} "
    )


def _new_alert_values(integration: Integration, event: AlertEvent, when) -> list:
    """The values of a new alert's row, integration_id through last_seen."""
    return [
        integration.pk,
        integration.service_id,
        event.dedup_key,
        event.group_key,
        str(AlertStatus.FIRING),
        event.title,
        event.severity,
        event.source,
        json.dumps(event.labels),
        json.dumps(event.annotations),
        json.dumps(event.payload),
        when,
        when,
    ]


@lru_cache(maxsize=8)
def _incident_to_join_expression(grouped: bool, vendor: str) -> str:
    """An expression for the open incident a new alert joins by default (same Alertmanager
    group, else the time window); its parameters are _incident_to_join_params'."""
    lookups = [_same_group_sql(vendor)] if grouped else []
    lookups.append(_JOIN_WINDOW_DEFAULT)
    return "COALESCE(" + ", ".join(f"({q})" for q in lookups) + ", NULL)"


def _incident_to_join_params(integration: Integration, event: AlertEvent, now) -> list:
    params: list = [integration.pk, event.group_key, 0] if event.group_key else []
    since = connection.ops.adapt_datetimefield_value(now - _window())
    return [*params, integration.service_id, since, 0]


def _upsert_trigger(integration: Integration, event: AlertEvent, now) -> _Upserted | None:
    """Insert a new alert or count a repeat of the open one, in one statement.

    The partial unique index (one open alert per key) is the arbiter: concurrent triggers
    with one key queue on it and all but the first become repeats, with no lock taken
    here and no read first. Returns None when the open alert exists but this repeat raises
    its severity while it is in no incident: the caller routes that one under its lock.
    On PostgreSQL a new alert's routing facts (maintenance now? any rules?) come back in
    the same round trip.
    """
    postgres = connection.vendor == "postgresql"
    as_json = "%s::jsonb" if postgres else "%s"
    when = connection.ops.adapt_datetimefield_value(now)
    service = integration.service_id
    returning = "id, times_seen"  # unqualified: SQLite's RETURNING refuses the alias
    extra: list = []
    if postgres:
        # Evaluated for new alerts only (times_seen = 1); repeats skip the subqueries.
        returning += (
            f", CASE WHEN times_seen = 1 THEN {_IN_MAINTENANCE_SQL} END AS in_maintenance"
            f", CASE WHEN times_seen = 1 THEN {_HAS_RULES_SQL} END AS has_rules"
        )
        extra = [service, when, when, service]
    # The common new alert (PostgreSQL, a paging severity, a service with no rules and no
    # maintenance) is attached to the incident it joins by the INSERT itself, its arrival
    # pending (flush() takes that if it is the first of its burst): no second statement,
    # and no second version of the row in every index.
    join_first: list = []
    looks = postgres and event.severity in PAGING_SEVERITIES
    if looks:
        found = _incident_to_join_expression(bool(event.group_key), connection.vendor)
        found_params = _incident_to_join_params(integration, event, now)
        with_join = (
            f"WITH j AS MATERIALIZED (SELECT CASE WHEN {_IN_MAINTENANCE_SQL} OR "
            f"{_HAS_RULES_SQL} THEN NULL ELSE {found} END AS join_id)"
        )
        join_first = [service, when, when, service, *found_params]
        source = (
            f"SELECT %s, %s, %s, %s, %s, %s, %s, %s, {as_json}, {as_json}, {as_json}, %s, %s, "
            "1, %s, j.join_id FROM j "
        )
        returning += ", incident_id"
    else:
        source = (
            f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, {as_json}, {as_json}, {as_json}, %s, %s, "
            "1, %s, NULL) "
        )
    sql = f"{_INSERT_ALERT_SQL}{source}{_on_conflict_sql(_changes(event), postgres=postgres)}"
    sql += f"RETURNING {returning}"
    if looks:
        sql = _with_pending_arrival(sql, with_clause=with_join)
    params = [*join_first, *_new_alert_values(integration, event, when), False, *extra]
    row = prepared.fetch_one(sql, params)
    if row is None:
        return None
    if looks:
        return _Upserted(*row, looked=True)
    return _Upserted(*row)


def _settled_statement(integration: Integration, event: AlertEvent, now) -> tuple[str, list]:
    """The INSERT that stores a trigger only when nothing else needs deciding: the service
    is in no maintenance and has no rules, and an alert that may page finds an open
    incident to join (attached, arrival pending). A repeat is counted as _upsert_trigger
    counts it. Anything else inserts nothing and returns no row."""
    when = connection.ops.adapt_datetimefield_value(now)
    service = integration.service_id
    params: list = [service, when, when, service]
    paging = event.severity in PAGING_SEVERITIES
    if paging:
        params += _incident_to_join_params(integration, event, now)
    sql = _settled_sql(paging, bool(event.group_key), _changes(event))
    return sql, params + _new_alert_values(integration, event, when)


@lru_cache(maxsize=32)
def _settled_sql(paging: bool, grouped: bool, changes: _Changes) -> str:
    join = _incident_to_join_expression(grouped, "postgresql") if paging else "NULL::bigint"
    return _with_pending_arrival(
        f"{_INSERT_ALERT_SQL}"
        "SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, %s, %s, 1, "
        "false, j.join_id FROM j WHERE NOT j.m AND NOT j.r"
        f"{' AND j.join_id IS NOT NULL' if paging else ''} "
        f"{_on_conflict_sql(changes, postgres=True)}"
        "RETURNING id, times_seen, incident_id",
        with_clause=(
            f"WITH j AS MATERIALIZED (SELECT {_IN_MAINTENANCE_SQL} AS m, "
            f"{_HAS_RULES_SQL} AS r, {join} AS join_id)"
        ),
    )


def _ingest_settled(
    integration: Integration, event: AlertEvent, *, revision_marked: bool = False
) -> IngestResult | None:
    """A trigger stored by one statement with no transaction around it, when that
    statement settles it (see _settled_statement): the common new alert and the first
    repeat a process sees. None, with nothing written, when it must be routed under a
    transaction (an incident to open, maintenance, rules, a rising severity).

    PostgreSQL only (elsewhere None): the statement is prepared (planning it cost as much
    as running it), and a request that stores an alert this way makes 2 database and 2
    Redis round trips instead of 5 and 3.
    """
    if connection.vendor != "postgresql":
        return None
    now = timezone.now()
    row = prepared.fetch_one(*_settled_statement(integration, event, now))
    if row is None:
        return None
    alert_id, times_seen, incident_id = row
    if times_seen > 1:
        return IngestResult(None, False, event.dedup_key)
    # No model instance: building one (with its init signals) was a tenth of this path.
    _announce_arrival(alert_id, incident_id, revision_marked=revision_marked)
    return IngestResult(None, True, event.dedup_key, alert_id=alert_id)


def _announce_arrival(
    alert_id: int, incident_id: int | None, *, revision_marked: bool = False
) -> None:
    """After a settled INSERT: refresh the alerts page and, if the alert joined an
    incident first in its burst, write it on the timeline now (the rest of the burst is
    gathered into one entry a few seconds on).

    `revision_marked`: the request's rate check already told the alerts page (see
    selectors.alerts_revision), so nothing is dropped here. The row was written by SQL,
    not save(): post_save's one listener (that refresh) is otherwise called here, and a
    new listener must be called here too.
    """
    if not revision_marked or connection.in_atomic_block:
        transaction.on_commit(selectors.alerts_revision_forget)
    burst = None if incident_id is None else _first_of_burst(incident_id)
    if burst is None:
        return
    # The row is committed and visible: a gathering still running from the last burst may
    # have named it already. So it is written only if it is still pending when taken here
    # (with whatever else is), never added as this request's own.
    try:
        alert_arrivals_note(incident_id=incident_id)
    except DatabaseError:
        # The alert is stored and on its incident: a 5xx now would only make the sender
        # retry what is already here (a repeat). Its arrival stays pending for the
        # gathering task below (or the sweep) to write.
        log.exception("Could not write alert %s's arrival now; gathering it", alert_id)
    transaction.on_commit(partial(_schedule_first_gathering, incident_id, burst), robust=True)


# Older than this and still pending, an arrival's gathering was lost (its process died
# between storing the alert and announcing it, or the broker was down).
ARRIVAL_OVERDUE_SECONDS = 3 * ARRIVAL_GATHER_SECONDS


def alerts_arrivals_overdue(*, now=None) -> int:
    """Write arrivals whose gathering never came; how many. Whatever the incident's status
    now: the alerts did join it, and no arrival is left waiting for good. Idempotent
    (alert_arrivals_note claims each arrival once). Run by beat."""
    cutoff = (now or timezone.now()) - timedelta(seconds=ARRIVAL_OVERDUE_SECONDS)
    overdue = (
        AlertArrival.objects.filter(arrived_at__lt=cutoff)
        .values_list("incident_id", flat=True)
        .distinct()
    )
    return sum(alert_arrivals_note(incident_id=incident_id) for incident_id in list(overdue))


def _ingest_one(integration: Integration, event: AlertEvent, batch: _TimelineBatch):
    now = timezone.now()
    if event.action == TRIGGER:
        upserted = _upsert_trigger(integration, event, now)
        if upserted is None:
            rising = _open_alert(integration, event.dedup_key)
            if rising is None:  # resolved in the meantime: go again, as a new alert
                return _ingest_one(integration, event, batch)
            _repeat_rising(rising, event, now, batch)
            return IngestResult(rising, False, event.dedup_key)
        if upserted.times_seen > 1:  # a repeat, counted
            return IngestResult(None, False, event.dedup_key)
        alert = Alert(
            pk=upserted.alert_id,
            integration=integration,
            service_id=integration.service_id,
            dedup_key=event.dedup_key,
            group_key=event.group_key,
            title=event.title,
            severity=event.severity,
            source=event.source,
            labels=event.labels,
            annotations=event.annotations,
            payload=event.payload,
            first_seen=now,
            last_seen=now,
        )
        alert._state.adding = False
        alert._state.db = connection.alias
        facts = None
        if upserted.in_maintenance is not None:
            facts = _RoutingFacts(upserted.in_maintenance, upserted.has_rules)
        joined = None
        if upserted.looked and not upserted.in_maintenance and not upserted.has_rules:
            joined = (upserted.incident_id,)
        _route(alert, batch, now, facts=facts, joined=joined)
        # The row was written by SQL, not save(): tell post_save's listeners (the alerts
        # page's refresh) as a save would have.
        post_save.send(sender=Alert, instance=alert, created=True, update_fields=None, raw=False)
        return IngestResult(alert, True, event.dedup_key)

    alert = _open_alert(integration, event.dedup_key)
    if alert is None:  # acknowledge or resolve of something we never saw open: no change
        return IngestResult(None, False, event.dedup_key)
    if event.action == ACKNOWLEDGE:
        if alert.status == AlertStatus.FIRING:
            _acknowledge(alert, actor=None, now=now)
    elif event.action == RESOLVE:
        _resolve(alert, now=now, batch=batch)
    return IngestResult(alert, False, event.dedup_key)


def _repeat_rising(alert: Alert, event: AlertEvent, now, batch: _TimelineBatch) -> None:
    """A repeat of an open alert (row locked) that _upsert_trigger left alone: it may have
    just become severe enough to open an incident. Routed here once: afterwards its stored
    severity matches and repeats take the cheap path again."""
    fields = _repeat_fields(event, now)
    fields["times_seen"] = alert.times_seen + 1
    rises = alert.incident_id is None and SEVERITY_RANK.get(event.severity, 9) < SEVERITY_RANK.get(
        alert.severity, 9
    )
    if rises:
        fields["severity"] = event.severity
    for name, value in fields.items():
        setattr(alert, name, value)
    alert.save(update_fields=list(fields))
    if rises:
        _route(alert, batch, now)


# --- Routing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteDecision:
    """What a new alert does: opens (or joins) an incident, or is recorded only."""

    rule: AlertRule | None
    opens: bool
    rule_severity: Severity | None
    grouping: str  # a RuleGrouping, or "default": same group first, then the window
    window: timedelta
    alert_severity: str = ""

    @property
    def severity(self) -> Severity | None:
        """The incident severity it opens at; None if it is recorded only. For the default
        this is a lookup, so routing asks only when it opens an incident (joining one
        needs no severity)."""
        if not self.opens:
            return None
        return self.rule_severity or default_severity_for(self.alert_severity)


DEFAULT_GROUPING = "default"


def default_severity_for(alert_severity: str) -> Severity | None:
    """The incident severity an alert opens with no rule: SEV1/SEV2 by name; if an
    administrator renamed them, the closest level that exists."""
    sev_name = PAGING_SEVERITIES.get(alert_severity)
    if sev_name is None:
        return None
    return (
        Severity.objects.filter(name=sev_name).first()
        or Severity.objects.filter(level__gte=1 if sev_name == "SEV1" else 2).first()
        or Severity.objects.order_by("-level").first()
    )


def alert_facts(alert: Alert) -> AlertFacts:
    return AlertFacts(
        title=alert.title,
        severity=alert.severity,
        source=alert.source,
        group_key=alert.group_key,
        integration=alert.integration.kind,
        labels=alert.labels,
        annotations=alert.annotations,
    )


def route_decision(*, alert: Alert, rules: list[AlertRule] | None = None) -> RouteDecision:
    """The first of the service's rules whose matchers all hold decides; with none that
    matches, the default (critical and error open an incident, the rest are recorded)."""
    if rules is None:
        rules = list(AlertRule.objects.filter(service=alert.service_id).select_related("severity"))
    facts = alert_facts(alert)
    for rule in rules:
        if all_hold(rule.matchers, facts):
            window = timedelta(minutes=rule.window_minutes) if rule.window_minutes else _window()
            opens = rule.action == RuleAction.OPEN and rule.severity_id is not None
            return RouteDecision(rule, opens, rule.severity, rule.grouping, window, alert.severity)
    opens = alert.severity in PAGING_SEVERITIES
    return RouteDecision(None, opens, None, DEFAULT_GROUPING, _window(), alert.severity)


def service_in_maintenance(*, service_id: int, at) -> MaintenanceWindow | None:
    return (
        MaintenanceWindow.objects.filter(
            service=service_id, cancelled_at__isnull=True, starts_at__lte=at, ends_at__gt=at
        )
        .order_by("ends_at")
        .first()
    )


@dataclass(frozen=True)
class _RoutingFacts:
    in_maintenance: bool
    has_rules: bool


def _routing_facts(service_id: int, now) -> _RoutingFacts:
    """Both in one round trip: the common service has no rules and no maintenance."""
    found = (
        Service.objects.filter(pk=service_id)
        .annotate(
            in_maintenance=Exists(
                MaintenanceWindow.objects.filter(
                    service=service_id,
                    cancelled_at__isnull=True,
                    starts_at__lte=now,
                    ends_at__gt=now,
                )
            ),
            has_rules=Exists(AlertRule.objects.filter(service=service_id)),
        )
        .values("in_maintenance", "has_rules")
        .first()
    ) or {"in_maintenance": False, "has_rules": False}
    return _RoutingFacts(bool(found["in_maintenance"]), bool(found["has_rules"]))


def _route(
    alert: Alert,
    batch: _TimelineBatch,
    now,
    facts: _RoutingFacts | None = None,
    joined: tuple[int | None] | None = None,
) -> None:
    """Open or join an incident for an alert that may wake someone up (row written by
    this transaction). Joining an open incident takes no service lock; opening one does."""
    facts = facts or _routing_facts(alert.service_id, now)
    if facts.in_maintenance:
        alert.in_maintenance = True
        Alert.objects.filter(pk=alert.pk).update(in_maintenance=True)
        return
    decision = route_decision(alert=alert, rules=None if facts.has_rules else [])
    alert.rule = decision.rule
    if not decision.opens:
        if decision.rule is not None:
            Alert.objects.filter(pk=alert.pk).update(rule=decision.rule)
        return
    # `joined`: the INSERT already looked (and attached the alert if it found one).
    incident_id = joined[0] if joined is not None else _join_incident(alert, decision)
    attached = incident_id is not None  # the alert row already names it, arrival pending
    opened = False
    if incident_id is None:
        severity = decision.severity
        if severity is None:  # no severities configured: the alert is recorded only
            return
        # One opener per service at a time, so two alerts arriving together open one
        # incident: the second looks again once the first has committed. NO KEY: alerts
        # being inserted meanwhile share-lock the service in their foreign-key checks;
        # FOR UPDATE would wait on them while they wait on us for the incident (deadlock).
        Service.objects.select_for_update(no_key=True).filter(pk=alert.service_id).first()
        incident_id = _incident_to_join(alert, decision)
        if incident_id is None:
            incident_id = incident_declare(
                declared_by=None,
                title=alert.title[:200] or "Alert",
                severity=severity,
                detection_source=DetectionSource.ALERT,
                services=[alert.service],
                summary=_summary(alert),
                page=True,
            ).pk
            opened = True
    alert.incident_id = incident_id
    # The first alert to join in a burst is written now and schedules one entry for the
    # rest; the rest are left pending (no incident lock, no timeline write each).
    burst = None if opened else _first_of_burst(incident_id)
    first_of_burst = opened or burst is not None
    if not attached:
        Alert.objects.filter(pk=alert.pk).update(incident=incident_id, rule=decision.rule)
        if not first_of_burst:
            AlertArrival.objects.create(alert_id=alert.pk, incident_id=incident_id)
    # Attached and first of its burst: its arrival is still pending; flush() takes it with
    # the incident's other pending arrivals (and names this one only once).
    if first_of_burst:
        batch.fired[incident_id].append((alert, opened))
        if not opened:
            batch.gather_after[incident_id] = burst


def _summary(alert: Alert) -> str:
    lines = [f"Opened by alert from {alert.integration.name} on {alert.service.name}."]
    description = alert.annotations.get("description") if alert.annotations else None
    if isinstance(description, str):
        lines.append(description[:2000])
    return "\n\n".join(lines)


def _join_sql(where: str) -> str:
    """The newest alert matching `where` whose incident is open: its incident's id.

    Raw and composed once, because every new alert that may page runs it (composing it
    with the ORM cost as much as running it)."""
    statuses = ", ".join(f"'{s}'" for s in OPEN_STATUSES)
    return (
        f"SELECT a.incident_id FROM {Alert._meta.db_table} a "
        f"WHERE {where} AND a.id <> %s AND "
        # The incident's status by a subquery per alert walked, not a join: a join let
        # the planner, its statistics taken while few alerts were in incidents (a new
        # install, or before autovacuum's next analyse), hash every alert of the window
        # and sort them, for each new alert of a storm (measured: 8 ms each at 4,000). A
        # subquery in an expression is never turned into a join, so the index below is
        # walked newest first and the walk stops at the first alert of an open incident.
        f"(SELECT i.status FROM {Incident._meta.db_table} i WHERE i.id = a.incident_id) "
        f"IN ({statuses}) "
        "ORDER BY a.last_seen DESC LIMIT 1"
    )


_JOIN_SAME_GROUP = _join_sql(
    "a.integration_id = %s AND a.group_key = %s AND NOT (a.status = 'resolved')"
)
# On PostgreSQL the same lookup in a function (migration 0019) that walks the
# (integration, md5(group_key), -last_seen) index of open grouped alerts newest first and
# stops at the first in an open incident: planned with sorting and bitmap scans off, as
# on statistics that lagged behind a storm the planner otherwise read and sorted every
# open alert of the group for each new one.
_JOIN_SAME_GROUP_PG = "SELECT firebreak_alert_group_incident(%s, %s, %s)"


def _same_group_sql(vendor: str) -> str:
    return _JOIN_SAME_GROUP_PG if vendor == "postgresql" else _JOIN_SAME_GROUP


def _same_group_lookup(integration_id: int, group_key: str, exclude: int) -> tuple[str, list]:
    return _same_group_sql(connection.vendor), [integration_id, group_key, exclude]


# Alerts in an incident routed by the same rule (or all by the default) within the
# window, each shape by its own partial index, whose order is the lookup's: the
# (service, -last_seen) index of alerts routed by no rule, and (service, rule,
# -last_seen) of those routed by one. (One index for both, ordered by rule_id too, let the
# planner prefer the service's index of all alerts plus a sort once its statistics
# lagged behind a storm: every alert of the window read for each new one.)
_JOIN_WINDOW_DEFAULT = _join_sql(
    "a.service_id = %s AND a.rule_id IS NULL AND a.last_seen >= %s AND a.incident_id IS NOT NULL"
)
_JOIN_WINDOW_RULE = _join_sql(
    "a.service_id = %s AND a.rule_id = %s AND a.last_seen >= %s AND a.incident_id IS NOT NULL "
    "AND a.rule_id IS NOT NULL"
)


def _first_value(sql: str, params: list):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None


def _join_lookups(alert: Alert, decision: RouteDecision) -> list[tuple[str, list]]:
    """The lookups that find an incident to join, in the order they are asked."""
    lookups = []
    if decision.grouping == RuleGrouping.NONE:
        return lookups
    if alert.group_key and decision.grouping in (RuleGrouping.GROUP_KEY, DEFAULT_GROUPING):
        lookups.append(_same_group_lookup(alert.integration_id, alert.group_key, alert.pk))
    if decision.grouping in (RuleGrouping.WINDOW, DEFAULT_GROUPING):
        since = connection.ops.adapt_datetimefield_value(alert.first_seen - decision.window)
        if decision.rule is None:
            lookups.append((_JOIN_WINDOW_DEFAULT, [alert.service_id, since, alert.pk]))
        else:
            lookups.append(
                (_JOIN_WINDOW_RULE, [alert.service_id, decision.rule.pk, since, alert.pk])
            )
    return lookups


def _incident_to_join(alert: Alert, decision: RouteDecision) -> int | None:
    for sql, params in _join_lookups(alert, decision):
        found = _first_value(sql, params)
        if found is not None:
            return found
    return None


def _join_incident(alert: Alert, decision: RouteDecision) -> int | None:
    """Find the incident to join and attach the alert to it (rule set, arrival pending) in
    one statement on PostgreSQL: the lookups run inside the UPDATE (COALESCE asks the next
    only if the one before found nothing). Returns the incident's id, or None with the row
    untouched when there is none to join. Joining is most of an alert storm, so it is the
    round trip saved."""
    lookups = _join_lookups(alert, decision)
    if not lookups:
        return None
    table = Alert._meta.db_table
    found = ", ".join(f"({sql})" for sql, _ in lookups)
    if len(lookups) > 1:
        found = f"COALESCE({found})"
    sql = (
        f"UPDATE {table} SET incident_id = j.join_id, rule_id = %s "
        f"FROM (SELECT {found} AS join_id) j "
        f"WHERE {table}.id = %s AND j.join_id IS NOT NULL RETURNING incident_id, id"
    )
    params = [decision.rule.pk if decision.rule else None]
    for _, lookup_params in lookups:
        params.extend(lookup_params)
    params.append(alert.pk)
    if connection.vendor == "postgresql":
        return _first_value(_with_pending_arrival(sql, new_only=False), params)
    incident_id = _first_value(sql, params)  # SQLite: no data-modifying CTE, two statements
    if incident_id is not None:
        AlertArrival.objects.create(alert_id=alert.pk, incident_id=incident_id)
    return incident_id


# --- What people (and monitoring tools) do to an alert ------------------------------------


def _stop_paging(incident: Incident, *, actor, now) -> int:
    """Acknowledge the incident's running escalations. Caller holds the incident's lock.

    A person goes through oncall's escalation_acknowledge (its event writes "X acknowledged
    the page" on the timeline). A monitoring tool is nobody oncall can name, so its
    acknowledgement stops the escalation the same way without a person.
    """
    from incidents.paging import subject_key
    from oncall import services as oncall
    from oncall.models import Escalation

    running = list(
        Escalation.objects.select_for_update().filter(
            subject_key=subject_key(incident), state=Escalation.State.ACTIVE
        )
    )
    for escalation in running:
        if actor is not None:
            with contextlib.suppress(oncall.PagingRefused):  # ended meanwhile
                oncall.escalation_acknowledge(escalation=escalation, user=actor, via="alerts page")
            continue
        escalation.state = Escalation.State.ACKNOWLEDGED
        escalation.acknowledged_at = now
        escalation.next_step_at = None
        escalation.ended_at = now
        escalation.save()
        oncall._cancel_pending(escalation)
    return len(running)


def _acknowledge(alert: Alert, *, actor, now) -> None:
    """Caller holds the alert's row lock and has checked it is firing."""
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acknowledged_at = now
    alert.acknowledged_by = actor
    alert.last_seen = now if actor is None else alert.last_seen
    alert.save(update_fields=["status", "acknowledged_at", "acknowledged_by", "last_seen"])
    if alert.incident_id is None:
        return
    incident = Incident.objects.select_for_update(no_key=True).get(pk=alert.incident_id)
    stopped = _stop_paging(incident, actor=actor, now=now)
    if incident.acknowledged_at is None:
        incident.acknowledged_at = now
        incident.save(update_fields=["acknowledged_at"])
    who = _name(actor) if actor is not None else "The monitoring tool"
    body = f"{who} acknowledged the alert: {alert.title}."
    if stopped:
        body += " Paging stopped."
    timeline_record(
        incident=incident,
        kind=TimelineKind.ALERT,
        actor=actor,
        body=body,
        data={"alert": alert.pk, "event": "acknowledged", "paging_stopped": stopped},
    )


def _resolve(alert: Alert, *, now, batch: _TimelineBatch) -> None:
    """Caller holds the alert's row lock and has checked it is open."""
    alert.status = AlertStatus.RESOLVED
    alert.resolved_at = now
    alert.last_seen = now
    alert.save(update_fields=["status", "resolved_at", "last_seen"])
    if alert.incident_id:
        batch.resolved[alert.incident_id].append(alert)


def alert_acknowledge(*, alert: Alert, actor=None) -> bool:
    """Acknowledge a firing alert. If it belongs to an incident, that incident's paging
    stops (its running escalations are acknowledged) and the timeline says so.

    The same path as a PagerDuty `acknowledge` event (actor None: the monitoring tool).
    Idempotent: an alert already acknowledged or resolved changes nothing; returns whether
    anything changed. Takes the alert's row lock, then the incident's.
    """
    with transaction.atomic():
        locked = Alert.objects.select_for_update().filter(pk=alert.pk).first()
        if locked is None or locked.status != AlertStatus.FIRING:
            return False
        _acknowledge(locked, actor=actor, now=timezone.now())
    return True


def alert_resolve(*, alert: Alert, actor=None) -> bool:
    """Resolve an open alert: the same path as a `resolve` event or Alertmanager's resolved
    notification (the timeline notes it; when the incident's last alert resolves it says
    so, and a rule with auto-resolve resolves the incident through incident_transition).

    Idempotent: a resolved alert changes nothing; returns whether anything changed.
    Takes the alert's row lock, then the incident's.
    """
    with transaction.atomic():
        locked = Alert.objects.select_for_update().filter(pk=alert.pk).first()
        if locked is None or locked.status == AlertStatus.RESOLVED:
            return False
        batch = _TimelineBatch(actor=actor)
        _resolve(locked, now=timezone.now(), batch=batch)
        batch.flush()
    return True


def alert_attach(*, alerts, incident: Incident, actor) -> int:
    """Attach alerts to an existing incident (moving them from another one if need be);
    one timeline entry names them. Returns how many were attached: alerts already on this
    incident are left alone, so repeating the request changes nothing.

    Locks the alerts (in id order), then the incident, the same order as intake.
    Refuses a closed incident with IncidentRefused.
    """
    with transaction.atomic():
        locked = list(
            Alert.objects.select_for_update()
            .filter(pk__in=[a.pk for a in alerts])
            .exclude(incident=incident.pk)
            .order_by("pk")
        )
        incident = _lock(incident)
        if incident.status == IncidentStatus.CLOSED:
            raise IncidentRefused("A closed incident cannot take more alerts.")
        if not locked:
            return 0
        # An arrival still pending on the incident they leave is dropped by its gathering.
        Alert.objects.filter(pk__in=[a.pk for a in locked]).update(incident=incident)
        noun = "an alert" if len(locked) == 1 else f"{len(locked)} alerts"
        timeline_record(
            incident=incident,
            kind=TimelineKind.ALERT,
            actor=actor,
            body=f"{_name(actor)} attached {noun} to this incident: {_titles(locked)}",
            data={"alert": locked[0].pk, "alerts": [a.pk for a in locked], "event": "attached"},
        )
    return len(locked)


def incident_declare_from_alert(
    *,
    alert: Alert,
    actor,
    severity: Severity | None = None,
    title: str = "",
    summary: str = "",
) -> Incident:
    """Declare an incident from an alert through incident_declare (which starts the
    service's escalation) and attach the alert to it.

    Severity: the given one, else what the alert's routing would choose, else the least
    severe level. Refuses (IncidentRefused) an alert already in an open incident, so a
    double click declares once. Takes the alert's row lock for the whole of it.
    """
    with transaction.atomic():
        locked = (
            Alert.objects.select_for_update()
            .select_related("integration", "service")
            .filter(pk=alert.pk)
            .first()
        )
        if locked is None:
            raise IncidentRefused("That alert no longer exists.")
        if locked.incident_id is not None:
            current = Incident.objects.get(pk=locked.incident_id)
            if current.is_open:
                raise IncidentRefused(f"This alert is already part of {current.reference}.")
        severity = (
            severity
            or route_decision(alert=locked).severity
            or Severity.objects.order_by("-level").first()
        )
        if severity is None:
            raise IncidentRefused("No severities are configured.")
        incident = incident_declare(
            declared_by=actor,
            title=(title or locked.title)[:200] or "Alert",
            severity=severity,
            detection_source=DetectionSource.ALERT,
            services=[locked.service],
            summary=summary or _summary(locked),
            page=True,
        )
        locked.incident = incident
        locked.save(update_fields=["incident"])
        incident = _lock(incident)
        timeline_record(
            incident=incident,
            kind=TimelineKind.ALERT,
            actor=actor,
            body=f"{_name(actor)} declared this incident from the alert: {locked.title}",
            data={"alert": locked.pk, "event": "declared_from", "severity": locked.severity},
        )
    return incident


# --- Routing rules and maintenance windows ----------------------------------------------


def alert_rule_save(
    *,
    service: Service,
    rule: AlertRule | None = None,
    name: str,
    matchers: list[dict],
    action: str,
    severity: Severity | None,
    grouping: str,
    window_minutes: int | None,
    auto_resolve: bool,
) -> AlertRule:
    """Create a rule at the end of the service's list, or change one in place. Alerts
    already routed keep what they did; the rule applies to alerts from now on."""
    with transaction.atomic():
        Service.objects.select_for_update(no_key=True).filter(pk=service.pk).first()  # positions
        if rule is None:
            last = (
                service.alert_rules.order_by("-position").values_list("position", flat=True).first()
            )
            rule = AlertRule(service=service, position=0 if last is None else last + 1)
        rule.name = name.strip()
        rule.matchers = matchers
        rule.action = action
        rule.severity = severity if action == RuleAction.OPEN else None
        rule.grouping = grouping
        rule.window_minutes = window_minutes if grouping == RuleGrouping.WINDOW else None
        rule.auto_resolve = auto_resolve and action == RuleAction.OPEN
        rule.save()
    return rule


def alert_rule_delete(*, rule: AlertRule) -> None:
    with transaction.atomic():
        Service.objects.select_for_update(no_key=True).filter(pk=rule.service_id).first()
        AlertRule.objects.filter(pk=rule.pk).delete()


def alert_rule_move(*, rule: AlertRule, up: bool) -> bool:
    """Swap the rule with its neighbour above (or below); False at either end. Holds the
    service's row lock so two people reordering at once cannot interleave."""
    with transaction.atomic():
        Service.objects.select_for_update(no_key=True).filter(pk=rule.service_id).first()
        rules = list(AlertRule.objects.filter(service=rule.service_id).order_by("position", "pk"))
        index = next((i for i, r in enumerate(rules) if r.pk == rule.pk), None)
        if index is None:
            return False
        other = index - 1 if up else index + 1
        if not 0 <= other < len(rules):
            return False
        rules[index], rules[other] = rules[other], rules[index]
        for position, each in enumerate(rules):  # also tidies gaps left by deletions
            if each.position != position:
                AlertRule.objects.filter(pk=each.pk).update(position=position)
    return True


def maintenance_window_create(
    *, service: Service, actor, starts_at, ends_at, reason: str
) -> MaintenanceWindow:
    return MaintenanceWindow.objects.create(
        service=service,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason.strip(),
        created_by=actor,
    )


def maintenance_window_cancel(*, window: MaintenanceWindow, actor) -> bool:
    """End a window now (or drop one not yet started). Idempotent: False if it was already
    cancelled or over. Alerts it held back and that still fire are released on commit."""
    now = timezone.now()
    changed = MaintenanceWindow.objects.filter(
        pk=window.pk, cancelled_at__isnull=True, ends_at__gt=now
    ).update(cancelled_at=now, cancelled_by=actor)
    if changed:
        transaction.on_commit(routing_tasks.alerts_maintenance_release.delay, robust=True)
    return bool(changed)


def alerts_release_from_maintenance(*, now=None, limit: int = 500) -> int:
    """Route the alerts a maintenance window held back that still fire now it is over: an
    outage that began during planned work and outlasted it must page someone, and a
    monitoring tool may not repeat the alert for hours. Returns how many were routed.

    `in_maintenance` means "held back": it is cleared under the alert's row lock before
    routing, so two sweeps (or a sweep racing a repeat) route each alert once. Alerts
    someone acknowledged or that resolved are left alone; so is one that already joined
    an incident.
    """
    now = now or timezone.now()
    still_on = MaintenanceWindow.objects.filter(
        starts_at__lte=now, ends_at__gt=now, cancelled_at__isnull=True
    ).values("service_id")
    candidates = list(
        Alert.objects.filter(in_maintenance=True, status=AlertStatus.FIRING, incident__isnull=True)
        .exclude(service_id__in=still_on)
        .order_by("first_seen", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    released = 0
    for pk in candidates:
        with transaction.atomic():
            alert = (
                Alert.objects.select_for_update()
                .filter(
                    pk=pk, in_maintenance=True, status=AlertStatus.FIRING, incident__isnull=True
                )
                .first()
            )
            if alert is None:
                continue
            Alert.objects.filter(pk=pk).update(in_maintenance=False)
            alert.in_maintenance = False
            batch = _TimelineBatch()
            _route(alert, batch, now)
            batch.flush()
            released += 1
    return released
