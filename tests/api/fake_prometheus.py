"""A Prometheus HTTP API double: every range query answers an empty matrix, optionally after a gate opens.

It speaks the real wire format (`/api/v1/query_range`), so a collection through it is a real run
of the Prometheus source that lands nothing; holding the gate keeps that run in progress.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ERROR = json.dumps({"status": "error", "errorType": "internal", "error": "tsdb unavailable"}).encode()
EMPTY = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode()


class FakePrometheus:
    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.requests = 0
        self.status = 200  # any other status answers Prometheus's error body
        self.url = ""


@contextmanager
def fake_prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            fake.requests += 1
            fake.gate.wait(10)
            body = EMPTY if fake.status == 200 else ERROR
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.gate.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
