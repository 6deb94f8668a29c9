"""Real HTTP receivers for alert channels: an http.server on 127.0.0.1 (port chosen by the OS) that
records every request it gets and can answer an error status for the first N requests."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    body: Any
    content_type: str
    answered: int


class Receiver:
    """`fail_first` requests get `fail_status`; later ones 200. `always_fail` answers every request so."""

    def __init__(self, fail_first: int = 0, fail_status: int = 500, always_fail: bool = False):
        self.fail_first, self.fail_status, self.always_fail = fail_first, fail_status, always_fail
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    failing = receiver.always_fail or len(receiver.received) < receiver.fail_first
                    status = receiver.fail_status if failing else 200
                    receiver.received.append(Received(self.path, json.loads(raw), self.headers.get("Content-Type", ""),
                                                      status))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def ok(self) -> list[Received]:
        """Requests answered 200."""
        return [r for r in self.received if r.answered == 200]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
