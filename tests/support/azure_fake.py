"""A local HTTPS fake of the ARM Cost Management query endpoint (api-version 2025-03-01).

It answers `POST /{scope}/providers/Microsoft.CostManagement/query` from a table of cost atoms the
way the service does (Daily rows, group columns, `UsageDate` as yyyymmdd int, `Currency`, costs as
JSON doubles), pages with `nextLink` + `$skiptoken`, and can be scripted (429s, 204s, odd links).
Like the real service it varies column order (here on every page) and spells untagged rows as
null, "" or both. It checks every request body the SDK sends and records what it saw; a request
that breaks the API's rules gets a 400 and a line in `violations`.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azure.core.credentials import AccessToken

API_VERSION = "2025-03-01"
TOKEN = "fake"
THROTTLED = {"error": {"code": "429", "message": "Too many requests. Please retry."}}
QPU_HEADER = "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after"
AGGREGATION_NAMES = {"Cost", "PreTaxCost", "CostUSD", "PreTaxCostUSD"}
_PATH = re.compile(r"^/(?P<scope>.+)/providers/Microsoft\.CostManagement/query$", re.IGNORECASE)
# How the service spells an untagged group: (TagKey, TagValue); the fake cycles through them.
UNTAGGED_FORMS: tuple[tuple[str | None, str | None], ...] = ((None, None), ("", ""), (None, ""))


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the IP SAN is what makes verification pass)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


class FakeCredential:
    """A token credential for the fake (passed in as a parameter, as production passes its own)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(TOKEN, int(time.time()) + 3600)


class Clock:
    """An injected clock and sleep: records each wait and advances time without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def time(self) -> float:
        return self.now


@dataclass(frozen=True)
class Atom:
    """One piece of the fake's truth: what a resource cost on a day, with its service and tags."""

    resource_id: str
    day: date
    cost: float
    service: str | None = "Virtual Machines"
    tags: Mapping[str, str] = field(default_factory=dict)
    currency: str = "USD"

    def tag(self, key: str) -> tuple[str, str] | None:
        """(key as spelled on the resource, value); tag keys match case-insensitively."""
        return next(((k, v) for k, v in self.tags.items() if k.casefold() == key.casefold()), None)


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass
class Seen:
    """One request as received."""

    scope: str
    path: str
    query: dict[str, list[str]]
    body: Any
    authorization: str | None
    status: int = 0


@dataclass
class _Script:
    reply: Reply
    when: Callable[[Seen], bool]
    times: int | None


def check_body(body: Any) -> list[str]:
    """The rules of the query API (and of our plan) that a request body must follow."""
    problems: list[str] = []
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    if body.get("type") not in ("ActualCost", "AmortizedCost"):
        problems.append(f"type {body.get('type')!r}")
    if body.get("timeframe") != "Custom":
        problems.append(f"timeframe {body.get('timeframe')!r} is not Custom")
    period = body.get("timePeriod") or {}
    start, end = str(period.get("from")), str(period.get("to"))
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT00:00:00Z", start) or not re.fullmatch(r"\d{4}-\d\d-\d\dT23:59:59Z", end):
        problems.append(f"timePeriod {period!r} is not whole days with an inclusive end")
    elif (date.fromisoformat(end[:10]) - date.fromisoformat(start[:10])).days not in range(31):
        problems.append(f"timePeriod {period!r} is empty or longer than 31 days")
    dataset = body.get("dataset") or {}
    if dataset.get("granularity") != "Daily":
        problems.append(f"granularity {dataset.get('granularity')!r}")
    aggregation = dataset.get("aggregation") or {}
    if len(aggregation) != 1 or any(a.get("function") != "Sum" or a.get("name") not in AGGREGATION_NAMES
                                    for a in aggregation.values()):
        problems.append(f"aggregation {aggregation!r} is not exactly one Sum")
    grouping = dataset.get("grouping") or []
    if len(grouping) > 2:
        problems.append(f"{len(grouping)} groupings (at most 2)")
    for g in grouping:
        if g.get("type") not in ("TagKey", "Dimension") or not g.get("name"):
            problems.append(f"Invalid dataset grouping {g!r}")
        elif g["type"] == "Dimension" and g["name"] not in ("ResourceId", "ServiceName"):
            problems.append(f"dimension {g['name']!r} is not served by this fake")
    return problems


class AzureFake:
    """The fake service; use as a context manager. `data[(scope, cost type)]` holds its atoms."""

    def __init__(self, cert: Path, key: Path, page_size: int = 3):
        self.page_size = page_size
        self.data: dict[tuple[str, str], list[Atom]] = defaultdict(list)
        self.requests: list[Seen] = []
        self.violations: list[str] = []
        self.empty_as_204: set[str] = set()  # scopes whose empty answers are 204 No Content
        self.end_with_204: set[str] = set()  # scopes whose last page links to a page answered 204
        self.column_orders: list[tuple[str, ...]] = []  # per page served
        self._scripts: list[_Script] = []
        self._pages: dict[str, tuple[Any, int]] = {}
        self._lock = threading.Lock()
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.load_cert_chain(str(cert), str(key))
        self._server: ThreadingHTTPServer | None = None

    # --- set-up -------------------------------------------------------------------------------
    def add(self, scope: str, cost_type: str, atoms: list[Atom]) -> None:
        self.data[(scope.strip("/").lower(), cost_type)].extend(atoms)

    def script(self, reply: Reply, when: Callable[[Seen], bool] | None = None, times: int | None = 1) -> None:
        """Serve `reply` to the next `times` matching requests (None: forever) instead of data."""
        self._scripts.append(_Script(reply, when or (lambda s: True), times))

    def total(self, scope: str, cost_type: str, places: int | None = None) -> Decimal:
        """The fake's own sum: its cells (the finest rows it can serve), each optionally rounded."""
        total = Decimal(0)
        for cost in self._cells(scope.strip("/").lower(), cost_type).values():
            d = Decimal(repr(cost))
            total += d.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN) if places is not None else d
        return total

    def _cells(self, scope: str, cost_type: str) -> dict[tuple[Any, ...], float]:
        sums: dict[tuple[Any, ...], Decimal] = defaultdict(Decimal)
        for a in self.data.get((scope, cost_type), []):
            sums[(a.resource_id, a.day, a.currency, a.service, tuple(sorted(a.tags.items())))] += Decimal(repr(a.cost))
        return {k: float(v) for k, v in sums.items()}

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> AzureFake:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: every answer carries a Content-Length
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake._handle(self, raw)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the access log
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = self._ctx.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    # --- serving ------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, raw: bytes) -> None:
        url = urlsplit(h.path)
        match = _PATH.match(url.path)
        query = parse_qs(url.query)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        seen = Seen(match.group("scope").lower() if match else "", url.path, query, body, h.headers.get("Authorization"))
        with self._lock:
            self.requests.append(seen)
            reply = self._reply(seen, h)
            seen.status = reply.status
        data = b"" if reply.body is None else json.dumps(reply.body).encode()
        h.send_response(reply.status)
        for k, v in {"Content-Type": "application/json", **reply.headers}.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _bad(self, message: str) -> Reply:
        self.violations.append(message)
        return Reply(400, body={"error": {"code": "BadRequest", "message": message}})

    def _reply(self, seen: Seen, h: BaseHTTPRequestHandler) -> Reply:
        if not seen.scope:
            return self._bad(f"unknown path {seen.path}")
        if seen.query.get("api-version") != [API_VERSION]:
            return self._bad(f"api-version {seen.query.get('api-version')}")
        if seen.authorization != f"Bearer {TOKEN}":
            return Reply(401, body={"error": {"code": "AuthenticationFailed", "message": "no token"}})
        if not (h.headers.get("Content-Type") or "").startswith("application/json"):
            return self._bad("Content-Type is not application/json")
        problems = check_body(seen.body)
        if problems:
            return self._bad("; ".join(problems))
        for s in self._scripts:
            if (s.times is None or s.times > 0) and s.when(seen):
                if s.times is not None:
                    s.times -= 1
                return s.reply
        token = (seen.query.get("$skiptoken") or [None])[0]
        if token is None:
            return self._page(seen, 0)
        if token not in self._pages:
            return self._bad(f"unknown $skiptoken {token}")
        body, page = self._pages[token]
        if body != seen.body:
            return self._bad("a nextLink request did not re-send the original body")
        return self._page(seen, page)

    def _page(self, seen: Seen, page: int) -> Reply:
        columns, rows = self._answer(seen.scope, seen.body)
        chunks = [rows[i:i + self.page_size] for i in range(0, len(rows), self.page_size)]
        if page >= len(chunks):
            # The first page of an empty answer, or the page behind the last one (end_with_204).
            return Reply(204) if page > 0 or seen.scope in self.empty_as_204 else self._empty(columns)
        more = page + 1 < len(chunks) or seen.scope in self.end_with_204
        link = None
        if more:
            token = f"t{len(self._pages) + 1}"
            self._pages[token] = (seen.body, page + 1)
            link = f"{self.base_url}{seen.path}?api-version={API_VERSION}&$skiptoken={token}"
        # Another column order on every page: only by-name reading gets the rows right.
        n = len(columns)
        order = [(i + page) % n for i in range(n)]
        if page % 2:
            order.reverse()
        self.column_orders.append(tuple(columns[i]["name"] for i in order))
        return Reply(200, body={
            "id": f"{seen.scope}/providers/Microsoft.CostManagement/query/{len(self.requests)}",
            "name": str(len(self.requests)), "type": "Microsoft.CostManagement/query",
            "properties": {"nextLink": link, "columns": [columns[i] for i in order],
                           "rows": [[r[i] for i in order] for r in chunks[page]]}})

    def _empty(self, columns: list[dict[str, str]]) -> Reply:
        return Reply(200, body={"properties": {"nextLink": None, "columns": columns, "rows": []}})

    def _answer(self, scope: str, body: dict[str, Any]) -> tuple[list[dict[str, str]], list[list[Any]]]:
        """Group the atoms of `scope` in the body's period the way the service does."""
        period = body["timePeriod"]
        first, last = date.fromisoformat(period["from"][:10]), date.fromisoformat(period["to"][:10])
        dataset = body["dataset"]
        cost_name = next(iter(dataset["aggregation"].values()))["name"]
        groupings = dataset.get("grouping") or []
        columns: list[dict[str, str]] = [{"name": cost_name, "type": "Number"}]
        for g in groupings:
            names = ["TagKey", "TagValue"] if g["type"] == "TagKey" else [g["name"]]
            columns += [{"name": n, "type": "String"} for n in names]
        columns += [{"name": "UsageDate", "type": "Number"}, {"name": "Currency", "type": "String"}]
        sums: dict[tuple[Any, ...], Decimal] = defaultdict(Decimal)
        for a in self.data.get((scope, body["type"]), []):
            if first <= a.day <= last:
                group: list[Any] = []
                for g in groupings:
                    if g["type"] == "TagKey":
                        group.append(a.tag(g["name"]))
                    else:
                        group.append(a.resource_id if g["name"] == "ResourceId" else a.service)
                # Exact sum, rounded to a double once: every grouping of one cell gives the same double.
                sums[(tuple(group), a.day, a.currency)] += Decimal(repr(a.cost))
        rows, untagged = [], 0
        for (group, day, currency), total in sorted(sums.items(), key=lambda kv: repr(kv[0])):
            row: list[Any] = [float(total)]
            for g, v in zip(groupings, group, strict=True):
                if g["type"] == "TagKey":
                    if v is None:
                        row += list(UNTAGGED_FORMS[untagged % len(UNTAGGED_FORMS)])
                        untagged += 1
                    else:
                        row += list(v)
                else:
                    row.append(v)
            rows.append([*row, int(day.strftime("%Y%m%d")), currency])
        return columns, rows

