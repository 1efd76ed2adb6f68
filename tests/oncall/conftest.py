from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


class HttpReceiver:
    """A real HTTP server on 127.0.0.1 that records every request and answers as told.

    `answer(404, b"no_service")`, `redirect_to(url)`, or `hang()` (never answer until the
    test ends, so the client times out).
    """

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.status = 200
        self.body = b"ok"
        self.extra_headers: dict[str, str] = {}
        self.hanging = False
        self.released = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver._lock:
                    receiver.requests.append(
                        ReceivedRequest(
                            method=self.command,
                            path=self.path,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=body,
                        )
                    )
                if receiver.hanging:
                    receiver.released.wait(timeout=30)
                    self.close_connection = True
                    return
                self.send_response(receiver.status)
                for name, value in receiver.extra_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            do_GET = do_POST

            def log_message(self, format, *args) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):
        self.status, self.body, self.extra_headers = status, body, headers or {}

    def redirect_to(self, location: str, status: int = 302) -> None:
        self.answer(status, b"", {"Location": location})

    def hang(self) -> None:
        self.hanging = True

    @property
    def last(self) -> ReceivedRequest:
        assert self.requests, "the receiver got no request"
        return self.requests[-1]

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_receiver():
    receiver = HttpReceiver()
    receiver.thread.start()
    yield receiver
    receiver.close()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
