"""Faults at the network boundary: each failed run leaves every table exactly as it was, the ledger
records the failure with a reason, and a later run catches up to the source's truth."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from finops.collect import RunResult, collect, run_tasks
from finops.settings import AzureSettings, Settings
from finops.sources.azure import cost as azure_cost
from finops.store import Store
from finops.timeutil import Window
from tests.reliability.helpers import snapshot, with_prom
from tests.reliability.promfleet import D0, HOURS, SmallFleet
from tests.sources.test_aws_ce import SCENARIO, WINDOW, aws_settings, expected, stored
from tests.sources.test_azure_collect import SCOPE_A, scenario
from tests.support import moto as doubles
from tests.support.azure_fake import QPU_HEADER, THROTTLED, AzureFake, Clock, FakeCredential, Reply, make_cert
from tests.support.fault_proxy import Fault, FaultProxy, Seen, prometheus_error
from tests.support.moto import CeServer, FakeBill, free_port
from tests.support.prometheus import PrometheusServer

aws_env = doubles.aws_env  # fixture

DAY = Window(D0, D0 + timedelta(hours=HOURS))
HALF = Window(D0, D0 + timedelta(hours=12))
QUERIES = 13  # 5 GPU queries + 6 vLLM counters + sleep + the suspects query per chunk (token_source vllm)


def failed_cleanly(store: Store, result: RunResult, before: dict[str, Any], *fragments: str) -> None:
    """The run failed with a reason naming the problem, and nothing changed."""
    assert result.status == "failed"
    for f in fragments:
        assert f in (result.error or ""), result.error
    assert snapshot(store) == before
    [(status, error, finished)] = store.query("SELECT status, error, finished_at FROM source_runs WHERE run_id = ?",
                                              [result.run_id])
    assert (status, error) == ("failed", result.error) and finished is not None


# --- Prometheus ---------------------------------------------------------------------------------

def caught_up(store: Store, fleet: SmallFleet) -> None:
    assert store.query("SELECT count(*) FROM gpu_hours")[0][0] == fleet.gpu_hours()
    assert store.query("SELECT sum(prompt_tokens), sum(generation_tokens), sum(requests) FROM token_hours")[0] == \
        fleet.token_totals()


def test_prometheus_down_fails_cleanly_and_a_later_run_catches_up(
        store: Store, settings: Settings, prom: PrometheusServer, small_fleet: SmallFleet) -> None:
    assert collect(store, with_prom(settings, prom.url), "prometheus", HALF)[0].status == "succeeded"
    before = snapshot(store)
    down = with_prom(settings, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    [r] = collect(store, down, "prometheus", DAY)
    failed_cleanly(store, r, before, "unreachable", "127.0.0.1")
    assert r.requests == 1

    # ... and going down mid-run: every answer after the first chunk is a dropped connection.
    with FaultProxy(prom.url, lambda s: Fault(drop=True) if s.n > QUERIES else None) as proxy:
        [r] = collect(store, with_prom(settings, proxy.url, max_points_per_query=6), "prometheus", DAY)
    failed_cleanly(store, r, before, "unreachable")
    assert r.requests == QUERIES + 1

    [ok] = collect(store, with_prom(settings, prom.url), "prometheus", DAY)
    assert ok.status == "succeeded"
    caught_up(store, small_fleet)


def test_slow_prometheus_times_out_cleanly_and_a_later_run_catches_up(
        store: Store, settings: Settings, prom: PrometheusServer, small_fleet: SmallFleet) -> None:
    assert collect(store, with_prom(settings, prom.url), "prometheus", HALF)[0].status == "succeeded"
    before = snapshot(store)
    slow = {"on": True}
    with FaultProxy(prom.url, lambda s: Fault(delay=3) if slow["on"] and s.n > 3 else None) as proxy:
        s = with_prom(settings, proxy.url, timeout_seconds=0.3, max_retries=1, retry_backoff_seconds=0)
        [r] = collect(store, s, "prometheus", DAY)
        failed_cleanly(store, r, before, "did not answer in time", proxy.url.removeprefix("http://"))
        assert len(proxy.seen) == 3 + 2  # the timed-out query was retried once
        slow["on"] = False  # the server recovers
        [ok] = collect(store, s, "prometheus", DAY)
    assert ok.status == "succeeded", ok.error
    caught_up(store, small_fleet)


def test_an_error_mid_chunk_fails_cleanly_naming_the_chunk_and_a_later_run_catches_up(
        store: Store, settings: Settings, prom: PrometheusServer, small_fleet: SmallFleet) -> None:
    assert collect(store, with_prom(settings, prom.url), "prometheus", HALF)[0].status == "succeeded"
    before = snapshot(store)
    limit = prometheus_error(422, "execution", "query processing would load too many samples into memory")
    # Four chunks of six hours; the second chunk's fourth query fails.
    failing = QUERIES + 4
    with FaultProxy(prom.url, lambda s: limit if s.n == failing else None) as proxy:
        s = with_prom(settings, proxy.url, max_points_per_query=6)
        [r] = collect(store, s, "prometheus", DAY)
        failed_cleanly(store, r, before, "HTTP 422: execution: query processing would load too many samples",
                       "for [2026-11-02T06:00, 2026-11-02T12:00)")
        assert r.requests == failing
        [ok] = collect(store, s, "prometheus", DAY)  # the next run gets no error
    assert ok.status == "succeeded", ok.error
    assert ok.requests == 4 * QUERIES
    caught_up(store, small_fleet)


# --- AWS Cost Explorer --------------------------------------------------------------------------

def ce_before(store: Store, settings: Settings) -> dict[str, Any]:
    """A first successful run of a smaller bill: what a failed run must leave in place."""
    with CeServer(FakeBill(SCENARIO[:5])) as ce:
        [r] = collect(store, aws_settings(settings, endpoint_url=ce.url, ce_cache=False), "aws_ce", WINDOW)
    assert r.status == "succeeded"
    return snapshot(store)


def test_cost_explorer_throttling_fails_cleanly_and_a_later_run_catches_up(
        aws_env: None, settings: Settings, store: Store) -> None:
    before = ce_before(store, settings)
    with CeServer(FakeBill(SCENARIO), throttle=10**6) as ce:
        s = aws_settings(settings, endpoint_url=ce.url, ce_cache=False, max_attempts=2)
        [r] = collect(store, s, "aws_ce", WINDOW)
    failed_cleanly(store, r, before, "throttled by AWS (LimitExceededException)", "after 2 attempt(s)")
    assert ce.hits == 2
    with CeServer(FakeBill(SCENARIO), throttle=1) as ce:  # throttling eases: one more 400, then answers
        [ok] = collect(store, aws_settings(settings, endpoint_url=ce.url, ce_cache=False), "aws_ce", WINDOW)
    assert ok.status == "succeeded", ok.error
    assert stored(store) == expected(SCENARIO)


def server_error(s: Seen) -> Fault | None:
    if b"NextPageToken" not in s.body:
        return None
    return Fault(status=500, body=json.dumps({"__type": "InternalServerError", "message": "internal error"}).encode(),
                 headers={"Content-Type": "application/x-amz-json-1.1"})


def test_cost_explorer_5xx_mid_pagination_fails_cleanly_and_a_later_run_catches_up(
        aws_env: None, settings: Settings, store: Store) -> None:
    before = ce_before(store, settings)
    with CeServer(FakeBill(SCENARIO, page_size=3)) as ce, FaultProxy(ce.url, server_error) as proxy:
        s = aws_settings(settings, endpoint_url=proxy.url, ce_cache=False, max_attempts=2)
        [r] = collect(store, s, "aws_ce", WINDOW)
        failed_cleanly(store, r, before, "InternalServerError")
        pages = [x for x in proxy.seen if b"NextPageToken" in x.body]
        assert len(pages) == 2 and len(proxy.seen) > 2  # a second page, tried twice, after good pages
        # A transient 5xx: botocore's retry absorbs one, and the run lands the whole bill.
        once = {"left": 1}

        def blip(seen: Seen) -> Fault | None:
            fault = server_error(seen)
            if fault and once["left"]:
                once["left"] -= 1
                return fault
            return None

        proxy.rule = blip
        [ok] = collect(store, s, "aws_ce", WINDOW)
    assert ok.status == "succeeded", ok.error
    assert stored(store) == expected(SCENARIO)


# --- Azure --------------------------------------------------------------------------------------

class DroppingFake(AzureFake):
    """The Azure fake, able to close a connection without answering (`drop_when` on the raw request)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.drop_when: Callable[[BaseHTTPRequestHandler], bool] = lambda h: False
        self.dropped = 0

    def _handle(self, h: BaseHTTPRequestHandler, raw: bytes) -> None:
        if self.drop_when(h):
            self.dropped += 1
            h.close_connection = True
            return
        super()._handle(h, raw)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("azure-tls"))


@pytest.fixture
def fake(cert: tuple[Path, Path]) -> Iterator[DroppingFake]:
    f = DroppingFake(*cert, page_size=2)
    with f:
        scenario(f)
        yield f


AZ_WINDOW = Window(datetime(2026, 10, 30), datetime(2026, 11, 3))


def azure(store: Store, settings: Settings, fake: AzureFake, cert: tuple[Path, Path], clock: Clock,
          window: Window = AZ_WINDOW, **extra: Any) -> RunResult:
    cfg = AzureSettings(scopes=[SCOPE_A], base_url=fake.base_url, verify_tls=str(cert[0]),
                        min_seconds_between_queries=0, **extra)
    tasks = azure_cost.tasks(settings.model_copy(update={"azure": cfg}), window, credential=FakeCredential(),
                             sleep=clock.sleep, clock=clock.time, now=datetime(2026, 11, 23))
    [r] = run_tasks(store, "azure", tasks)
    return r


def azure_caught_up(store: Store, fake: AzureFake) -> None:
    assert store.query("SELECT sum(billed_cost), sum(effective_cost) FROM cost_lines")[0] == (
        fake.total(SCOPE_A, "ActualCost", places=12), fake.total(SCOPE_A, "AmortizedCost", places=12))


def test_azure_429_storm_fails_cleanly_and_a_later_run_catches_up(
        store: Store, settings: Settings, fake: DroppingFake, cert: tuple[Path, Path]) -> None:
    first = Window(datetime(2026, 10, 30), datetime(2026, 11, 1))
    assert azure(store, settings, fake, cert, Clock(), first).status == "succeeded"
    before = snapshot(store)
    storm = {"on": True, "from": len(fake.requests) + 7}
    fake.script(Reply(429, {QPU_HEADER: "4"}, THROTTLED), times=None,
                when=lambda s: bool(storm["on"]) and len(fake.requests) >= storm["from"])  # starts mid-run
    clock = Clock()
    r = azure(store, settings, fake, cert, clock, max_attempts=5)
    failed_cleanly(store, r, before, "throttled by Azure (HTTP 429", "all 5 attempts")
    assert clock.sleeps == [4, 4, 4, 4]  # waited as told, without really sleeping
    storm["on"] = False
    ok = azure(store, settings, fake, cert, Clock())
    assert ok.status == "succeeded", ok.error
    azure_caught_up(store, fake)
    assert fake.violations == []


def test_azure_dropped_connection_mid_page_fails_cleanly_and_a_later_run_catches_up(
        store: Store, settings: Settings, fake: DroppingFake, cert: tuple[Path, Path]) -> None:
    first = Window(datetime(2026, 10, 30), datetime(2026, 11, 1))
    assert azure(store, settings, fake, cert, Clock(), first).status == "succeeded"
    before = snapshot(store)
    fake.drop_when = lambda h: "$skiptoken" in h.path  # every follow-up page: the connection closes
    r = azure(store, settings, fake, cert, Clock(), transport_retries=1)
    failed_cleanly(store, r, before, "cannot reach", fake.base_url)
    assert fake.dropped >= 1
    fake.drop_when = lambda h: False
    ok = azure(store, settings, fake, cert, Clock())
    assert ok.status == "succeeded", ok.error
    azure_caught_up(store, fake)
