"""A fault-injecting HTTP reverse proxy for the reliability tests (loopback only).

It forwards each request to a real upstream (Prometheus, the Cost Explorer double) and, where a rule
says so, answers for it instead: after a delay (a slow server), with an error status and body (a 5xx
mid-pagination, a Prometheus error mid-chunk), or by closing the connection without an answer (a
server going down mid-run). The wire format is the upstream's own; only the fault is made up.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Seen:
    """A request as the proxy received it; `n` counts from 1."""

    n: int
    method: str
    path: str
    body: bytes


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or before) forwarding: wait `delay` s, then answer `status` with `body`,
    or `drop` the connection, or (neither) forward after the delay."""

    delay: float = 0.0
    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


Rule = Callable[[Seen], Fault | None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left is the point of some tests, not an error


class FaultProxy:
    """Use as a context manager; `rule` may be replaced at any time; `seen` lists every request."""

    def __init__(self, upstream: str, rule: Rule | None = None):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rule: Rule = rule or (lambda s: None)
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                proxy._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                proxy._handle(self, "POST")

            def do_PUT(self) -> None:  # noqa: N802 - S3 uploads
                proxy._handle(self, "PUT")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # wakes handlers still sleeping on a delay
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        with self._lock:
            seen = Seen(len(self.seen) + 1, method, h.path, body)
            self.seen.append(seen)
        fault = self.rule(seen)
        if fault is not None and fault.delay and self._stop.wait(fault.delay):
            return
        if fault is not None and fault.drop:
            h.close_connection = True
            return  # no status line at all: the client sees the connection close
        if fault is not None and fault.status is not None:
            self._send(h, fault.status, {"Content-Type": "application/json", **fault.headers}, fault.body)
            return
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(method, h.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            keep = {k: v for k, v in resp.getheaders()
                    if k.lower() not in ("transfer-encoding", "connection", "content-length")}
            self._send(h, resp.status, keep, data)
        finally:
            conn.close()

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


def prometheus_error(status: int, error_type: str, message: str) -> Fault:
    """An error answer in Prometheus's own JSON envelope."""
    body = json.dumps({"status": "error", "errorType": error_type, "error": message}).encode()
    return Fault(status=status, body=body)

