"""Concurrent use of one store: readers while collections land, collections of different sources at
once, and a second collection of a source that is already running (rejected, never both)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from finops import reports
from finops.collect import AlreadyRunning, RunResult, collect, ingest_focus, run_tasks
from finops.reports.params import build_params
from finops.settings import AzureSettings, Settings
from finops.sources.azure import cost as azure_cost
from finops.store import Store
from finops.tags import TagRules
from finops.timeutil import Window
from tests.reliability.helpers import ledger, snapshot, with_prom
from tests.reliability.promfleet import D0, HOURS, SmallFleet
from tests.sources.test_azure_collect import SCOPE_A, scenario
from tests.support import example_a
from tests.support.azure_fake import AzureFake, Clock, FakeCredential, make_cert
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.prometheus import PrometheusServer

DAY = example_a.DAY
CORRECTED = [list(b) for b in example_a.BILL]
CORRECTED[0][4], CORRECTED[3][4] = "300.00", "0.75"  # the re-issued bill: other amounts, other split
REPLACEMENTS = 4
TOTALS = {Decimal("534.00"), sum((Decimal(str(b[4])) for b in CORRECTED), Decimal(0))}


def in_threads(*jobs: Callable[[], Any]) -> list[Any]:
    """Run the jobs at once and return their results (re-raising the first failure)."""
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [f.result(timeout=120) for f in futures]


def test_reports_read_whole_versions_while_bills_are_replaced(store: Store, settings: Settings,
                                                              tmp_path: Path) -> None:
    """Each report sees the bill before or after a replacement, never half of it, and reconciles."""
    rules = TagRules.from_settings(settings)
    example_a.load(store, rules, tmp_path)
    path = tmp_path / f"example-a-{DAY:%Y%m%d}.csv"  # the file example_a.load ingested
    versions = [example_a.focus_csv(bill=CORRECTED), example_a.focus_csv()]
    done = threading.Event()
    seen: dict[str, set[Decimal]] = {}
    read_done = threading.Semaphore(0)

    def writer() -> list[RunResult]:
        out = []
        try:
            for i in range(REPLACEMENTS):
                path.write_text(versions[i % 2])
                out += ingest_focus(store, rules, [path])
                read_done.acquire(timeout=10)  # let a report start on this version before replacing it
        finally:
            done.set()
        return out

    def reader(name: str) -> int:
        params = build_params(start="2026-11-02", end="2026-11-03", granularity="total")
        n = 0
        while True:
            finished = done.is_set()  # a read that starts after the writer finished sees its last state
            report = reports.get(name)(store, settings, params)
            total = report.totals.get("cost", report.totals.get("total_cost"))
            assert isinstance(total, Decimal) and total in TOTALS, (name, total)
            if name == "unit-economics":  # the invariant: rows add up to the ingested total
                assert sum(r["cost"] for r in report.rows) == total
            seen.setdefault(name, set()).add(total)
            read_done.release()
            n += 1
            if finished and n >= 3:
                return n

    results, *reads = in_threads(writer, lambda: reader("unit-economics"), lambda: reader("untagged-spend"))
    print(f"\nreports during {REPLACEMENTS} replacements: {reads}, totals seen: {seen}")
    assert [r.status for r in results] == ["succeeded"] * REPLACEMENTS
    assert min(reads) >= 3
    assert any(len(v) == 2 for v in seen.values()), "the readers never overlapped a replacement"
    assert store.query("SELECT sum(billed_cost) FROM cost_lines")[0][0] == Decimal("534.00")
    assert store.query("SELECT count(*) FROM cost_lines")[0][0] == len(example_a.BILL)


def test_reports_stay_consistent_while_telemetry_lands(store: Store, settings: Settings, tmp_path: Path,
                                                       prom: PrometheusServer, small_fleet: SmallFleet) -> None:
    """A real Prometheus collection lands while reports run; every report reconciles to the bill."""
    example_a.load(store, TagRules.from_settings(settings), tmp_path)
    s = with_prom(settings, prom.url, max_points_per_query=4)  # six chunks: a longer fetch
    done = threading.Event()

    def collector() -> RunResult:
        try:
            [r] = collect(store, s, "prometheus", Window(D0, D0 + timedelta(hours=HOURS)))
            return r
        finally:
            done.set()

    a_tokens = sum(t[3] for t in example_a.TOKENS)
    fleet_tokens = small_fleet.token_totals()[1]  # the fleet's day is example A's day
    seen: set[int] = set()

    def reader() -> int:
        params = build_params(start="2026-11-02", end="2026-11-03", granularity="day")
        n = 0
        while True:
            finished = done.is_set()
            report = reports.get("unit-economics")(store, s, params)
            assert sum(r["cost"] for r in report.rows) == Decimal("534.00")
            tokens = sum(r["generation_tokens"] for r in report.rows)
            assert tokens in (a_tokens, a_tokens + fleet_tokens)  # before or after the landing, not between
            seen.add(tokens)
            n += 1
            if finished and n >= 2:
                return n

    result, reads = in_threads(collector, reader)
    assert result.status == "succeeded", result.error
    assert reads >= 2 and a_tokens + fleet_tokens in seen
    assert store.query("SELECT count(*) FROM gpu_hours WHERE scope = 'prometheus'")[0][0] == small_fleet.gpu_hours()


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("azure-tls"))


def test_collections_of_different_sources_run_at_once(store: Store, settings: Settings, tmp_path: Path,
                                                      prom: PrometheusServer, small_fleet: SmallFleet,
                                                      cert: tuple[Path, Path]) -> None:
    """Prometheus, Azure and a FOCUS file at the same time: each lands whole, as it would alone."""
    rules = TagRules.from_settings(settings)
    bill = tmp_path / "bill.csv"
    bill.write_text(example_a.focus_csv())
    with AzureFake(*cert, page_size=2) as fake:
        scenario(fake)
        az = settings.model_copy(update={"azure": AzureSettings(
            scopes=[SCOPE_A], base_url=fake.base_url, verify_tls=str(cert[0]), min_seconds_between_queries=0)})
        clock = Clock()
        window = Window(datetime(2026, 10, 30), datetime(2026, 11, 3))
        az_tasks = azure_cost.tasks(az, window, credential=FakeCredential(), sleep=clock.sleep, clock=clock.time,
                                    now=datetime(2026, 11, 23))
        prom_window = Window(D0, D0 + timedelta(hours=HOURS))
        results = in_threads(
            lambda: collect(store, with_prom(settings, prom.url, max_points_per_query=6), "prometheus", prom_window),
            lambda: run_tasks(store, "azure", az_tasks),
            lambda: ingest_focus(store, rules, [bill]),
        )
        want_azure = fake.total(SCOPE_A, "ActualCost", places=12)
    assert [r.status for rs in results for r in rs] == ["succeeded"] * 3, [r.error for rs in results for r in rs]
    assert store.query("SELECT count(*) FROM gpu_hours")[0][0] == small_fleet.gpu_hours()
    assert store.query("SELECT sum(generation_tokens) FROM token_hours")[0][0] == small_fleet.token_totals()[1]
    assert dict(store.query("SELECT source, sum(billed_cost) FROM cost_lines GROUP BY 1")) == {
        "azure": want_azure, "focus": Decimal("534.00")}
    assert dict(store.query("SELECT source, sum(billed_cost) FROM cost_daily GROUP BY 1")) == {
        "azure": want_azure, "focus": Decimal("534.00")}


def test_a_second_collection_of_a_running_source_is_rejected(store: Store, settings: Settings,
                                                              prom: PrometheusServer,
                                                              small_fleet: SmallFleet) -> None:
    started = threading.Event()

    def slow(seen: Any) -> Fault:
        started.set()
        return Fault(delay=0.05)

    window = Window(D0, D0 + timedelta(hours=HOURS))
    with FaultProxy(prom.url, slow) as proxy:
        s = with_prom(settings, proxy.url, max_points_per_query=6)
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(collect, store, s, "prometheus", window)
            assert started.wait(30)
            before = snapshot(store)
            for _ in range(3):  # asked again, while the first is fetching: refused at once, nothing recorded
                t = time.monotonic()
                with pytest.raises(AlreadyRunning, match="a collection of 'prometheus' is already running"):
                    collect(store, s, "prometheus", window)
                assert time.monotonic() - t < 1
            assert snapshot(store) == before
            assert [status for status, *_ in ledger(store, "prometheus")] == ["running"]
            [r] = first.result(timeout=60)
    assert r.status == "succeeded", r.error
    assert [status for status, *_ in ledger(store, "prometheus")] == ["succeeded"]
    assert store.query("SELECT count(*) FROM gpu_hours")[0][0] == small_fleet.gpu_hours()
    # Once it has finished, the source can be collected again.
    assert collect(store, with_prom(settings, prom.url), "prometheus", window)[0].status == "succeeded"
