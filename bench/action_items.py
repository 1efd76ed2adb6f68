"""Action-item dashboard: query count and server render time, 50 vs 5,000 items.

    .venv/bin/python -m bench.action_items [--requests 30] [--items 5000]

PostgreSQL + Redis (bench/settings.py). Items are bulk-inserted over 12 teams, 7 owners and
two incidents (one restricted, so the visibility filter is real). Requests go through the
full handler (django.test.Client, signed in as a responder). Baseline in the same run: the
same page with 50 items, and the bare login_required view.

Target (shared/docs/targets.md): constant query count; render < 200 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

from bench.common import QueryLog, median, percentile, setup_django, write_result

RENDER_TARGET_MS = 200.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--items", type=int, default=5000)
    args = parser.parse_args()
    setup_django()
    from django.core.cache import cache
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from bench.common import TITLE_PREFIX, bench_services, bench_users
    from incidents import services as incident_services
    from incidents.models import Incident, Severity
    from oncall.models import Team
    from postmortems.models import ActionItem

    cache.clear()
    Incident.objects.filter(title__startswith=f"{TITLE_PREFIX} Action items").delete()
    responders, _ = bench_users()
    teams = [
        Team.objects.get_or_create(name=f"Bench team {n}", defaults={"slug": f"bench-team-{n}"})[0]
        for n in range(12)
    ]

    def incident(title, restricted):
        return incident_services.incident_declare(
            declared_by=responders[0], title=f"{TITLE_PREFIX} Action items {title}",
            severity=Severity.objects.get(name="SEV2"), detection_source="alert",
            services=bench_services(), restricted=restricted,
        )  # fmt: skip

    def fill(count, incidents):
        today = timezone.localdate()
        ActionItem.objects.bulk_create(
            [
                ActionItem(
                    incident=incidents[n % len(incidents)], title=f"Bench action item {n}",
                    item_type=("detective", "preventive", "corrective")[n % 3],
                    status=("open", "in_progress", "done", "wont_do", "open")[n % 5],
                    wont_do_reason="superseded" if n % 5 == 3 else "",
                    owner=responders[n % len(responders)], team=teams[n % len(teams)],
                    due_date=today + dt.timedelta(days=n % 60 - 20), priority=n % 4 + 1,
                    created_at=timezone.now(),
                )
                for n in range(count)
            ],
            batch_size=1000,
        )  # fmt: skip

    small_incident = incident("small", False)
    fill(50, [small_incident])
    client = Client()
    client.force_login(responders[1])
    url = reverse("postmortems:action_items")

    def measure(label):
        for _ in range(3):
            client.get(url)
        with QueryLog() as log:
            response = client.get(url)
        assert response.status_code == 200
        times = []
        for _ in range(args.requests):
            t0 = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
        row = {
            "queries": len(log.queries),
            "median_ms": median(times),
            "p95_ms": percentile(times, 95),
        }
        print(f"{label:<34} {row['queries']:3d} queries  median {row['median_ms']:6.1f} ms  "
              f"p95 {row['p95_ms']:6.1f} ms")  # fmt: skip
        return row

    rows = {}
    bare = reverse("bench_bare_login")
    times = []
    for _ in range(args.requests):
        t0 = time.perf_counter()
        client.get(bare)
        times.append((time.perf_counter() - t0) * 1000)
    print(f"{'bare login_required view':<34}   -          median {median(times):6.1f} ms")
    rows["bare"] = {"median_ms": median(times)}
    rows["small"] = measure("dashboard, 50 items")
    big_incidents = [incident("big", False), incident("big restricted", True)]
    fill(args.items - 50, big_incidents)
    total = ActionItem.objects.filter(incident__title__startswith=f"{TITLE_PREFIX} Action").count()
    rows["big"] = measure(f"dashboard, {total:,} items")
    csv_t0 = time.perf_counter()
    csv_bytes = len(b"".join(client.get(reverse("postmortems:action_items_csv")).streaming_content))
    csv_ms = (time.perf_counter() - csv_t0) * 1000
    print(f"CSV export, all open items: {csv_ms:.0f} ms, {csv_bytes / 1024:.0f} KiB")
    constant = rows["small"]["queries"] == rows["big"]["queries"]
    fast = rows["big"]["median_ms"] < RENDER_TARGET_MS
    print(
        f"\nquery count constant: {'MET' if constant else 'MISSED'}; "
        f"render < {RENDER_TARGET_MS:.0f} ms: {'MET' if fast else 'MISSED'}"
    )
    write_result(
        "action_items",
        {
            "items": {"small": 50, "big": total},
            "rows": rows,
            "csv_ms": csv_ms,
            "query_target_met": constant,
            "render_target_met": rows["big"]["median_ms"] < RENDER_TARGET_MS,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
