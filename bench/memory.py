"""Resident memory of one idle web process and one idle Celery worker.

    .venv/bin/python -m bench.memory

Starts gunicorn (1 sync worker, bench.settings: PostgreSQL + Redis) and warms it with the
pages people use (login, home, list, a 2,000-entry incident page, an idle poll), then reads
the worker's VmRSS from /proc. Starts a Celery worker (prefork, concurrency 1) on the bench
Redis, lets it idle, and reads the main process and its pool child. Baseline in the same run:
a bare Python interpreter, and one with Django set up.

Targets (shared/docs/targets.md): idle web process < 150 MB, idle worker < 250 MB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import RESULTS_DIR, ROOT, setup_django, write_result
from bench.timeline_poll import Gunicorn, login, request

WEB_TARGET_MB = 150
WORKER_TARGET_MB = 250


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def baseline(code: str) -> float:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="bench.settings", PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport resource;print(open('/proc/self/status').read())"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def main() -> int:
    setup_django()
    from bench.common import TITLE_PREFIX, build_incident
    from incidents.models import Incident

    incident = Incident.objects.filter(title__startswith=TITLE_PREFIX, timeline__isnull=False)
    incident = incident.order_by("-pk").first() or build_incident(
        title=f"{TITLE_PREFIX} memory", entries=2000, tasks=20
    )
    bare_python = baseline("pass")
    bare_django = baseline("import django; django.setup()")

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    web = Gunicorn(workers=1, log_path=RESULTS_DIR / "gunicorn-memory.log")
    web.start()
    try:
        cookie = {"Cookie": f"sessionid={login(web.port, 'bench-ic')}"}
        incident.refresh_from_db()
        for path in (
            "/",
            "/incidents/",
            f"/incidents/{incident.pk}/",
            "/services/",
            f"/incidents/{incident.pk}/timeline/poll/?rev={incident.revision}&after=0",
        ):
            for _ in range(5):
                status, _, _ = request("GET", web.port, path, headers=cookie)
                assert status in (200, 204), (path, status)
        time.sleep(2)
        web_rss = max(rss_mb(pid) for pid in web.worker_pids())
    finally:
        web.stop()

    env = dict(os.environ, DJANGO_SETTINGS_MODULE="bench.settings", PYTHONPATH=str(ROOT))
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--concurrency=1",
            "--loglevel=WARNING",
            "-Q",
            "bench-memory",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(12)
        main_rss = rss_mb(worker.pid)
        pool = [rss_mb(pid) for pid in children(worker.pid)]
    finally:
        worker.terminate()
        worker.wait(timeout=20)

    print(
        f"baseline: bare python {bare_python:.0f} MB; python + django.setup() {bare_django:.0f} MB"
    )
    print(
        f"idle gunicorn worker after warm-up: {web_rss:.0f} MB (target < {WEB_TARGET_MB} MB): "
        f"{'MET' if web_rss < WEB_TARGET_MB else 'MISSED'}"
    )
    print(
        f"idle celery worker: main {main_rss:.0f} MB, pool child "
        f"{', '.join(f'{x:.0f}' for x in pool) or '-'} MB (target < {WORKER_TARGET_MB} MB "
        f"each): {'MET' if max([main_rss, *pool]) < WORKER_TARGET_MB else 'MISSED'}"
    )
    write_result(
        "memory",
        {
            "bare_python_mb": bare_python,
            "bare_django_mb": bare_django,
            "web_worker_mb": web_rss,
            "celery_main_mb": main_rss,
            "celery_pool_mb": pool,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
