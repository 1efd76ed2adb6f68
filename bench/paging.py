"""Paging latency: incident declared -> first notification received by a local receiver.

    .venv/bin/python -m bench.paging [--incidents 200] [--rate 10] [--warmup 5]

Runs on its own PostgreSQL database (BENCH_PAGING_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/firebreak_bench_paging, created if missing) and a private
redis-server it starts on a free port of 127.0.0.1, so nothing else's queue is in the way.
Starts a real Celery worker (prefork, concurrency 2) and beat (production tick, every
ONCALL_TICK_SECONDS = 2 s) with bench.settings, and a signed-webhook receiver on 127.0.0.1
that timestamps every arrival and checks its signature.

One service's escalation policy pages one person whose only rule is a signed webhook at
0 minutes. Incidents are declared through incidents.services.incident_declare at a steady
rate; latency is from just before the call to the receiver's first byte of that incident's
webhook. The storm limit (NOTIFY_THROTTLE_COUNT, 5 per method per 10 minutes) is lifted in
the worker: one person receiving 200 pages would otherwise get 195 of them bundled, which
is the throttle working, not paging latency.

Baselines in the same run, same receiver, same spacing:
  - a bare Celery round trip: a task (no database) that POSTs to the receiver, measured
    from .delay() to arrival: the floor for anything a worker sends;
  - a loopback POST from this process to the receiver (new client each time, as notifiers
    do): the floor for any HTTP delivery.

Also prints where the time goes (from the rows' own timestamps): the declaring call, the
page created by the worker, the delivery claimed, and received.

Targets (shared/docs/targets.md): p50 < 1 s, p99 < 3 s over >= 200 incidents.
Stops everything it started; every loop and wait is bounded; only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import time
from pathlib import Path

from celery import shared_task

from bench.common import ROOT, TITLE_PREFIX, percentile, setup_django, write_result

P50_TARGET_MS = 1000
P99_TARGET_MS = 3000
WORK_DIR = ROOT / "var" / "bench" / "paging"
TITLE = f"{TITLE_PREFIX} paging"
SUBJECT_PREFIX = "incident:"


@shared_task(name="bench.paging.post_to_receiver", ignore_result=True)
def post_to_receiver(url: str, delivery_id: str) -> None:
    """The baseline task: no database, one POST, the same HTTP client as the notifiers."""
    import httpx

    with httpx.Client(timeout=5, follow_redirects=False) as client:
        client.post(
            url, content=b'{"baseline": true}', headers={"X-Firebreak-Delivery": delivery_id}
        )


# --- Setup -----------------------------------------------------------------------------


def bench_paging_data(receiver_url: str, secret: str):
    """The person paged (webhook only), their policy and service; the declarer."""
    from bench.common import bench_services, bench_users
    from incidents.models import Service
    from oncall.models import (
        ContactMethod,
        EscalationPolicy,
        EscalationStep,
        NotificationRule,
        StepTarget,
        User,
    )

    responders, _ = bench_users()
    declarer = responders[0]
    pager, _ = User.objects.get_or_create(
        username="bench-pager", defaults={"first_name": "Pat", "last_name": "Pager", "email": ""}
    )
    pager.contact_methods.all().delete()  # last run's receiver is gone
    method = ContactMethod.objects.create(
        user=pager, kind="webhook", address=receiver_url, secret=secret, label="bench receiver"
    )
    NotificationRule.objects.create(user=pager, contact_method=method, delay_minutes=0)
    policy, _ = EscalationPolicy.objects.get_or_create(
        name="Bench paging latency", defaults={"repeat_count": 0}
    )
    policy.repeat_count = 0
    policy.save()
    policy.steps.all().delete()
    step = EscalationStep.objects.create(policy=policy, position=0, delay_minutes=30)
    StepTarget.objects.create(step=step, kind="user", user=pager)
    team = bench_services()[0].team
    service, _ = Service.objects.get_or_create(
        slug="bench-paging-latency", defaults={"name": "Bench Paging Latency", "team": team}
    )
    service.escalation_policy = policy
    service.save()
    return declarer, service


def delete_bench_paging() -> int:
    """This benchmark's incidents and their escalations (pages and notifications cascade)."""
    from incidents.models import Incident
    from oncall.models import Escalation

    incidents = Incident.objects.filter(title__startswith=TITLE)
    keys = [f"{SUBJECT_PREFIX}{pk}" for pk in incidents.values_list("pk", flat=True)]
    Escalation.objects.filter(subject_key__in=keys).delete()
    deleted, _ = incidents.delete()
    return deleted


# --- Measuring -------------------------------------------------------------------------


def paced(count: int, rate: float, action) -> None:
    """Call action(i) for i in range(count), one every 1/rate seconds (never bursting)."""
    started = time.monotonic()
    for i in range(count):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        action(i)


def stats(values_ms: list[float]) -> dict:
    return {
        "n": len(values_ms),
        "p50_ms": percentile(values_ms, 50),
        "p95_ms": percentile(values_ms, 95),
        "p99_ms": percentile(values_ms, 99),
        "max_ms": max(values_ms) if values_ms else float("nan"),
    }


def fmt(s: dict) -> str:
    return (
        f"p50 {s['p50_ms']:7.1f} ms   p95 {s['p95_ms']:7.1f} ms   p99 {s['p99_ms']:7.1f} ms   "
        f"max {s['max_ms']:7.1f} ms   (n={s['n']})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="declarations per second")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--baseline", type=int, default=200, help="bare Celery round trips")
    args = parser.parse_args()
    if not (1 <= args.incidents <= 5000 and 0.5 <= args.rate <= 100):
        parser.error("--incidents 1..5000, --rate 0.5..100")

    from tests.oncall.faults import CeleryProcess, RedisServer, WebhookReceiver, celery_env

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    database_url = os.environ.get(
        "BENCH_PAGING_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/firebreak_bench_paging"
    )
    redis = RedisServer(WORK_DIR / "redis").start()
    receiver = WebhookReceiver().start()
    procs: list[CeleryProcess] = []
    run = secrets.token_hex(3)
    try:
        os.environ["BENCH_DATABASE_URL"] = database_url
        os.environ["BENCH_REDIS_URL"] = redis.url(0)
        setup_django()
        import httpx
        from django.db import connection
        from django.db.models import Count

        from incidents.models import Severity
        from incidents.services import incident_declare
        from oncall.models import Escalation, Notification

        if connection.vendor != "postgresql":
            raise SystemExit("bench.paging measures PostgreSQL: set BENCH_PAGING_DATABASE_URL")
        delete_bench_paging()
        secret = secrets.token_hex(16)
        receiver.secrets["/pager"] = secret
        declarer, service = bench_paging_data(receiver.url("/pager"), secret)
        severity = Severity.objects.get(name="SEV2")

        env = celery_env(
            broker_url=redis.url(0),
            settings_module="bench.settings",
            var_dir=WORK_DIR / "var",
            extra={
                "BENCH_DATABASE_URL": database_url,
                "BENCH_REDIS_URL": redis.url(0),
                "NOTIFY_THROTTLE_COUNT": "1000000",
                "LOG_LEVEL": "WARNING",
            },
        )
        for name in ("worker.log", "beat.log"):
            (WORK_DIR / name).unlink(missing_ok=True)
        worker = CeleryProcess.worker(
            env=env, log_dir=WORK_DIR, concurrency=2, include="bench.paging"
        ).start()
        beat = CeleryProcess.beat(env=env, log_dir=WORK_DIR).start()
        procs += [worker, beat]
        worker.wait_ready(60)
        beat.wait_ready(60)
        tick = float(env.get("ONCALL_TICK_SECONDS", "2"))

        declared: dict[int, dict] = {}  # n -> {"t0": unix time, "committed": ..., "pk": ...}

        def declare(n: int, label: str) -> None:
            t0 = time.time()
            incident = incident_declare(
                declared_by=declarer,
                title=f"{TITLE} {run} {label}#{n}",
                severity=severity,
                detection_source="alert",
                services=[service],
            )
            declared[n] = {"t0": t0, "committed": time.time(), "pk": incident.pk}

        pattern = re.compile(rf"{re.escape(TITLE)} {run} (\w*)#(\d+)")

        def arrivals(label: str) -> dict[int, float]:
            """n -> first arrival (unix time) of that incident's page."""
            first: dict[int, float] = {}
            for d in receiver.snapshot():
                match = pattern.search(d.title)
                if match and match.group(1) == label:
                    n = int(match.group(2))
                    first.setdefault(n, d.received_at)
            return first

        def wait_arrivals(label: str, ns, timeout: float) -> dict[int, float]:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                got = arrivals(label)
                if set(ns) <= set(got):
                    return got
                time.sleep(0.1)
            return arrivals(label)

        # Warm-up: the pool processes import and connect on their first tasks.
        warm = range(10_000, 10_000 + args.warmup)
        for n in warm:
            declare(n, "warm")
        wait_arrivals("warm", warm, 30)

        # Baseline 1: a bare Celery round trip to the same receiver, same spacing.
        sent_at: dict[str, float] = {}

        def celery_round_trip(i: int) -> None:
            did = f"baseline-{run}-{i}"
            sent_at[did] = time.time()
            post_to_receiver.delay(receiver.url("/baseline"), did)

        paced(args.baseline, args.rate, celery_round_trip)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not set(sent_at) <= set(receiver.counts()):
            time.sleep(0.1)
        baseline_celery = [
            (receiver.first(did).received_at - t) * 1000
            for did, t in sent_at.items()
            if receiver.first(did)
        ]

        # Baseline 2: a loopback POST from here, a new client each time as notifiers do.
        loopback = []
        for i in range(50):
            t = time.perf_counter()
            with httpx.Client(timeout=5) as client:
                client.post(
                    receiver.url("/loopback"),
                    content=b"{}",
                    headers={"X-Firebreak-Delivery": f"loopback-{run}-{i}"},
                )
            loopback.append((time.perf_counter() - t) * 1000)

        # The measurement.
        measured = range(args.incidents)
        load_before = os.getloadavg()
        cpu_before = worker.cpu_seconds()
        started = time.monotonic()
        paced(args.incidents, args.rate, lambda n: declare(n, ""))
        declare_seconds = time.monotonic() - started
        first = wait_arrivals("", measured, 60)
        worker_cpu_ms = (worker.cpu_seconds() - cpu_before) * 1000 / args.incidents
        missing = [n for n in measured if n not in first]
        latency = [(first[n] - declared[n]["t0"]) * 1000 for n in measured if n in first]
        declare_call = [(declared[n]["committed"] - declared[n]["t0"]) * 1000 for n in measured]

        # Where the time goes, from the rows (same clock: one machine).
        keys = {f"{SUBJECT_PREFIX}{declared[n]['pk']}": n for n in measured}
        page_ms, claim_ms = [], []
        for key, created, claimed in Notification.objects.filter(
            page__escalation__subject_key__in=list(keys)
        ).values_list("page__escalation__subject_key", "page__created_at", "claimed_at"):
            t0 = declared[keys[key]]["t0"]
            page_ms.append((created.timestamp() - t0) * 1000)
            if claimed:
                claim_ms.append((claimed.timestamp() - t0) * 1000)
        states = dict(
            Notification.objects.filter(page__escalation__subject_key__in=list(keys))
            .values_list("state")
            .annotate(n=Count("pk"))
        )
        escalations = Escalation.objects.filter(subject_key__in=list(keys)).count()

        pager_deliveries = [d for d in receiver.snapshot() if d.path == "/pager"]
        counts = {}
        for d in pager_deliveries:
            counts[d.delivery_id] = counts.get(d.delivery_id, 0) + 1
        duplicates = sum(c - 1 for c in counts.values())
        unsigned = sum(1 for d in pager_deliveries if not d.signature_ok)
        ticks = worker.count(r"oncall_tick\[[^\]]*\] received")

        result = stats(latency)
        celery_stats, loopback_stats = stats(baseline_celery), stats(loopback)
        met = result["p50_ms"] < P50_TARGET_MS and result["p99_ms"] < P99_TARGET_MS and not missing
        print(
            f"paging: {args.incidents} incidents declared through incident_declare at "
            f"{args.rate:g}/s (took {declare_seconds:.1f} s); PostgreSQL, private Redis, "
            f"celery worker prefork x2, beat tick {tick:g} s"
        )
        print(f"  declared -> first webhook received   {fmt(result)}")
        print(f"  baseline: bare Celery task -> POST   {fmt(celery_stats)}")
        print(f"  baseline: loopback POST (no Celery)  {fmt(loopback_stats)}")
        print(
            f"  ratio: paging p50 = {result['p50_ms'] / celery_stats['p50_ms']:.1f}x the bare "
            f"Celery round trip; p99 = {result['p99_ms'] / celery_stats['p99_ms']:.1f}x"
        )
        print(
            f"  stages, p50 from declare: call returned {percentile(declare_call, 50):.1f} ms, "
            f"page created {percentile(page_ms, 50):.1f} ms, delivery claimed "
            f"{percentile(claim_ms, 50):.1f} ms, received {result['p50_ms']:.1f} ms"
        )
        print(
            f"  deliveries: {len(first)}/{args.incidents} incidents received, "
            f"{len(missing)} missing, {duplicates} duplicate, {unsigned} unsigned; "
            f"{escalations} escalations, notification states {states}; {ticks} ticks received"
        )
        print(
            f"  worker CPU (main + pool, user + system) {worker_cpu_ms:.0f} ms per incident "
            f"-> its 2 processes saturate near {2000 / max(worker_cpu_ms, 1):.0f} incidents/s "
            f"if they "
            f"had both cores; load average {load_before[0]:.2f} before, "
            f"{os.getloadavg()[0]:.2f} after ({os.cpu_count()} cores, shared with whatever "
            "else runs here)"
        )
        print(
            f"  target p50 < {P50_TARGET_MS} ms, p99 < {P99_TARGET_MS} ms: "
            f"{'MET' if met else 'MISSED'}"
        )
        write_result(
            "paging",
            {
                "incidents": args.incidents,
                "rate_per_s": args.rate,
                "tick_seconds": tick,
                "latency": result,
                "baseline_celery_round_trip": celery_stats,
                "baseline_loopback_post": loopback_stats,
                "declare_call_p50_ms": percentile(declare_call, 50),
                "page_created_p50_ms": percentile(page_ms, 50),
                "claimed_p50_ms": percentile(claim_ms, 50),
                "missing": len(missing),
                "duplicates": duplicates,
                "unsigned": unsigned,
                "worker_cpu_ms_per_incident": worker_cpu_ms,
                "load_average_before": load_before[0],
                "target_met": met,
            },
        )
        return 0
    finally:
        for proc in reversed(procs):
            proc.stop(timeout=10)
        receiver.close()
        redis.stop()
        try:
            delete_bench_paging()
        except Exception as exc:  # noqa: BLE001 - never mask the run's own outcome
            print(f"note: could not delete this run's incidents: {exc}")
        print(f"(logs in {Path(WORK_DIR).relative_to(ROOT)}/)")


if __name__ == "__main__":
    raise SystemExit(main())
