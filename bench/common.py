"""Shared by the benchmarks: Django setup on the bench database, bench users and incidents
built through the real services, small statistics helpers and result files.

Everything the bench creates is marked: users are named `bench-*`, incidents are titled
"[bench] ...", and each run deletes the previous run's incidents first.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "var" / "bench"
BENCH_PASSWORD = "bench-pw-not-secret"
TITLE_PREFIX = "[bench]"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def ensure_database() -> None:
    """Create the bench's PostgreSQL database if it is missing (trust auth on 127.0.0.1)."""
    import psycopg

    url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/firebreak_bench")
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")


def setup_django(*, migrate: bool = True) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    ensure_database()
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)


# --- Data ------------------------------------------------------------------------------

NOTES = [
    "Error rate on **checkout-api** jumped to 12% at the top of the hour. Looking at the "
    "[dashboard](https://grafana.example.test/d/checkout) now.",
    "Hypothesis: the `payments-gateway` connection pool is exhausted.\n\n"
    "- pool size: 50\n- active: 50\n- waiting: 312",
    "Rolled back deploy `2024.11.03-7` on eu-west-1:\n\n```\nkubectl rollout undo "
    "deploy/checkout -n prod\n```",
    "Customer support reports *login loops* for some users on mobile. Not confirmed yet.",
    "| region | p99 (ms) | errors |\n|---|---|---|\n| eu-west-1 | 2400 | 9% |\n"
    "| us-east-1 | 310 | 0.2% |",
    "> The upstream provider acknowledged a partial outage in their EU region.\n\n"
    "Following their status page.",
    "Paged the database on-call. Replication lag on `db-replica-3` is **45 s** and climbing.",
    "1. Drain traffic from eu-west-1\n2. Scale checkout to 40 pods\n3. Re-check error rate",
    "Error rate back under 1% after the failover. Keeping an eye on it for 30 min.",
    "Noticed a spike of `ConnectionResetError` in the worker logs ~2 min before the alert.",
]

TASK_TOPICS = ["connection pool", "replica lag", "DNS records", "CDN config"]

UPDATES = [
    "**Impact:** some customers in Europe cannot complete checkout.\n\n"
    "**Status:** we have identified a likely cause and are rolling back.\n\n"
    "**Next update:** in 30 minutes.",
    "Checkout has recovered for most customers. We are monitoring.\n\n"
    "- Orders placed during the incident are safe\n- Refunds are not affected",
]


def bench_users():
    """Seven responders and one viewer, created once and reused."""
    from django.contrib.auth.models import Group

    from oncall.models import User

    def user(username: str, first: str, last: str, group: str) -> User:
        obj, created = User.objects.get_or_create(
            username=username,
            defaults={
                "first_name": first,
                "last_name": last,
                "email": f"{username}@example.test",
            },
        )
        if created:
            obj.set_password(BENCH_PASSWORD)
            obj.save()
            obj.groups.set(Group.objects.filter(name=group))
        return obj

    people = [
        ("bench-ic", "Ivy", "Commander"),
        ("bench-ana", "Ana", "Ops"),
        ("bench-ben", "Ben", "Backend"),
        ("bench-cho", "Cho", "Comms"),
        ("bench-dev", "Dev", "Database"),
        ("bench-eli", "Eli", "Edge"),
        ("bench-fay", "Fay", "Frontend"),
    ]
    responders = [user(u, f, last, "Responders") for u, f, last in people]
    viewer = user("bench-watcher", "Wes", "Watcher", "Viewers")
    return responders, viewer


def bench_services():
    from incidents.models import Service
    from oncall.models import Team

    team, _ = Team.objects.get_or_create(name="Bench Payments", defaults={"slug": "bench-payments"})
    result = []
    for slug, name in [("bench-checkout", "Bench Checkout"), ("bench-payments", "Bench Payments")]:
        svc, _ = Service.objects.get_or_create(slug=slug, defaults={"name": name, "team": team})
        result.append(svc)
    return result


def delete_previous_bench_incidents(*titles: str) -> int:
    """Delete the incidents a previous run of this benchmark made (all bench incidents when
    no titles are given). Timeline, tasks, roles and object permissions cascade."""
    from incidents.models import Incident

    queryset = Incident.objects.filter(title__startswith=TITLE_PREFIX)
    if titles:
        queryset = queryset.filter(title__in=[f"{TITLE_PREFIX} {t}" for t in titles])
    deleted, _ = queryset.delete()
    return deleted


def build_incident(*, title: str, entries: int, tasks: int, pins: int = 0):
    """An incident whose timeline reaches exactly `entries` entries, written the way people
    write them: mostly Markdown notes, with status, severity and role changes, tasks added,
    completed and handed over, and stakeholder updates. Every write goes through
    incidents.services, so revision, permissions and rendered HTML are all real.
    """
    from incidents import services
    from incidents.models import IncidentRole, IncidentStatus, Severity

    responders, _viewer = bench_users()
    ic = responders[0]
    sev1, sev2 = Severity.objects.get(name="SEV1"), Severity.objects.get(name="SEV2")
    incident = services.incident_declare(
        declared_by=ic,
        title=f"{TITLE_PREFIX} {title}",
        severity=sev2,
        detection_source="alert",
        services=bench_services(),
        summary="Checkout failing for a share of EU customers; payments gateway suspected.",
    )
    count = incident.timeline.count()  # declared + commander
    statuses = [IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING, IncidentStatus.INVESTIGATING]
    roles = [r for r in IncidentRole if r != IncidentRole.COMMANDER] + [IncidentRole.COMMANDER]
    task_ids: list[int] = []
    step = 0
    n_status = n_role = n_sev = n_update = n_task_ops = 0
    while count < entries:
        slot = step % 20
        step += 1
        actor = responders[step % len(responders)]
        if len(task_ids) < tasks and (slot == 16 or entries - count <= tasks - len(task_ids)):
            owner = responders[(len(task_ids) + 2) % len(responders)] if len(task_ids) % 3 else None
            task = services.task_add(
                incident=incident,
                actor=actor,
                title=f"Task {len(task_ids) + 1}: check the {TASK_TOPICS[len(task_ids) % 4]}",
                owner=owner,
            )
            task_ids.append(task.pk)
        elif slot == 14:
            services.incident_transition(
                incident=incident, actor=actor, to_status=statuses[n_status % len(statuses)]
            )
            n_status += 1
        elif slot == 15:
            role = roles[n_role % len(roles)]
            user = responders[(n_role + 1) % len(responders)]
            try:
                services.role_assign(incident=incident, actor=ic, user=user, role=role)
            except services.IncidentRefused:  # already holds it: note instead
                services.note_add(incident=incident, author=actor, body=NOTES[step % len(NOTES)])
            n_role += 1
        elif slot == 16 and task_ids:
            task_id = task_ids[n_task_ops % len(task_ids)]
            if n_task_ops % 2 == 0:
                task = incident.tasks.get(pk=task_id)
                services.task_set_done(
                    incident=incident, actor=actor, task_id=task_id, done=not task.is_done
                )
            else:
                task = incident.tasks.get(pk=task_id)
                owner = responders[(n_task_ops + 3) % len(responders)]
                if task.owner_id == owner.pk:
                    owner = responders[(n_task_ops + 4) % len(responders)]
                services.task_assign(incident=incident, actor=actor, task_id=task_id, owner=owner)
            n_task_ops += 1
        elif slot == 17:
            services.stakeholder_update_post(
                incident=incident, author=actor, body=UPDATES[n_update % len(UPDATES)]
            )
            n_update += 1
        elif slot == 18:
            services.incident_change_severity(
                incident=incident,
                actor=actor,
                severity=sev1 if n_sev % 2 == 0 else sev2,
                reason="Impact re-assessed.",
            )
            n_sev += 1
        else:
            services.note_add(incident=incident, author=actor, body=NOTES[step % len(NOTES)])
        count += 1
    if pins:
        ids = list(incident.timeline.order_by("pk").values_list("pk", flat=True))
        for entry_id in ids[:: max(1, len(ids) // pins)][:pins]:
            services.timeline_entry_set_pinned(
                incident=incident, actor=ic, entry_id=entry_id, pinned=True
            )
    incident.refresh_from_db()
    return incident


# --- Figures ---------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    k = (len(ordered) - 1) * pct / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def short_sql(sql: str, width: int = 150) -> str:
    sql = " ".join(sql.split())
    return sql if len(sql) <= width else sql[: width - 1] + "…"


class QueryLog:
    """Every query one block runs, with its own wall time (perf_counter, not the 1 ms
    resolution of connection.queries): `with QueryLog() as log: ...; log.queries`."""

    def __init__(self, alias: str = "default"):
        from django.db import connections

        self.connection = connections[alias]
        self.queries: list[tuple[str, float]] = []

    def _wrapper(self, execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries.append((sql, (time.perf_counter() - t0) * 1000))

    def __enter__(self):
        self._cm = self.connection.execute_wrapper(self._wrapper)
        self._cm.__enter__()
        return self

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)

    @property
    def total_ms(self) -> float:
        return sum(ms for _, ms in self.queries)


def write_result(name: str, data: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    data = {"written_at": time.strftime("%Y-%m-%d %H:%M:%S"), **data}
    path.write_text(json.dumps(data, indent=2, default=str))
    return path
