"""Real processes for the paging fault tests and the paging benchmark.

- `RedisServer`: a private redis-server on a free port of 127.0.0.1 (no persistence), which
  can be stopped and started again on the same port. The machine's Redis is never touched.
- `CeleryProcess.worker()` / `CeleryProcess.beat()`: `celery -A config worker|beat` in their
  own process group, logging to a file; `kill()` sends a signal to the whole group (a
  prefork worker's pool children die with it), `stop()` ends them for good.
- `WebhookReceiver`: an HTTP server on 127.0.0.1 that timestamps every signed webhook it
  receives, verifies its signature, counts deliveries per X-Firebreak-Delivery id, and can
  hang chosen deliveries (as a slow peer does) until released.
- `use_broker()`: points this process's Celery app (whose `.delay()` runs in on-commit
  callbacks) at a given broker, and back.

No pytest here: bench/paging.py imports this module too.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05):
    """Poll `predicate` until it returns something truthy or `timeout` seconds pass; returns
    its last value (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# --- Processes ----------------------------------------------------------------------------


class Proc:
    """A subprocess in its own session (so its process group is its own), logging to a file."""

    kind = "process"

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log_path: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = Path(log_path)
        self.popen: subprocess.Popen | None = None
        self._log = None

    def start(self) -> Proc:
        assert self.popen is None or self.popen.poll() is not None, f"{self.name} is running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        self.popen = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = 3000) -> str:
        return f"--- {self.name} ({self.log_path}) ---\n{self.log()[-chars:]}"

    def wait_for_log(self, pattern: str, timeout: float, *, after: int = 0) -> bool:
        """True once `pattern` (a regex) appears in the log past offset `after`."""
        regex = re.compile(pattern)
        return bool(
            wait_until(lambda: regex.search(self.log()[after:]) or not self.alive, timeout, 0.1)
            and regex.search(self.log()[after:])
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (the worker and its pool children)."""
        if self.popen is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)
        if sig == signal.SIGKILL:
            self._reap(5)

    def stop(self, timeout: float = 8.0) -> None:
        """SIGTERM, then SIGKILL to the group after `timeout`; always leaves nothing behind."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        # Whatever is left of the group (orphaned pool children included).
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._reap(5)

    def _reap(self, timeout: float) -> None:
        if self.popen is not None:
            with suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        if self._log is not None:
            self._log.close()
            self._log = None


class RedisServer(Proc):
    """A private redis-server on 127.0.0.1:`port` with no persistence: a restart is empty,
    as a crashed cache-only Redis comes back."""

    def __init__(self, workdir: Path, port: int | None = None):
        self.port = port or free_port()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(
            f"redis:{self.port}",
            [
                "redis-server",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
            ],
            env=dict(os.environ),
            log_path=self.workdir / f"redis-{self.port}.log",
        )

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self, timeout: float = 10.0) -> RedisServer:
        super().start()
        if not wait_until(self.ping, timeout):
            self.stop()
            raise RuntimeError(
                f"redis-server did not answer on port {self.port}\n{self.log_tail()}"
            )
        return self

    def stop(self, timeout: float = 8.0) -> None:
        super().stop(timeout)
        wait_until(lambda: not self.ping(), 3)


def celery_env(
    *,
    broker_url: str,
    settings_module: str,
    var_dir: Path,
    db_name: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a worker or beat: this broker (also the cache), this database."""
    env = dict(os.environ)
    for name in ("CELERY_TASK_ALWAYS_EAGER", "FIREBREAK_DB_NAME"):
        env.pop(name, None)
    env.update(
        DJANGO_SETTINGS_MODULE=settings_module,
        REDIS_URL=broker_url,
        CELERY_BROKER_URL=broker_url,
        FIREBREAK_VAR_DIR=str(var_dir),
        PYTHONPATH=str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
        PYTHONUNBUFFERED="1",
    )
    if db_name is not None:
        env["FIREBREAK_DB_NAME"] = db_name
    env.update(extra or {})
    return env


class CeleryProcess(Proc):
    @classmethod
    def worker(
        cls,
        *,
        env: dict[str, str],
        log_dir: Path,
        name: str = "worker",
        concurrency: int = 2,
        pool: str = "prefork",
        include: str | None = None,
        loglevel: str = "INFO",
    ) -> CeleryProcess:
        hostname = f"{name}-{uuid.uuid4().hex[:6]}@%h"
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            f"--loglevel={loglevel}",
            "--hostname",
            hostname,
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ]
        if include:
            argv += ["--include", include]
        proc = cls(name, argv, env=env, log_path=Path(log_dir) / f"{name}.log")
        proc.kind = "worker"
        return proc

    @classmethod
    def beat(
        cls, *, env: dict[str, str], log_dir: Path, name: str = "beat", loglevel: str = "INFO"
    ) -> CeleryProcess:
        log_dir = Path(log_dir)
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "beat",
            f"--loglevel={loglevel}",
            "--schedule",
            str(log_dir / f"{name}-schedule"),
            "--pidfile",
            str(log_dir / f"{name}.pid"),
            "--max-interval",
            "1",
        ]
        proc = cls(name, argv, env=env, log_path=log_dir / f"{name}.log")
        proc.kind = "beat"
        return proc

    def wait_ready(self, timeout: float = 40.0, *, after: int = 0) -> None:
        """A worker is ready when it logs "ready."; beat once its scheduler is built (its
        banner's last line; "beat: Starting..." is not logged when celery.beat is quieter
        than INFO) and it is still running a moment later."""
        pattern = r"\bready\." if self.kind == "worker" else r"beat: Starting|maxinterval ->"
        ready = self.wait_for_log(pattern, timeout, after=after)
        if ready and self.kind == "beat":
            time.sleep(0.5)
            ready = self.alive
        if not ready:
            raise RuntimeError(f"{self.name} did not start in {timeout:g} s\n{self.log_tail()}")

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log()))

    @property
    def schedule_path(self) -> Path:
        return Path(self.argv[self.argv.index("--schedule") + 1])

    def run_counts(self) -> dict[str, int]:
        """How often beat sent each entry, from its schedule file: read it after stop()
        (beat writes the file when it shuts down)."""
        import shelve

        assert self.kind == "beat" and not self.alive
        with shelve.open(str(self.schedule_path), flag="r") as store:
            return {name: entry.total_run_count for name, entry in store["entries"].items()}

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of this process and its living descendants."""
        if not self.alive:
            return 0.0
        tick = os.sysconf("SC_CLK_TCK")
        stats: dict[int, tuple[int, float]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
        total, todo = 0.0, [self.pid]
        while todo:
            pid = todo.pop()
            total += stats.get(pid, (0, 0.0))[1]
            todo += [child for child, (parent, _) in stats.items() if parent == pid]
        return total


@contextmanager
def use_broker(url: str):
    """Send this process's Celery messages (`.delay()` in on-commit callbacks) to `url`."""
    from kombu import pools as kombu_pools

    from config.celery import app

    conf = app.conf
    saved = {
        "broker_url": conf.broker_url,
        "broker_write_url": conf.broker_write_url,
        "broker_read_url": conf.broker_read_url,
        "broker_transport_options": conf.broker_transport_options,
    }

    def reset_pools() -> None:
        pool = app._pool
        if pool is not None:
            # A dead broker's connections may not close cleanly.
            with suppress(Exception):
                pool.force_close_all()
        app._pool = None
        app.amqp._producer_pool = None
        # kombu caches producer pools per broker URL in a global registry; the one for the
        # usual broker was just closed, so clear it or the next test's .delay() fails with
        # "Acquire on closed pool".
        with suppress(Exception):
            kombu_pools.reset()

    conf.broker_url = url
    conf.broker_write_url = None
    conf.broker_read_url = None
    conf.broker_transport_options = {"visibility_timeout": 3600}
    reset_pools()
    try:
        yield
    finally:
        reset_pools()
        for key, value in saved.items():
            conf[key] = value


# --- The webhook receiver ------------------------------------------------------------------


@dataclass
class Delivery:
    delivery_id: str
    path: str
    received_at: float  # time.time() when the request line arrived
    received_mono: float  # time.monotonic(), same moment
    signature_ok: bool
    title: str
    payload: dict


class WebhookReceiver:
    """A signed-webhook receiver on 127.0.0.1.

    `secrets` maps a path ("/hook/raj") to the contact method's signing secret; every
    request is verified with `oncall.notifiers.verify_webhook_signature` and recorded
    (duplicates included: `counts()` says how often each delivery id arrived).
    `hang(predicate)` makes the first arrival of each matching delivery hang until
    `release()` (or `hang_seconds`), so the sender is mid-request, as with a stalled peer.
    """

    def __init__(self, secrets: dict[str, str] | None = None, *, hang_seconds: float = 30.0):
        self.secrets: dict[str, str] = dict(secrets or {})
        self.deliveries: list[Delivery] = []
        self.hang_seconds = hang_seconds
        self._hang: Callable[[Delivery], bool] | None = None
        self._hung_ids: set[str] = set()
        self.hanging = threading.Event()  # set while a request hangs
        self._released = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                received_at, received_mono = time.time(), time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                delivery = receiver._record(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    received_at,
                    received_mono,
                )
                if receiver._should_hang(delivery):
                    receiver.hanging.set()
                    receiver._released.wait(timeout=receiver.hang_seconds)
                    self.close_connection = True
                    return
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

            def log_message(self, format, *args) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # lifecycle
    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def close(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # hanging
    def hang(self, predicate: Callable[[Delivery], bool]) -> None:
        self._released.clear()
        self._hang = predicate

    def release(self) -> None:
        self._hang = None
        self._released.set()

    def _should_hang(self, delivery: Delivery) -> bool:
        with self._lock:
            if self._hang is None or delivery.delivery_id in self._hung_ids:
                return False
            if not self._hang(delivery):
                return False
            self._hung_ids.add(delivery.delivery_id)
            return True

    # recording
    def _record(self, path, headers, body, received_at, received_mono) -> Delivery:
        from oncall.notifiers import verify_webhook_signature

        secret = self.secrets.get(path, "")
        signature_ok = verify_webhook_signature(
            secret=secret,
            timestamp=headers.get("x-firebreak-timestamp", ""),
            body=body,
            signature=headers.get("x-firebreak-signature", ""),
            now=int(time.time()),
        )
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = {}
        delivery_id = headers.get("x-firebreak-delivery", "")
        # The signed body must carry the same id as the header.
        signature_ok = signature_ok and payload.get("delivery_id") == delivery_id
        delivery = Delivery(
            delivery_id=delivery_id,
            path=path,
            received_at=received_at,
            received_mono=received_mono,
            signature_ok=signature_ok,
            title=str(payload.get("title", "")),
            payload=payload,
        )
        with self._lock:
            self.deliveries.append(delivery)
        return delivery

    def snapshot(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def counts(self) -> Counter:
        return Counter(d.delivery_id for d in self.snapshot())

    def first(self, delivery_id: str) -> Delivery | None:
        return next((d for d in self.snapshot() if d.delivery_id == delivery_id), None)

    def wait_for_ids(self, ids, timeout: float) -> bool:
        wanted = set(ids)
        return bool(wait_until(lambda: wanted <= set(self.counts()), timeout))
