"""Incident page: query count and server render time, 10 vs 2,000 timeline entries.

    .venv/bin/python -m bench.incident_page [--requests 30] [--entries 2000] [--tasks 20]

PostgreSQL + Redis (bench/settings.py). Both incidents are built through incidents.services.
Requests go through Django's full handler and middleware in-process (django.test.Client,
signed in as a responder, so every responder-only control renders). The baseline in the same
run is the 10-entry page and the bare login_required view.

Target (shared/docs/targets.md): query count constant (<= 20) from 10 to 2,000 entries;
server render < 150 ms.
"""

from __future__ import annotations

import argparse
import time

from bench.common import (
    QueryLog,
    build_incident,
    median,
    percentile,
    setup_django,
    short_sql,
    write_result,
)

QUERY_TARGET = 20
RENDER_TARGET_MS = 150.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page")
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--show-sql", action="store_true", help="print every query's SQL")
    args = parser.parse_args()

    setup_django()
    from django.conf import settings
    from django.core.cache import cache
    from django.test import Client
    from django.urls import reverse

    from bench.common import bench_users, delete_previous_bench_incidents

    cache.clear()  # the bench's own Redis database only
    delete_previous_bench_incidents("Small incident", "Long-running incident")
    responders, _viewer = bench_users()

    started = time.perf_counter()
    small = build_incident(title="Small incident", entries=10, tasks=2, pins=2)
    big = build_incident(
        title="Long-running incident", entries=args.entries, tasks=args.tasks, pins=20
    )
    build_s = time.perf_counter() - started
    small_n, big_n = small.timeline.count(), big.timeline.count()
    print(
        f"built incidents through the services in {build_s:.1f} s: "
        f"INC-{small.pk} {small_n} entries / {small.tasks.count()} tasks, "
        f"INC-{big.pk} {big_n} entries / {big.tasks.count()} tasks, "
        f"{big.timeline.filter(kind='note').count()} Markdown notes, "
        f"{big.timeline.filter(pinned=True).count()} pinned"
    )

    client = Client()
    client.force_login(responders[0])
    pages = {
        "bare login_required view": reverse("bench_bare_login"),
        f"incident page, {small_n} entries": reverse("incidents:detail", args=[small.pk]),
        f"incident page, {big_n} entries": reverse("incidents:detail", args=[big.pk]),
    }

    # Warm up: connections, template cache, URL resolver, session in Redis.
    for _ in range(3):
        for url in pages.values():
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)

    # Query counts: one request each, every query captured.
    captured: dict[str, list[tuple[str, float]]] = {}
    info: dict[str, dict] = {}
    for label, url in pages.items():
        with QueryLog() as log:
            response = client.get(url)
        assert response.status_code == 200, (label, response.status_code)
        body = response.content.decode()
        captured[label] = log.queries
        info[label] = {
            "queries": len(log.queries),
            "db_ms": log.total_ms,
            "bytes": len(response.content),
            "entries_rendered": body.count('id="entry-'),
        }

    # Render time: interleaved so drift hits every page alike.
    times: dict[str, list[float]] = {label: [] for label in pages}
    for _ in range(args.requests):
        for label, url in pages.items():
            t0 = time.perf_counter()
            response = client.get(url)
            times[label].append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200

    print()
    print(
        f"Incident page (GET /incidents/<pk>/, in-process, {args.requests} requests each, "
        f"PostgreSQL + Redis, TIMELINE_PAGE_SIZE={settings.TIMELINE_PAGE_SIZE})"
    )
    header = (
        f"{'':34} {'queries':>7} {'db ms':>7} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} "
        f"{'KiB':>6} {'entries':>7}"
    )
    print(header)
    rows = {}
    for label in pages:
        t = times[label]
        row = {
            **info[label],
            "median_ms": median(t),
            "p95_ms": percentile(t, 95),
            "max_ms": max(t),
        }
        rows[label] = row
        print(
            f"{label:34} {row['queries']:>7} {row['db_ms']:>7.1f} {row['median_ms']:>10.1f} "
            f"{row['p95_ms']:>8.1f} {row['max_ms']:>8.1f} {row['bytes'] / 1024:>6.0f} "
            f"{row['entries_rendered']:>7}"
        )

    small_label, big_label = list(pages)[1], list(pages)[2]
    q_small, q_big = rows[small_label]["queries"], rows[big_label]["queries"]
    big_p95 = rows[big_label]["p95_ms"]
    constant = q_small == q_big
    print()
    print(
        f"query count {q_small} -> {q_big} ({'constant' if constant else 'GROWS'}; target "
        f"constant and <= {QUERY_TARGET}): "
        f"{'MET' if constant and q_big <= QUERY_TARGET else 'MISSED'}"
    )
    print(
        f"render {big_n} entries: median {rows[big_label]['median_ms']:.1f} ms, p95 "
        f"{big_p95:.1f} ms (target < {RENDER_TARGET_MS:.0f} ms): "
        f"{'MET' if big_p95 < RENDER_TARGET_MS else 'MISSED'}; "
        f"{rows[big_label]['median_ms'] / rows[small_label]['median_ms']:.2f}x the "
        f"{small_n}-entry page, "
        f"{rows[big_label]['median_ms'] / rows[list(pages)[0]]['median_ms']:.1f}x the bare view"
    )

    print()
    print(f"Queries for the {big_n}-entry page (ms, SQL):")
    for i, (sql, ms) in enumerate(captured[big_label], 1):
        sql = " ".join(sql.split()) if args.show_sql else short_sql(sql)
        print(f"  {i:>2}. {ms:6.2f}  {sql}")
    people_marker = 'FROM "oncall_user" WHERE "oncall_user"."is_active"'
    people_sql = [sql for sql, _ in captured[big_label] if people_marker in sql]
    if not people_sql:
        print(
            "  note: no query for the 'people' dropdowns (active users): views._detail_context "
            "evaluates RoleForm.base_fields['user'].queryset, a class-level QuerySet whose "
            "result cache lives as long as the process; a fresh worker runs one more query."
        )
    if not constant:
        extra = {short_sql(sql, 90) for sql, _ in captured[big_label]} - {
            short_sql(sql, 90) for sql, _ in captured[small_label]
        }
        print("Queries only on the big page:", *sorted(extra), sep="\n  ")

    path = write_result(
        "incident_page",
        {
            "entries": {"small": small_n, "big": big_n},
            "build_seconds": build_s,
            "rows": rows,
            "query_count_constant": constant,
            "query_target_met": constant and q_big <= QUERY_TARGET,
            "render_target_met": big_p95 < RENDER_TARGET_MS,
            "queries_big": [[short_sql(sql, 400), ms] for sql, ms in captured[big_label]],
        },
    )
    print(f"\nresults: {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
