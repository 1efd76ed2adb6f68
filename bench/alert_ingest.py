"""Alert ingestion and the dedup storm, through gunicorn, against a bare INSERT endpoint.

    .venv/bin/python -m bench.alert_ingest [--duration 10] [--senders 32] [--storm 10000]

Starts gunicorn the production way (config.wsgi via bench.urls, 2 sync workers, 127.0.0.1,
a free port, bench.settings: PostgreSQL + Redis, DEBUG off), a real Celery worker and beat
(they gather each burst's arrivals onto the incident's timeline, page, and sweep), and a
load client on loopback,
bounded by time and count: wrk with bench/alert_ingest.lua when installed (C: it leaves the
2 cores to the server), else (or with --client asyncio) a small asyncio client, which takes
a good part of a core from the server it measures:

  bare INSERT     POST /bench/bare-insert/           the body into a one-column table
  ingestion       POST /integrations/<token>/pagerduty  a new dedup_key each time, severity
                  error: stored, deduplicated, grouped into one incident on the service
  alertmanager    POST /integrations/<token>/alertmanager  notifications of one group, each
                  with one new alert (critical): grouped into one incident
  dedup storm     the same dedup_key --storm times, severity critical

After the runs it checks what a user would: every accepted new alert is stored (with wrk,
by the dedup keys Firebreak answered 202 for) and, once the worker has gathered the last
burst, named on its incident's timeline exactly once; the storm left exactly one alert and
one incident.

Targets (shared/docs/targets.md): ingestion >= 200 alerts/s, p99 < 100 ms, >= 50% of the
bare INSERT; storm >= 1,000 events/s with exactly 1 alert and 1 incident.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import ROOT, percentile, setup_django, write_result
from bench.timeline_poll import HOST, Gunicorn, _wrk_ms

MAX_REQUESTS = 200_000


async def _load(port: int, path: str, bodies, *, senders: int, duration: float, limit: int):
    latencies: list[float] = []
    counts = {"bad_status": 0, "errors": 0}
    deadline = time.perf_counter() + duration
    sent = 0

    async def one(body: bytes) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            data = await reader.read()
        finally:
            writer.close()
        if not data.startswith((b"HTTP/1.1 202", b"HTTP/1.1 200")):
            counts["bad_status"] += 1

    async def sender() -> None:
        nonlocal sent
        while time.perf_counter() < deadline and sent < limit:
            sent += 1
            body = bodies()
            t0 = time.perf_counter()
            try:
                await asyncio.wait_for(one(body), timeout=10)
            except (TimeoutError, OSError):
                counts["errors"] += 1
                continue
            latencies.append((time.perf_counter() - t0) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(senders)))
    seconds = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "seconds": round(seconds, 2),
        "rps": round(len(latencies) / seconds, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        **counts,
    }


LUA = Path(__file__).with_suffix(".lua")


def _wrk(port: int, path: str, *, senders: int, duration: float, env: dict) -> dict:
    """One wrk run with bench/alert_ingest.lua (one thread: the client stays small)."""
    cmd = [
        "wrk", "-t1", f"-c{senders}", f"-d{max(1, int(duration))}s", "--latency",
        "--timeout", "10s", "-s", str(LUA), f"http://{HOST}:{port}{path}",
    ]  # fmt: skip
    mark = Path(tempfile.mkdtemp(prefix="alert-bench-mark-")) / "done"
    started = time.time()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=os.environ | env | {"ALERT_BENCH_MARK": str(mark)},
    )
    finished = None
    try:
        while proc.poll() is None and "ALERT_BENCH_LIMIT" in env:
            if mark.exists():  # the count is reached: wrk's own clock would run on to -d
                finished = mark.stat().st_mtime
                proc.send_signal(signal.SIGINT)  # wrk prints its summary and exits
                break
            time.sleep(0.005)
        out, _ = proc.communicate(timeout=duration + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(mark.parent, ignore_errors=True)
    total = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
    seconds = _wrk_ms(total.group(2), total.group(3)) / 1000
    if finished is not None:
        seconds = finished - started
    lat = {}
    for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)$", out, re.M):
        lat[pct] = _wrk_ms(value, unit)
    if "50" not in lat or "99" not in lat:
        raise RuntimeError(f"wrk printed no latency distribution for {path}:\n{out}")
    counted = re.search(r"ACCEPTED (\d+) RESPONSES (\d+)", out)
    accepted, responses = int(counted.group(1)), int(counted.group(2))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": accepted,
        "seconds": round(seconds, 2),
        "rps": round(accepted / seconds, 1),
        "p50_ms": round(lat["50"], 1),
        "p99_ms": round(lat["99"], 1),
        "bad_status": responses - accepted,
        "errors": sum(int(g) for g in errors.groups()) if errors else 0,
    }


def _settle() -> None:
    """Start each run from vacuumed tables and a fresh checkpoint, as a production server
    would between unrelated bursts.

    Vacuum: this machine's PostgreSQL runs with autovacuum off, so every earlier run's dead
    row versions (a storm leaves 10,000 of one row) stayed in the alert table and its
    indexes for good, while the bare INSERT's table starts empty: measured here, a storm
    after one unvacuumed storm ran at 978 events/s, after VACUUM at 1,265. Checkpoint: one
    that the previous run's WAL brought on would otherwise land in the next run (PostgreSQL
    then writes whole pages to the WAL on their first change after it), and which run it
    hits is chance: the ratios moved by up to 17 points between identical runs. Needs a
    superuser; without one the runs go on as they are."""
    from django.db import DatabaseError, connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE)")
            cursor.execute("CHECKPOINT")
    except DatabaseError as error:
        print(f"(no VACUUM and CHECKPOINT between runs: {error})")


HISTORY_SERVICES = 50
HISTORY_ALERTS = 2_000  # a service


def _forget_earlier_runs(team) -> None:
    """Every run starts from the same database, whatever ran before: earlier runs' alerts
    and incidents are deleted (the bare INSERT's table is emptied each run; the alert table
    had grown by some 30,000 rows a run, to 277,000 rows and 226 MB), over a fixed history
    of resolved alerts on HISTORY_SERVICES services, as a Firebreak in use holds. Not an
    empty table: analysed empty, PostgreSQL plans its lookups for a table of a few rows,
    and this machine's server (autovacuum off) never analyses it again as it grows.
    Alerts go by SQL: the ORM would load each one to unlink it from its incident."""
    from django.db import connection

    from incidents.alerting.services import integration_create
    from incidents.models import Alert, AlertArrival, Incident, Service

    history = list(
        Service.objects.filter(team=team, slug__startswith="bench-history-").values_list(
            "pk", flat=True
        )
    )
    runs = list(
        Service.objects.filter(team=team).exclude(pk__in=history).values_list("pk", flat=True)
    )
    with connection.cursor() as cursor:
        if runs:
            cursor.execute(
                f"DELETE FROM {AlertArrival._meta.db_table} WHERE alert_id IN "
                f"(SELECT id FROM {Alert._meta.db_table} WHERE service_id = ANY(%s))",
                [runs],
            )
            cursor.execute(f"DELETE FROM {Alert._meta.db_table} WHERE service_id = ANY(%s)", [runs])
        for n in range(len(history), HISTORY_SERVICES):
            service = Service.objects.create(
                name=f"Bench history {n}", slug=f"bench-history-{n}", team=team
            )
            integration, _ = integration_create(service=service, kind="pagerduty")
            cursor.execute(
                f"INSERT INTO {Alert._meta.db_table} (integration_id, service_id, dedup_key, "
                "group_key, status, title, severity, source, labels, annotations, payload, "
                "first_seen, last_seen, times_seen, resolved_at, in_maintenance) "
                "SELECT %s, %s, 'history-' || n, '', 'resolved', 'Past alert ' || n, 'error', "
                "'bench', '{}', '{}', '{}', now() - n * interval '1 minute', "
                "now() - n * interval '1 minute', 1, now() - n * interval '1 minute', false "
                "FROM generate_series(1, %s) n",
                [integration.pk, service.pk, HISTORY_ALERTS],
            )
    Incident.objects.filter(services__in=runs).delete()
    Service.objects.filter(pk__in=runs).delete()


def _start_celery(concurrency: int) -> list:
    """A Celery worker and beat on the bench's database and Redis, as production runs them."""
    if concurrency <= 0:
        return []
    from django.conf import settings

    from tests.oncall.faults import CeleryProcess, celery_env

    log_dir = ROOT / "var" / "bench" / "alert_ingest-celery"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = celery_env(
        broker_url=settings.REDIS_URL,
        settings_module="bench.settings",
        var_dir=log_dir,
        extra={"LOG_LEVEL": "WARNING"},
    )
    worker = CeleryProcess.worker(env=env, log_dir=log_dir, concurrency=concurrency).start()
    beat = CeleryProcess.beat(env=env, log_dir=log_dir).start()
    worker.wait_ready(60)
    beat.wait_ready(60)
    return [worker, beat]


def _wait_until_named(services: dict, timeout: float = 30.0) -> dict[str, int]:
    """Once the worker has gathered the last burst: how many alerts each run's incidents
    name on their timelines, -1 if any alert is named twice."""
    from incidents.models import AlertArrival, TimelineEntry

    deadline = time.monotonic() + timeout
    while AlertArrival.objects.filter(alert__service__in=services.values()).exists():
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    named: dict[str, int] = {}
    for run, service in services.items():
        ids = [
            alert
            for data in TimelineEntry.objects.filter(
                incident__services=service, data__event="fired"
            ).values_list("data", flat=True)
            for alert in data["alerts"]
        ]
        named[run] = len(ids) if len(ids) == len(set(ids)) else -1
    return named


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--storm", type=int, default=10_000)
    parser.add_argument(
        "--ingest-severity",
        default="error",
        help="error: every alert is routed into one incident; warning: recorded only",
    )
    parser.add_argument("--client", choices=["auto", "wrk", "asyncio"], default="auto")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument(
        "--celery-concurrency", type=int, default=1, help="Celery worker processes (0: none)"
    )
    args = parser.parse_args()
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "asyncio"

    setup_django()
    from django.db import connection

    from incidents.alerting.services import integration_create
    from incidents.models import Alert, Incident, Service
    from oncall.models import Team

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_bare_insert (id bigserial PRIMARY KEY, body text)"
        )
        cursor.execute("TRUNCATE bench_bare_insert")
    team, _ = Team.objects.get_or_create(name="Bench Alerts", defaults={"slug": "bench-alerts"})
    _forget_earlier_runs(team)
    run = uuid.uuid4().hex[:6]
    ingest_service = Service.objects.create(
        name=f"Bench ingest {run}", slug=f"bench-in-{run}", team=team
    )
    storm_service = Service.objects.create(
        name=f"Bench storm {run}", slug=f"bench-st-{run}", team=team
    )
    am_service = Service.objects.create(
        name=f"Bench alertmanager {run}", slug=f"bench-am-{run}", team=team
    )
    _, ingest_token = integration_create(service=ingest_service, kind="pagerduty")
    _, am_token = integration_create(service=am_service, kind="alertmanager")
    _, storm_token = integration_create(service=storm_service, kind="pagerduty")

    def event(key: str, severity: str) -> bytes:
        return json.dumps(
            {
                "event_action": "trigger",
                "dedup_key": key,
                "payload": {"summary": f"[bench] {key}", "source": "bench", "severity": severity},
            }
        ).encode()

    def am_notification(key: str) -> bytes:
        """An Alertmanager webhook of one group bringing one new alert."""
        return json.dumps(
            {
                "version": "4",
                "groupKey": '{}:{alertname="BenchAlert"}',
                "status": "firing",
                "receiver": "firebreak",
                "groupLabels": {"alertname": "BenchAlert"},
                "alerts": [
                    {
                        "status": "firing",
                        "labels": {"alertname": "BenchAlert", "instance": key},
                        "annotations": {"summary": f"[bench] {key}"},
                        "startsAt": "2026-11-22T00:00:00Z",
                        "endsAt": "0001-01-01T00:00:00Z",
                        "fingerprint": key,
                    }
                ],
            }
        ).encode()

    # The rate limit stays on (its Redis round trip is part of what is measured), set high
    # enough that a bench of one integration is never refused.
    os.environ.setdefault("ALERT_RATE_LIMIT_PER_MINUTE", "1000000")
    celery = _start_celery(args.celery_concurrency)
    server = Gunicorn(
        workers=args.workers, log_path=ROOT / "var" / "bench" / "alert_ingest-gunicorn.log"
    )
    Path(server.log_path).parent.mkdir(parents=True, exist_ok=True)
    server.start()
    keys_dir = Path(tempfile.mkdtemp(prefix="alert-bench-"))
    accepted_keys: set[str] = set()
    try:
        if client == "wrk":
            common = dict(senders=args.senders, duration=args.duration)
            _settle()
            bare = _wrk(server.port, "/bench/bare-insert/", env={}, **common)
            _settle()
            ingest = _wrk(
                server.port,
                f"/integrations/{ingest_token}/pagerduty",
                env={
                    "ALERT_BENCH_RUN": run,
                    "ALERT_BENCH_SEVERITY": args.ingest_severity,
                    "ALERT_BENCH_OUT": str(keys_dir),
                },
                **common,
            )
            _settle()
            alertmanager = _wrk(
                server.port,
                f"/integrations/{am_token}/alertmanager",
                env={
                    "ALERT_BENCH_RUN": run,
                    "ALERT_BENCH_FORMAT": "alertmanager",
                    "ALERT_BENCH_SEVERITY": "critical",
                },
                **common,
            )
            _settle()
            storm = _wrk(
                server.port,
                f"/integrations/{storm_token}/pagerduty",
                env={
                    "ALERT_BENCH_KEY": "one-key",
                    "ALERT_BENCH_SEVERITY": "critical",
                    "ALERT_BENCH_LIMIT": str(args.storm),
                },
                senders=args.senders,
                duration=max(args.duration * 6, 60),
            )
            for found in keys_dir.glob("*keys"):
                accepted_keys.update(found.read_text().split())
        else:
            load = dict(senders=args.senders, duration=args.duration, limit=MAX_REQUESTS)
            _settle()
            bare = asyncio.run(
                _load(
                    server.port,
                    "/bench/bare-insert/",
                    lambda: event(uuid.uuid4().hex, "error"),
                    **load,
                )
            )
            _settle()
            ingest = asyncio.run(
                _load(
                    server.port,
                    f"/integrations/{ingest_token}/pagerduty",
                    lambda: event(uuid.uuid4().hex, args.ingest_severity),
                    **load,
                )
            )
            _settle()
            alertmanager = asyncio.run(
                _load(
                    server.port,
                    f"/integrations/{am_token}/alertmanager",
                    lambda: am_notification(uuid.uuid4().hex),
                    **load,
                )
            )
            _settle()
            storm = asyncio.run(
                _load(
                    server.port,
                    f"/integrations/{storm_token}/pagerduty",
                    lambda: event("one-key", "critical"),
                    senders=args.senders,
                    duration=max(args.duration * 6, 60),
                    limit=args.storm,
                )
            )
        if celery:
            named = _wait_until_named({"ingestion": ingest_service, "alertmanager": am_service})
    finally:
        server.stop()
        for proc in celery:
            proc.stop()
        shutil.rmtree(keys_dir, ignore_errors=True)

    stored = Alert.objects.filter(service=ingest_service).count()
    if client == "wrk":
        # Every key Firebreak accepted is stored (a few more may have been in flight when
        # wrk stopped: never answered, so not counted as accepted, but stored all the same).
        accepted_stored = sum(
            Alert.objects.filter(service=ingest_service, dedup_key__in=chunk).count()
            for chunk in _chunks(sorted(accepted_keys), 5000)
        )
        all_stored = accepted_stored == len(accepted_keys) == ingest["requests"]
    else:
        accepted_stored = stored
        all_stored = stored == ingest["requests"]
    am_stored = Alert.objects.filter(service=am_service).count()
    am_incidents = Incident.objects.filter(services=am_service).count()
    storm_alerts = list(Alert.objects.filter(service=storm_service))
    storm_incidents = Incident.objects.filter(services=storm_service).count()
    all_named = not celery or named == {
        "ingestion": stored,
        "alertmanager": am_stored,
    }
    result = {
        "bare_insert": bare,
        "ingestion": ingest
        | {
            "alerts_stored": stored,
            "incidents": Incident.objects.filter(services=ingest_service).count(),
        },
        "alertmanager": alertmanager
        | {
            "alerts_stored": am_stored,
            "incidents": am_incidents,
            "vs_bare": round(alertmanager["rps"] / bare["rps"], 3) if bare["rps"] else None,
        },
        "storm": storm
        | {
            "alerts": len(storm_alerts),
            "times_seen": storm_alerts[0].times_seen if storm_alerts else 0,
            "incidents": storm_incidents,
        },
        "client": client,
        "celery_concurrency": args.celery_concurrency,
        "named_on_timeline": named if celery else None,
        "ingestion_vs_bare": round(ingest["rps"] / bare["rps"], 3) if bare["rps"] else None,
    }
    print(
        f"bare INSERT     {bare['rps']:8.1f} req/s  p50 {bare['p50_ms']} ms  "
        f"p99 {bare['p99_ms']} ms"
    )
    print(
        f"ingestion       {ingest['rps']:8.1f} alerts/s p50 {ingest['p50_ms']} ms  "
        f"p99 {ingest['p99_ms']} ms  = {result['ingestion_vs_bare']:.0%} of bare "
        f"(target >= 200/s, p99 < 100 ms, >= 50%); accepted and stored "
        f"{accepted_stored}/{ingest['requests']} ({stored} stored), "
        f"incidents {result['ingestion']['incidents']}"
    )
    print(
        f"alertmanager    {alertmanager['rps']:8.1f} alerts/s p50 {alertmanager['p50_ms']} ms  "
        f"p99 {alertmanager['p99_ms']} ms  = {result['alertmanager']['vs_bare']:.0%} of bare "
        f"(one new alert a notification, one group); stored {am_stored} for "
        f"{alertmanager['requests']} accepted, incidents {am_incidents}"
    )
    print(
        f"dedup storm     {storm['rps']:8.1f} events/s p99 {storm['p99_ms']} ms over "
        f"{storm['requests']} events: {len(storm_alerts)} alert(s), {storm_incidents} "
        f"incident(s), times_seen {result['storm']['times_seen']} (target >= 1000/s, 1 and 1)"
    )
    if celery:
        print(
            f"timeline        every stored alert named once on its incident's timeline: "
            f"{'yes' if all_named else f'NO {named}'}"
        )
    print(f"(client: {client}; Celery worker concurrency {args.celery_concurrency}, and beat)")
    print(f"written to {write_result('alert_ingest', result)}")
    ok = (
        all_stored
        and all_named
        and am_stored >= alertmanager["requests"]  # a few more may have been in flight
        and am_incidents == 1
        and len(storm_alerts) == 1
        and storm_incidents == 1
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
