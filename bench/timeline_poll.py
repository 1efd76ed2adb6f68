"""Idle timeline poll: requests/s when nothing changed, against bare views in the same server.

    .venv/bin/python -m bench.timeline_poll [--duration 10] [--connections 16] [--client auto]

Starts gunicorn the production way (config.wsgi, 2 sync workers, 127.0.0.1, a free port,
DJANGO_SETTINGS_MODULE=bench.settings: PostgreSQL + Redis, DEBUG off), signs a viewer in
through the real login form, then loads three URLs in turn for a fixed time each:

  bare anonymous view       /bench/bare/            full middleware, no session
  bare login_required view  /bench/bare-login/      full middleware + session + user
  idle poll (204)           /incidents/<pk>/timeline/poll/?rev=<revision>&after=<newest>

The load client is wrk when installed (C, cheap: it leaves the 2 cores to the server), else a
small asyncio client. Both are bounded by time and count and talk only to 127.0.0.1. The
gunicorn server is stopped before the script exits, whatever happens.

Also prints the queries one idle poll runs (in-process, same settings), and the server-side
CPU each request costs (gunicorn workers, PostgreSQL, Redis, read from /proc).

Target (shared/docs/targets.md): idle poll >= 50% of the requests/s of a bare view.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

from bench.common import (
    BENCH_PASSWORD,
    RESULTS_DIR,
    ROOT,
    QueryLog,
    build_incident,
    median,
    percentile,
    setup_django,
    short_sql,
    write_result,
)

HOST = "127.0.0.1"  # loopback only, always
RATIO_TARGET = 0.5
MAX_REQUESTS_PER_RUN = 2_000_000  # a second bound besides the duration


# --- Server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Gunicorn:
    def __init__(self, *, workers: int, log_path: Path, app: str = "config.wsgi"):
        self.port = free_port()
        self.app = app
        self.workers = workers
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ)
        env["DJANGO_SETTINGS_MODULE"] = "bench.settings"
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                str(gunicorn),
                self.app,
                "--bind",
                f"{HOST}:{self.port}",
                "--workers",
                str(self.workers),
                "--log-level",
                "warning",
            ],  # fmt: skip
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited early; see {self.log_path}")
            try:
                status, _, _ = request("GET", self.port, "/bench/bare/")
                if status == 200 and len(self.worker_pids()) >= self.workers:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within 30 s; see {self.log_path}")

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        return [pid for pid, ppid, _ in _processes() if ppid == self.proc.pid]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # graceful: the master stops its workers
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.log.close()


def _processes():
    """(pid, ppid, comm) of every process, from /proc."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        yield int(entry), int(fields[1]), comm


def _cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_snapshot(worker_pids: list[int]) -> dict[str, float]:
    """CPU seconds so far: gunicorn workers, PostgreSQL, Redis, the load client (this process
    and its exited children), and the machine's busy/total jiffies."""
    busy, total = _machine_cpu()
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once it has exited
    snap = {
        "client": own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,
        "gunicorn": sum(_cpu_seconds(p) for p in worker_pids),
        "postgres": 0.0,
        "redis": 0.0,
        "busy": busy,
        "total": total,
    }
    for pid, _, comm in _processes():
        if comm.startswith("postgres"):
            snap["postgres"] += _cpu_seconds(pid)
        elif comm.startswith("redis-server"):
            snap["redis"] += _cpu_seconds(pid)
    return snap


# --- HTTP ------------------------------------------------------------------------------


def request(method: str, port: int, path: str, *, headers=None, body=None):
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def login(port: int, username: str) -> str:
    """Sign in through the real login form; return the session cookie value."""
    status, headers, body = request("GET", port, "/accounts/login/")
    assert status == 200, f"login page answered {status}"
    cookies = SimpleCookie()
    for name, value in headers:
        if name.lower() == "set-cookie":
            cookies.load(value)
    csrf = cookies["csrftoken"].value
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()
    form = urlencode(
        {"username": username, "password": BENCH_PASSWORD, "csrfmiddlewaretoken": token}
    )
    status, headers, _ = request(
        "POST",
        port,
        "/accounts/login/",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={csrf}",
        },
        body=form,
    )
    assert status == 302, f"login answered {status}, not a redirect"
    for name, value in headers:
        if name.lower() == "set-cookie":
            cookies.load(value)
    return cookies["sessionid"].value


# --- Load clients ----------------------------------------------------------------------


def _wrk_ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(port: int, path: str, *, cookie: str | None, duration: float, connections: int):
    cmd = [
        "wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--latency", "--timeout", "5s",
    ]  # fmt: skip
    if cookie:
        cmd += ["-H", f"Cookie: sessionid={cookie}"]
    cmd.append(f"http://{HOST}:{port}{path}")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    total = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
    requests_done = int(total.group(1))
    seconds = _wrk_ms(total.group(2), total.group(3)) / 1000
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s|m))$", out, re.M))

    def pct(key: str) -> float:
        m = re.match(r"([\d.]+)(us|ms|s|m)", lat[key])
        return _wrk_ms(m.group(1), m.group(2))

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": requests_done,
        "seconds": seconds,
        "rps": requests_done / seconds,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "bad_status": int(non2xx.group(1)) if non2xx else 0,
        "errors": sum(int(g) for g in errors.groups()) if errors else 0,
    }


async def _asyncio_load(port, path, cookie, duration, connections):
    raw = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n"
    if cookie:
        raw += f"Cookie: sessionid={cookie}\r\n"
    payload = (raw + "\r\n").encode()
    latencies: list[float] = []
    counts = {"bad_status": 0, "errors": 0}
    deadline = time.perf_counter() + duration

    async def one() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(payload)
            data = await reader.read()  # the sync worker closes after each response
        finally:
            writer.close()
        if not data.startswith((b"HTTP/1.1 200", b"HTTP/1.1 204", b"HTTP/1.0 200")):
            counts["bad_status"] += 1

    async def worker() -> None:
        while time.perf_counter() < deadline and len(latencies) < MAX_REQUESTS_PER_RUN:
            t0 = time.perf_counter()
            try:
                await asyncio.wait_for(one(), timeout=5)
            except (TimeoutError, OSError):
                counts["errors"] += 1
                continue
            latencies.append((time.perf_counter() - t0) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    seconds = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "rps": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        **counts,
    }


def run_asyncio(port: int, path: str, *, cookie: str | None, duration: float, connections: int):
    return asyncio.run(_asyncio_load(port, path, cookie, duration, connections))


# --- Main ------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=12.0, help="seconds per URL in all")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved slices per URL")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per URL, not counted")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--client", choices=["auto", "wrk", "asyncio"], default="auto")
    args = parser.parse_args()
    duration = max(1.0, min(args.duration, 60.0))
    connections = max(1, min(args.connections, 256))
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "asyncio"
    load = run_wrk if client == "wrk" else run_asyncio

    setup_django()
    from django.test import Client
    from django.urls import reverse

    from bench.common import bench_users, delete_previous_bench_incidents

    delete_previous_bench_incidents("Quiet incident being watched")
    _responders, viewer = bench_users()
    incident = build_incident(title="Quiet incident being watched", entries=60, tasks=5, pins=3)
    newest = incident.timeline.order_by("-pk").values_list("pk", flat=True).first()
    poll_path = (
        reverse("incidents:timeline_poll", args=[incident.pk])
        + f"?rev={incident.revision}&after={newest}"
    )
    stale_path = (
        reverse("incidents:timeline_poll", args=[incident.pk])
        + f"?rev={incident.revision - 1}&after={newest - 1}"
    )
    targets = {
        "bare anonymous view": ("/bench/bare/", False),
        "bare login_required view": ("/bench/bare-login/", True),
        "idle poll (204)": (poll_path, True),
    }

    # 1. In-process: what each request runs, and its server time without HTTP.
    c = Client()
    c.force_login(viewer)
    anon = Client()
    for _ in range(5):
        for path, auth in targets.values():
            (c if auth else anon).get(path)
    logs = {}
    for label, (path, auth) in targets.items():
        with QueryLog() as log:
            response = (c if auth else anon).get(path)
        logs[label] = (response.status_code, log)
    with QueryLog() as changed_log:
        changed = c.get(stale_path)
    inproc: dict[str, list[float]] = {label: [] for label in targets}
    for _ in range(300):
        for label, (path, auth) in targets.items():
            t0 = time.perf_counter()
            (c if auth else anon).get(path)
            inproc[label].append((time.perf_counter() - t0) * 1000)

    print(
        f"Idle timeline poll — INC-{incident.pk}, {incident.timeline.count()} entries, "
        f"revision {incident.revision}, signed in as a Viewer"
    )
    print()
    print("In-process (django.test.Client, full middleware, no HTTP), 300 requests each:")
    print(f"  {'':28} {'status':>6} {'queries':>7} {'db ms':>7} {'median ms':>10} {'p99 ms':>8}")
    for label in targets:
        status, log = logs[label]
        print(
            f"  {label:28} {status:>6} {len(log.queries):>7} {log.total_ms:>7.2f} "
            f"{median(inproc[label]):>10.2f} {percentile(inproc[label], 99):>8.2f}"
        )
    print(
        f"  {'poll with a change (200)':28} {changed.status_code:>6} "
        f"{len(changed_log.queries):>7} {changed_log.total_ms:>7.2f}"
    )
    print()
    print("Queries one idle poll (204) runs:")
    for i, (sql, ms) in enumerate(logs["idle poll (204)"][1].queries, 1):
        print(f"  {i}. {ms:5.2f} ms  {short_sql(sql, 400)}")
    print("Queries the bare login_required view runs:")
    for i, (sql, ms) in enumerate(logs["bare login_required view"][1].queries, 1):
        print(f"  {i}. {ms:5.2f} ms  {short_sql(sql, 120)}")

    # 2. Over HTTP: gunicorn, production shape. Every URL is measured in interleaved
    #    slices (ABC then CBA, and so on), so load from other work on the machine hits all
    #    alike.
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    servers = {"app": Gunicorn(workers=args.workers, log_path=RESULTS_DIR / "gunicorn.log")}
    runs = [(label, "app", path, auth) for label, (path, auth) in targets.items()]
    rounds = max(1, args.rounds)
    slice_s = max(1, round(duration / rounds))
    slices: dict[str, list[dict]] = {label: [] for label, *_ in runs}
    try:
        cookies = {}
        for name, server in servers.items():
            server.start()
            cookies[name] = login(server.port, viewer.username)
        for label, name, path, auth in runs:
            port = servers[name].port
            headers = {"Cookie": f"sessionid={cookies[name]}"} if auth else {}
            status, _, _ = request("GET", port, path, headers=headers)
            expected = 204 if path == poll_path else 200
            assert status == expected, f"{label}: {status}, expected {expected}"
        status, _, _ = request("GET", servers["app"].port, poll_path)
        assert status == 302, f"a poll without a session answered {status}, not a redirect"

        print()
        print(
            f"gunicorn config.wsgi, {args.workers} sync workers, {HOST}; client {client}, "
            f"{connections} connections; {args.warmup:g} s warm-up, then {rounds} x {slice_s} s "
            f"per URL, interleaved"
        )
        for _label, name, path, auth in runs:
            load(servers[name].port, path, cookie=cookies[name] if auth else None,
                 duration=args.warmup, connections=connections)  # fmt: skip
        for r in range(rounds):
            for label, name, path, auth in runs if r % 2 == 0 else reversed(runs):
                server = servers[name]
                before = cpu_snapshot(server.worker_pids())
                result = load(server.port, path, cookie=cookies[name] if auth else None,
                              duration=slice_s, connections=connections)  # fmt: skip
                after = cpu_snapshot(server.worker_pids())
                result["cpu"] = {k: after[k] - before[k] for k in after}
                slices[label].append(result)
                if server.proc.poll() is not None:
                    raise RuntimeError(f"gunicorn ({name}) died during the run")
    finally:
        for server in servers.values():
            server.stop()

    results = {label: combine(parts) for label, parts in slices.items()}
    print(
        f"  {'':28} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'requests':>9} {'bad':>4} "
        f"{'CPU ms/req: web':>16} {'pg':>5} {'redis':>5} {'client':>6} {'other':>6}"
    )
    for label, r in results.items():
        print(
            f"  {label:28} {r['rps']:>8.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} "
            f"{r['requests']:>9} {r['bad_status'] + r['errors']:>4} "
            f"{r['cpu_ms_gunicorn']:>16.2f} {r['cpu_ms_postgres']:>5.2f} "
            f"{r['cpu_ms_redis']:>5.2f} {r['cpu_ms_client']:>6.2f} {r['cpu_ms_other']:>6.2f}"
        )
    print(
        "    p50 = request-weighted mean of the slices' p50, p99 = worst slice. CPU columns: "
        "CPU ms per request\n    of the gunicorn workers, PostgreSQL, Redis, the load client, "
        "and everything else on the machine\n    (other = other people's work running at the "
        "same time; it slows every URL alike)."
    )
    poll = results["idle poll (204)"]["rps"]
    bare_login = results["bare login_required view"]["rps"]
    bare_anon = results["bare anonymous view"]["rps"]
    ratio_login, ratio_anon = poll / bare_login, poll / bare_anon
    met_login = ratio_login >= RATIO_TARGET
    print()
    print(
        f"idle poll / bare login_required view = {ratio_login:.0%} (target >= "
        f"{RATIO_TARGET:.0%}): {'MET' if met_login else 'MISSED'}"
    )
    print(
        f"idle poll / bare anonymous view      = {ratio_anon:.0%} (target >= "
        f"{RATIO_TARGET:.0%}): {'MET' if ratio_anon >= RATIO_TARGET else 'MISSED'}"
    )
    # Throughput on a shared 2-core machine moves with whatever else runs; the server CPU
    # each request costs barely does. Its inverse is the capacity the server would have alone.
    cost = {
        label: r["cpu_ms_gunicorn"] + r["cpu_ms_postgres"] + r["cpu_ms_redis"]
        for label, r in results.items()
    }
    print()
    print(
        "server CPU per request (gunicorn + PostgreSQL + Redis): "
        + ", ".join(f"{label} {ms:.2f} ms" for label, ms in cost.items())
    )
    cpu_ratio_login = cost["bare login_required view"] / cost["idle poll (204)"]
    cpu_ratio_anon = cost["bare anonymous view"] / cost["idle poll (204)"]
    print(
        f"capacity by CPU cost: idle poll = {cpu_ratio_login:.0%} of bare login_required, "
        f"{cpu_ratio_anon:.0%} of bare anonymous"
    )
    print(
        "req/s per slice: "
        + "; ".join(f"{label} {r['slices_rps']}" for label, r in results.items())
    )
    path = write_result(
        "timeline_poll",
        {
            "client": client,
            "connections": connections,
            "rounds": rounds,
            "slice_seconds": slice_s,
            "workers": args.workers,
            "http": results,
            "in_process_median_ms": {k: median(v) for k, v in inproc.items()},
            "queries": {
                k: [short_sql(s, 400) for s, _ in log.queries] for k, (_, log) in logs.items()
            },
            "server_cpu_ms_per_request": cost,
            "cpu_capacity_ratio_vs_bare_login": cpu_ratio_login,
            "cpu_capacity_ratio_vs_bare_anonymous": cpu_ratio_anon,
            "ratio_vs_bare_login": ratio_login,
            "ratio_vs_bare_anonymous": ratio_anon,
            "target_met_vs_bare_login": met_login,
            "target_met_vs_bare_anonymous": ratio_anon >= RATIO_TARGET,
        },
    )
    print(f"\nresults: {path.relative_to(ROOT)}")
    return 0


def combine(parts: list[dict]) -> dict:
    requests_done = sum(p["requests"] for p in parts)
    seconds = sum(p["seconds"] for p in parts)
    n = max(requests_done, 1)
    cpu = {k: sum(p["cpu"][k] for p in parts) for k in parts[0]["cpu"]}
    ticks = os.sysconf("SC_CLK_TCK")
    machine_busy_s = cpu["busy"] / ticks
    ours = cpu["gunicorn"] + cpu["postgres"] + cpu["redis"] + cpu["client"]
    return {
        "requests": requests_done,
        "seconds": seconds,
        "rps": requests_done / seconds,
        "p50_ms": sum(p["p50_ms"] * p["requests"] for p in parts) / n,
        "p99_ms": max(p["p99_ms"] for p in parts),
        "bad_status": sum(p["bad_status"] for p in parts),
        "errors": sum(p["errors"] for p in parts),
        "cpu_ms_gunicorn": cpu["gunicorn"] * 1000 / n,
        "cpu_ms_postgres": cpu["postgres"] * 1000 / n,
        "cpu_ms_redis": cpu["redis"] * 1000 / n,
        "cpu_ms_client": cpu["client"] * 1000 / n,
        "cpu_ms_other": max(machine_busy_s - ours, 0.0) * 1000 / n,
        "machine_busy": cpu["busy"] / max(cpu["total"], 1),
        "slices_rps": [round(p["rps"]) for p in parts],
    }


if __name__ == "__main__":
    raise SystemExit(main())
