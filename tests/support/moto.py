"""AWS test doubles: moto's server, and a fake bill that answers Cost Explorer like AWS would.

- `moto_server` (fixture, one per test session): `ThreadedMotoServer` on 127.0.0.1 and a free
  port, stopped at the end; `moto` (fixture) resets it before each test and yields its URL.
- `aws_env` (fixture): dummy credentials in the environment, no config files, no IMDS, so the
  code under test builds its clients through boto3's default chain and never reaches real AWS.
- `FakeBill`: line items (day, tags, service, account, amounts) that answer any GetCostAndUsage
  request (Filter, GroupBy, paging, Estimated) by evaluating it, the way Cost Explorer would.
- `CeServer`: a tiny HTTP server speaking Cost Explorer's JSON 1.1 protocol from a FakeBill; it
  can throttle the first N requests (400 LimitExceededException) and records every request body.
- `queue_ce`: POST answers to moto's `/moto-api/static/ce/cost-and-usage-results` queue.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

CE_METRICS = {"UnblendedCost": "billed", "AmortizedCost": "effective", "NetAmortizedCost": "effective"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        # moto loads thousands of default AMIs on the first EC2 call after each reset (~2 s); tests
        # launch instances from any image id instead.
        mp.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()


@pytest.fixture
def moto(moto_server: str) -> str:
    """moto's URL, with its state (S3, EC2, the Cost Explorer queue and body cache) reset."""
    httpx.post(f"{moto_server}/moto-api/reset").raise_for_status()
    return moto_server


SECRET = "fake-secret-key-never-logged"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_CE", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_EC2", "AWS_ROLE_ARN",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTINGFAKEKEY01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def queue_ce(moto_url: str, answers: Sequence[dict[str, Any]]) -> None:
    """Queue GetCostAndUsage answers; each new request body takes the next one (FIFO)."""
    r = httpx.post(f"{moto_url}/moto-api/static/ce/cost-and-usage-results",
                   json={"results": list(answers), "account_id": "123456789012"})
    assert r.status_code == 201, r.text


@dataclass(frozen=True)
class Item:
    """One line of the fake bill: a day's cost of one tag set, service and account."""

    day: date
    tags: tuple[tuple[str, str], ...]
    service: str
    account: str
    billed: Decimal
    effective: Decimal

    def tag(self, key: str) -> str | None:
        return dict(self.tags).get(key)

    def dimension(self, key: str) -> str:
        return {"SERVICE": self.service, "LINKED_ACCOUNT": self.account}[key]


def item(day: date, tags: dict[str, str], service: str, account: str, billed: str, effective: str | None = None) -> Item:
    return Item(day, tuple(sorted(tags.items())), service, account, Decimal(billed), Decimal(effective or billed))


def _matches(it: Item, f: dict[str, Any]) -> bool:
    if "And" in f:
        return all(_matches(it, x) for x in f["And"])
    if "Or" in f:
        return any(_matches(it, x) for x in f["Or"])
    if "Not" in f:
        return not _matches(it, f["Not"])
    if "Tags" in f:
        t = f["Tags"]
        value = it.tag(t["Key"])
        if "ABSENT" in t.get("MatchOptions", []):
            return value is None
        return value is not None and value in t.get("Values", [])
    if "Dimensions" in f:
        d = f["Dimensions"]
        return it.dimension(d["Key"]) in d["Values"]
    raise AssertionError(f"the fake bill cannot evaluate filter {f}")


@dataclass
class FakeBill:
    """Answers GetCostAndUsage from line items. `hidden` items count only in ungrouped totals (a
    bill whose tag data disagree with its totals); `estimated` days carry `Estimated: true`."""

    items: list[Item]
    estimated: frozenset[date] = frozenset()
    page_size: int = 4
    hidden: list[Item] = field(default_factory=list)

    def _metrics(self, names: Sequence[str], items: Sequence[Item]) -> dict[str, Any]:
        out = {}
        for name in names:
            total = sum((getattr(i, CE_METRICS[name]) for i in items), Decimal(0))
            out[name] = {"Amount": str(total), "Unit": "USD"}
        return out

    def answer(self, req: dict[str, Any]) -> dict[str, Any]:
        start = date.fromisoformat(req["TimePeriod"]["Start"])
        end = date.fromisoformat(req["TimePeriod"]["End"])
        group_by = req.get("GroupBy", [])
        pool = self.items + ([] if group_by else self.hidden)
        items = [i for i in pool if start <= i.day < end and _matches(i, req.get("Filter") or {"And": []})]
        days = [start + timedelta(days=n) for n in range((end - start).days)]

        def period(d: date) -> dict[str, str]:
            return {"Start": d.isoformat(), "End": (d + timedelta(days=1)).isoformat()}

        if not group_by:
            results = [{"TimePeriod": period(d), "Total": self._metrics(req["Metrics"], [i for i in items if i.day == d]),
                        "Groups": [], "Estimated": d in self.estimated} for d in days]
            return {"GroupDefinitions": [], "ResultsByTime": results, "DimensionValueAttributes": []}

        def keys(i: Item) -> tuple[str, ...]:
            return tuple(f"{g['Key']}${i.tag(g['Key']) or ''}" if g["Type"] == "TAG" else i.dimension(g["Key"])
                         for g in group_by)

        entries: list[tuple[date, tuple[str, ...]]] = sorted({(i.day, keys(i)) for i in items})
        offset = int(req.get("NextPageToken", "o=0").split("=")[1])
        chunk = entries[offset:offset + self.page_size]
        results = []
        for d in days:
            mine = [k for day, k in chunk if day == d]
            if mine or (offset == 0 and not any(day == d for day, _ in entries)):
                groups = [{"Keys": list(k), "Metrics": self._metrics(
                    req["Metrics"], [i for i in items if i.day == d and keys(i) == k])} for k in mine]
                results.append({"TimePeriod": period(d), "Total": {}, "Groups": groups, "Estimated": d in self.estimated})
        page: dict[str, Any] = {"GroupDefinitions": group_by, "ResultsByTime": results, "DimensionValueAttributes": []}
        if offset + self.page_size < len(entries):
            page["NextPageToken"] = f"o={offset + self.page_size}"
        return page


class CeServer:
    """Cost Explorer over HTTP (JSON 1.1) from a FakeBill; throttles the first `throttle` requests."""

    def __init__(self, bill: FakeBill, throttle: int = 0, code: str = "LimitExceededException"):
        self.bill, self.throttle, self.code = bill, throttle, code
        self.hits = 0
        self.log: list[tuple[bytes, dict[str, Any]]] = []  # (request body, answer) of answered requests
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.hits += 1
                if outer.hits <= outer.throttle:
                    self._send(400, {"__type": outer.code, "Message": "Rate exceeded"})
                    return
                assert self.headers["X-Amz-Target"].endswith(".GetCostAndUsage")
                answer = outer.bill.answer(json.loads(body))
                outer.log.append((body, answer))
                self._send(200, answer)

            def _send(self, status: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
