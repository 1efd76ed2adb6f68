"""Status page under a stampede: requests/s and latency with 100 concurrent clients, beside a
static file served by the same server in the same run.

    .venv/bin/python -m bench.status_page [--duration 10] [--connections 100] [--workers 2]

Builds a public status page through the real services (12 components in 3 groups, 90 days of
status intervals, 3 active incidents with 4 published updates each), starts gunicorn the
production way (config.wsgi, sync workers, 127.0.0.1, DJANGO_SETTINGS_MODULE=bench.settings:
PostgreSQL + Redis, DEBUG off; static files collected and served by WhiteNoise, as in
production), then loads each URL in turn for a fixed time:

  static file          /static/statuspages/statuspages.css   (WhiteNoise, the baseline)
  status page          /status/bench-status/
  JSON summary         /status/bench-status/summary.json
  badge                /status/bench-status/badge.svg
  conditional GET      /status/bench-status/  with If-None-Match (304)

The load client is wrk when installed (else a small asyncio client), bounded by time and
count, 127.0.0.1 only. Also checks before loading that a change is visible at once (publish,
then the next GET shows it) and reports how many SQL queries a cached hit costs (none).

Target (shared/docs/targets.md): >= 1,000 req/s, p99 < 200 ms, >= 50% of the static file.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from datetime import timedelta

from bench.common import ROOT, setup_django, write_result
from bench.timeline_poll import Gunicorn, _wrk_ms, request, run_asyncio, run_wrk

SLUG = "bench-status"
STATIC_PATH = "/static/statuspages/statuspages.css"
RPS_TARGET = 1000
P99_TARGET_MS = 200
RATIO_TARGET = 0.5


def build_page():
    """The bench page, rebuilt on every run through the real services."""
    from django.utils import timezone

    from bench.common import bench_services, bench_users
    from incidents.models import Incident, Severity
    from incidents.services import incident_declare
    from incidents.statuspages.models import (
        Component,
        ComponentGroup,
        ComponentStatus,
        ComponentStatusInterval,
        StatusPage,
    )
    from incidents.statuspages.services import component_status_set, status_update_publish

    responders, _ = bench_users()
    lead = responders[0]
    StatusPage.objects.filter(slug=SLUG).delete()
    Incident.objects.filter(title__startswith="[bench] status page").delete()
    page = StatusPage.objects.create(
        slug=SLUG, title="Bench status", description="A busy day.", time_zone="Europe/London"
    )
    services = bench_services()
    long_ago = timezone.now() - timedelta(days=120)
    components = []
    for g, group_name in enumerate(["Shop", "Platform", "Data"]):
        group = ComponentGroup.objects.create(page=page, name=group_name, order=g)
        for n in range(4):
            c = Component.objects.create(
                page=page, group=group, name=f"{group_name} {n + 1}", order=n, created_at=long_ago
            )
            c.services.set(services[:1] if n == 0 else [])
            components.append(c)
    # 90 days of history: a short outage on every component every ~9 days.
    now = timezone.now()
    rows = []
    for i, c in enumerate(components):
        for day in range(85, 0, -9):
            start = now - timedelta(days=day, hours=i)
            status = [
                ComponentStatus.DEGRADED_PERFORMANCE,
                ComponentStatus.PARTIAL_OUTAGE,
                ComponentStatus.MAJOR_OUTAGE,
            ][day % 3]
            rows.append(
                ComponentStatusInterval(
                    component=c,
                    status=status,
                    started_at=start,
                    ended_at=start + timedelta(hours=2),
                )
            )
            rows.append(
                ComponentStatusInterval(
                    component=c,
                    status=ComponentStatus.OPERATIONAL,
                    started_at=start + timedelta(hours=2),
                    ended_at=start + timedelta(days=9) - timedelta(hours=1),
                )
            )
    ComponentStatusInterval.objects.bulk_create(rows)
    for n in range(3):
        incident = incident_declare(
            declared_by=lead,
            title=f"[bench] status page incident {n}",
            severity=Severity.objects.get(name="SEV2"),
            detection_source="alert",
            services=services[:1],
            page=False,
        )
        for k, status in enumerate(["investigating", "identified", "monitoring", "monitoring"]):
            status_update_publish(
                incident=incident,
                pages=[page],
                status=status,
                title=f"Problem {n + 1} with the shop",
                message=f"Update {k + 1}: we are **working on it**; next update in 30 minutes.",
                actor=lead,
            )
        component_status_set(
            component=components[n * 4],
            status=ComponentStatus.PARTIAL_OUTAGE,
            actor=lead,
            incident=incident,
        )
    return page, incident, lead


def queries_for_cached_hit(path: str) -> int:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.get(path)
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(path).status_code == 200
    return len(ctx)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--client", choices=["auto", "wrk", "asyncio"], default="auto")
    args = parser.parse_args()

    setup_django()
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)
    page, incident, lead = build_page()
    page_path = f"/status/{SLUG}/"
    urls = {
        "static file (baseline)": STATIC_PATH,
        "status page": page_path,
        "JSON summary": f"{page_path}summary.json",
        "SVG badge": f"{page_path}badge.svg",
    }
    cached_queries = queries_for_cached_hit(page_path)

    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
    load = run_wrk if use_wrk else run_asyncio
    log_path = ROOT / "var" / "bench" / "status_page-gunicorn.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    server = Gunicorn(workers=args.workers, log_path=log_path)
    results: dict[str, dict] = {}
    try:
        server.start()
        # A publish is visible on the very next request (the cache is dropped on commit).
        status, _, body = request("GET", server.port, page_path)
        assert status == 200, status
        from incidents.statuspages.services import status_update_publish

        status_update_publish(
            incident=incident,
            pages=[page],
            status="monitoring",
            message="Freshness probe 42",
            actor=lead,
        )
        status, headers, body = request("GET", server.port, page_path)
        fresh = b"Freshness probe 42" in body
        etag = dict(headers).get("ETag") or dict(headers).get("etag")
        for path in urls.values():
            request("GET", server.port, path)  # warm: the first hit renders and caches
        for label, path in urls.items():
            results[label] = load(
                server.port,
                path,
                cookie=None,
                duration=args.duration,
                connections=args.connections,
            )
        if use_wrk and etag:
            results["conditional GET (304)"] = run_wrk_with_headers(
                server.port,
                page_path,
                headers={"If-None-Match": etag},
                duration=args.duration,
                connections=args.connections,
            )
    finally:
        server.stop()

    static = results["static file (baseline)"]
    print(
        f"\nclient: {'wrk' if use_wrk else 'asyncio'}, {args.connections} connections, "
        f"{args.duration:.0f} s each, gunicorn {args.workers} sync workers"
    )
    print(f"{'URL':28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs static':>10} {'errors':>7}")
    for label, r in results.items():
        if "rps" not in r:
            continue
        ratio = r["rps"] / static["rps"] if static["rps"] else 0
        print(
            f"{label:28} {r['rps']:9.0f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
            f"{ratio:10.0%} {r['errors'] + r['bad_status']:7d}"
        )
    print(f"\nSQL queries for a cached hit (in-process): {cached_queries}")
    print(f"publish visible on the next request: {'yes' if fresh else 'NO'}")
    met = {}
    for label in ("status page", "JSON summary"):
        r = results[label]
        met[label] = (
            r["rps"] >= RPS_TARGET
            and r["p99_ms"] < P99_TARGET_MS
            and r["rps"] / static["rps"] >= RATIO_TARGET
        )
        print(
            f"target {label}: >= {RPS_TARGET} req/s, p99 < {P99_TARGET_MS} ms, "
            f">= {RATIO_TARGET:.0%} of static -> {'MET' if met[label] else 'MISSED'}"
        )
    write_result(
        "status_page",
        {
            "connections": args.connections,
            "duration_s": args.duration,
            "workers": args.workers,
            "client": "wrk" if use_wrk else "asyncio",
            "http": results,
            "cached_hit_queries": cached_queries,
            "publish_visible_next_request": fresh,
            "target_met": met,
        },
    )
    return 0


def run_wrk_with_headers(
    port: int, path: str, *, headers: dict[str, str], duration: float, connections: int
) -> dict:
    """wrk with extra request headers (If-None-Match: what a revalidating reader costs).
    wrk counts 304 as a success (2xx or 3xx)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--latency", "--timeout", "5s"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    total = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
    seconds = _wrk_ms(total.group(2), total.group(3)) / 1000
    lat = {
        k: _wrk_ms(v, u)
        for k, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)$", out, re.M)
    }
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": int(total.group(1)),
        "seconds": seconds,
        "rps": int(total.group(1)) / seconds,
        "p50_ms": lat["50"],
        "p99_ms": lat["99"],
        "errors": sum(int(g) for g in errors.groups()) if errors else 0,
        "bad_status": int(non2xx.group(1)) if non2xx else 0,
    }


if __name__ == "__main__":
    sys.exit(main())
