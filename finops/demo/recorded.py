"""Recorded query responses: a local HTTP endpoint that answers the Prometheus collector's range
queries in Prometheus's own JSON shape, computed from the fleet's telemetry.

The collector talks to it exactly as to a Prometheus (same client, same PromQL, same parsers); only
the answers come from `finops.demo.telemetry.matrix` instead of a TSDB. It knows the queries the
collector plans for the given settings and answers any other query with Prometheus's `bad_data`
error, so a collector change that this endpoint cannot answer fails loudly.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from finops.demo.fleet import Fleet
from finops.demo.telemetry import matrix
from finops.settings import Settings
from finops.sources.prometheus.collect import plan
from finops.sources.prometheus.promql import by_labels
from finops.timeutil import Window

PATH = "/api/v1/query_range"


def query_table(settings: Settings, window: Window) -> dict[str, tuple[str, str, list[str]]]:
    """PromQL text -> (fact, measure, labels its `by` keeps) for every query the collector will send."""
    cfg = settings.prometheus
    the_plan = plan(settings, window, now=window.end)
    return {expr: (q.fact, q.measure, by_labels(q.fact, cfg.resource_labels, cfg.dim_labels).split(", "))
            for q, expr in the_plan.queries}


class RecordedPrometheus:
    """Serves `fleet`'s telemetry within `window` on 127.0.0.1 (a free port); a context manager."""

    def __init__(self, fleet: Fleet, settings: Settings, window: Window):
        self.fleet, self.window = fleet, window
        self.queries = query_table(settings, window)
        self.requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for one query_range request."""
        expr = params.get("query", "")
        if expr not in self.queries:
            return 400, {"status": "error", "errorType": "bad_data", "error": f"no recorded answer for {expr!r}"}
        try:
            start, end, step = (float(params[k]) for k in ("start", "end", "step"))
        except (KeyError, ValueError):
            return 400, {"status": "error", "errorType": "bad_data", "error": "start, end and step must be numbers"}
        if step != 3600:
            return 400, {"status": "error", "errorType": "bad_data", "error": "answers are recorded at a 1h step"}
        fact, measure, by = self.queries[expr]
        first, last = (datetime.fromtimestamp(t, UTC).replace(tzinfo=None) for t in (start, end))
        result = matrix(self.fleet, fact, measure, by, first, last, (self.window.start, self.window.end))
        return 200, {"status": "success", "data": {"resultType": "matrix", "result": result}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, params: dict[str, str]) -> None:
                if urlsplit(self.path).path != PATH:
                    status, body = 404, {"status": "error", "errorType": "not_found", "error": self.path}
                else:
                    endpoint.requests += 1
                    status, body = endpoint.answer(params)
                data = json.dumps(body, separators=(",", ":")).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
                self._reply({k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()})

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                self._reply({k: v[-1] for k, v in parse_qs(body).items()})

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
                pass  # quiet: the demo reports what it did

        return Handler

    def start(self) -> RecordedPrometheus:
        self._thread = threading.Thread(target=self._server.serve_forever, name="recorded-prometheus", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> RecordedPrometheus:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
