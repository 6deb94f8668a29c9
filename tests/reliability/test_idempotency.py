"""Idempotency: every collector re-run five times over overlapping windows, and restatements.

After each run the store holds each fact once, totals equal the source's own truth (computed here
or by the test double, never read back from the code under test), a repeat of the same runs changes
nothing, and the ledger holds one row per run with its window.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import boto3
import pytest

from finops.collect import RunResult, collect, ingest_focus, run_tasks
from finops.settings import AwsSettings, AzureSettings, Settings
from finops.sources.azure import cost as azure_cost
from finops.store import Store
from finops.tags import TagRules
from finops.timeutil import Window
from tests.reliability.helpers import duplicates, ledger, snapshot, with_prom
from tests.reliability.promfleet import D0, HOURS, SmallFleet
from tests.sources.test_aws_ce import A1, D1, D3, EC2, LLAMA, SCENARIO, aws_settings, expected, stored
from tests.sources.test_aws_exports import (
    BUCKET,
    DATA,
    META,
    NEW_EFFECTIVE,
    NEW_ROWS,
    PREFIX,
    manifest,
    parquet,
)
from tests.sources.test_aws_inventory import TAGS, ec2, launch
from tests.sources.test_azure_collect import DAYS, SCOPE_A, SCOPE_B, VM1, scenario
from tests.support import example_a
from tests.support import moto as doubles
from tests.support.azure_fake import Atom, AzureFake, Clock, FakeCredential, make_cert
from tests.support.moto import CeServer, FakeBill, item
from tests.support.prometheus import PrometheusServer

moto_server, moto, aws_env = doubles.moto_server, doubles.moto, doubles.aws_env  # fixtures

RUNS = 5


def check_ledger(store: Store, source: str, windows: Sequence[Window | None], results: list[RunResult]) -> None:
    """One ledger row per run, in order, succeeded, with its window and row count."""
    got = ledger(store, source)
    assert [(s, ws, we) for s, ws, we, _ in got] == [
        ("succeeded", w.start if w else None, w.end if w else None) for w in windows]
    assert [r for *_, r in got] == [r.rows for r in results]


# --- Prometheus ---------------------------------------------------------------------------------

def test_prometheus_overlapping_windows_five_times(store: Store, settings: Settings, prom: PrometheusServer,
                                                   small_fleet: SmallFleet) -> None:
    s = with_prom(settings, prom.url)
    h = timedelta(hours=1)
    # Overlapping, some not on the hour: each hour is collected by one to three of them.
    windows = [Window(D0, D0 + 8 * h), Window(D0 + 3.5 * h, D0 + 12 * h), Window(D0 + 8 * h, D0 + 16.25 * h),
               Window(D0 + 12 * h, D0 + 20 * h), Window(D0 + 15 * h, D0 + HOURS * h)]
    results, covered = [], D0
    for w in windows:
        [r] = collect(store, s, "prometheus", w)
        assert r.status == "succeeded", r.error
        results.append(r)
        covered = max(covered, w.end)
        assert duplicates(store, "gpu_hours", "gpu_uuid, hour_start") == []
        assert duplicates(store, "token_hours", "instance, model_name, hour_start") == []
        hours = store.query("SELECT count(*) FROM gpu_hours")[0][0]
        # Hours are whole: a window ending mid-hour collects the hour it ends in.
        end = D0 + timedelta(hours=-(-(covered - D0) // h))
        assert hours == small_fleet.gpu_hours(D0, end)
    check_ledger(store, "prometheus", windows, results)

    got = store.query("SELECT sum(prompt_tokens), sum(generation_tokens), sum(requests) FROM token_hours")[0]
    assert got == small_fleet.token_totals()
    busy = dict(((u, t), b) for u, t, b in store.query("SELECT gpu_uuid, hour_start, busy FROM gpu_hours"))
    assert busy == pytest.approx(small_fleet.busy, abs=1e-9)
    once = snapshot(store, with_run_ids=False)

    # The same five runs again, then the whole day: nothing changes.
    for w in [*windows, Window(D0, D0 + HOURS * h)]:
        assert collect(store, s, "prometheus", w)[0].status == "succeeded"
    again = snapshot(store, with_run_ids=False)
    for table in ("gpu_hours", "token_hours", "token_daily", "quarantine"):
        assert again[table] == once[table], table
    # gpu_daily keeps float sums of busy: equal up to the order of addition.
    assert [r[:-6] for r in again["gpu_daily"]] == [r[:-6] for r in once["gpu_daily"]]
    assert len(ledger(store, "prometheus")) == 2 * RUNS + 1


# --- AWS Cost Explorer --------------------------------------------------------------------------

def ce_windows() -> list[Window]:
    d = [D1 + timedelta(days=i) for i in range(4)]  # four days of a closed month
    return [Window.from_dates(d[0], d[2]), Window.from_dates(d[1], d[3]), Window.from_dates(d[0], d[3]),
            Window.from_dates(d[2], d[3]), Window.from_dates(d[1], d[2])]


@pytest.mark.clock
def test_cost_explorer_overlapping_windows_five_times(aws_env: None, settings: Settings, store: Store,
                                                      tmp_path: Path) -> None:
    windows = ce_windows()
    with CeServer(FakeBill(SCENARIO, page_size=3)) as ce:
        s = aws_settings(settings, endpoint_url=ce.url, ce_cache=False)
        results = []
        for w in windows:
            [r] = collect(store, s, "aws_ce", w)
            assert r.status == "succeeded", r.error
            results.append(r)
            assert duplicates(store, "cost_lines", "charge_date, project, team, environment, model_id, "
                                                   "service_name, sub_account_id") == []
        assert stored(store) == expected(SCENARIO)
        check_ledger(store, "aws_ce", windows, results)
        total = sum(i.billed for i in SCENARIO)
        assert store.query("SELECT sum(billed_cost) FROM cost_lines")[0][0] == total
        assert store.query("SELECT sum(billed_cost) FROM cost_daily")[0][0] == total
        once = snapshot(store, with_run_ids=False)
        assert collect(store, s, "aws_ce", windows[2])[0].status == "succeeded"  # the widest again
        assert snapshot(store, with_run_ids=False) == once


@pytest.mark.clock
def test_cost_explorer_estimated_then_final_replaces(aws_env: None, settings: Settings, store: Store) -> None:
    window = Window.from_dates(D1, D1 + timedelta(days=3))
    early = [i for i in SCENARIO if i.day != D3] + [item(D3, LLAMA, EC2, A1, "10.00")]
    with CeServer(FakeBill(early, estimated=frozenset({D3}))) as ce:
        [first] = collect(store, aws_settings(settings, endpoint_url=ce.url), "aws_ce", window)
    assert first.status == "succeeded"
    assert store.query("SELECT bool_and(estimated), sum(billed_cost) FROM cost_lines WHERE charge_date = ?",
                       [D3]) == [(True, Decimal("10.00"))]
    with CeServer(FakeBill(SCENARIO)) as ce:  # AWS has finalised the day, with other amounts
        [final] = collect(store, aws_settings(settings, endpoint_url=ce.url), "aws_ce", window)
    assert final.status == "succeeded"
    assert stored(store) == expected(SCENARIO)
    assert store.query("SELECT bool_or(estimated) FROM cost_lines")[0][0] is False
    assert store.query("SELECT sum(billed_cost) FROM cost_daily WHERE charge_date = ?", [D3])[0][0] == \
        sum(i.billed for i in SCENARIO if i.day == D3)
    check_ledger(store, "aws_ce", [window, window], [first, final])


# --- AWS Data Exports and EC2 inventory ---------------------------------------------------------

def test_data_exports_overlapping_windows_five_times(moto: str, aws_env: None, settings: Settings,
                                                     store: Store) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto)
    s3.create_bucket(Bucket=BUCKET)
    files = [f"{DATA}/BILLING_PERIOD=2026-10/cur2-0000{n}.snappy.parquet" for n in (1, 2)]
    s3.put_object(Bucket=BUCKET, Key=files[0], Body=parquet(NEW_ROWS[:3]))
    s3.put_object(Bucket=BUCKET, Key=files[1], Body=parquet(NEW_ROWS[3:]))
    s3.put_object(Bucket=BUCKET, Key=f"{META}/BILLING_PERIOD=2026-10/cur2-Manifest.json", Body=manifest(files))
    s = settings.model_copy(update={"aws": AwsSettings(endpoint_url=moto, export_bucket=BUCKET,
                                                       export_prefix=PREFIX, max_attempts=2)})
    windows = [Window.from_dates(date(2026, 10, 5), date(2026, 10, 20)),
               Window.from_dates(date(2026, 10, 15), date(2026, 11, 10)),
               Window.from_dates(date(2026, 9, 20), date(2026, 10, 10)),
               Window.from_dates(date(2026, 10, 1), date(2026, 11, 1)),
               Window.from_dates(date(2026, 10, 31), date(2026, 11, 2))]
    billed = sum(Decimal(str(r["line_item_unblended_cost"])) for r in NEW_ROWS)
    for w in windows:
        results = collect(store, s, "aws_exports", w)
        assert all(r.status == "succeeded" for r in results), results
        assert store.query("SELECT count(*), sum(billed_cost), sum(effective_cost) FROM cost_lines")[0] == \
            (len(NEW_ROWS), billed, sum(NEW_EFFECTIVE))
        assert store.query("SELECT sum(billed_cost) FROM cost_daily")[0][0] == billed
    runs = store.query("SELECT scope, status FROM source_runs WHERE source = 'aws_exports' ORDER BY run_id")
    # One run per billing period each window touches (a period without a manifest succeeds empty).
    assert [scope.rsplit("#", 1)[1] for scope, _ in runs] == [
        "2026-10", "2026-10", "2026-11", "2026-09", "2026-10", "2026-10", "2026-10", "2026-11"]
    assert {status for _, status in runs} == {"succeeded"}


def test_inventory_overlapping_windows_five_times(moto: str, aws_env: None, settings: Settings,
                                                  store: Store) -> None:
    east = ec2(moto, "us-east-1")
    gpus = {launch(east, "g5.xlarge", TAGS)["InstanceId"], launch(east, "p4d.24xlarge")["InstanceId"]}
    launch(east, "m5.large")  # not an accelerator host
    s = settings.model_copy(update={"aws": AwsSettings(endpoint_url=moto, regions=["us-east-1"])})
    windows = ce_windows()
    results = []
    for w in windows:
        [r] = collect(store, s, "aws_inventory", w)
        assert (r.status, r.rows) == ("succeeded", len(gpus)), r.error
        results.append(r)
        # The window holds one snapshot: each GPU host once.
        inside = store.query("SELECT resource_id FROM inventory WHERE observed_at >= ? AND observed_at < ?",
                             [w.start, w.end])
        assert sorted(i for (i,) in inside) == sorted(gpus)
        assert duplicates(store, "inventory", "resource_id, observed_at") == []
    check_ledger(store, "aws_inventory", windows, results)
    # Replacement semantics, modelled independently: a past window's snapshot is taken at its last
    # instant and survives unless a later run's window covers that instant.
    taken = [w.end - timedelta(microseconds=1) for w in windows]
    survivors = {t for i, t in enumerate(taken) if not any(w.start <= t < w.end for w in windows[i + 1:])}
    got = store.query("SELECT observed_at, count(*) FROM inventory GROUP BY 1")
    assert dict(got) == dict.fromkeys(survivors, len(gpus))


# --- Azure --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("azure-tls"))


@pytest.fixture
def fake(cert: tuple[Path, Path]) -> Iterator[AzureFake]:
    with AzureFake(*cert, page_size=4) as f:
        yield f


def azure(store: Store, settings: Settings, fake: AzureFake, cert: tuple[Path, Path], window: Window,
          today: date, scopes: list[str]) -> list[RunResult]:
    s = settings.model_copy(update={"azure": AzureSettings(scopes=scopes, base_url=fake.base_url,
                                                           verify_tls=str(cert[0]), min_seconds_between_queries=0)})
    clock = Clock()
    tasks = azure_cost.tasks(s, window, credential=FakeCredential(), sleep=clock.sleep, clock=clock.time,
                             now=datetime.combine(today, time()))
    return run_tasks(store, "azure", tasks)


def test_azure_overlapping_windows_five_times(store: Store, settings: Settings, fake: AzureFake,
                                              cert: tuple[Path, Path]) -> None:
    scenario(fake)
    d = [datetime.combine(x, datetime.min.time()) for x in DAYS] + [datetime(2026, 11, 3)]
    windows = [Window(d[0], d[2]), Window(d[1], d[3]), Window(d[2], d[4]), Window(d[0], d[4]),
               Window(d[1] + timedelta(hours=7), d[3] + timedelta(hours=1))]  # widened to whole days
    today = date(2026, 11, 23)
    for w in windows:
        results = azure(store, settings, fake, cert, w, today, [SCOPE_A, SCOPE_B])
        assert [r.status for r in results] == ["succeeded"] * 2, [r.error for r in results]
        assert duplicates(store, "cost_lines", "scope, resource_id, charge_date, service_name, billing_currency, "
                                               "project, team, environment, model_id") == []
    for scope in (SCOPE_A, SCOPE_B):
        sid = "azure:" + scope.strip("/").lower()
        got = store.query("SELECT sum(billed_cost), sum(effective_cost) FROM cost_lines WHERE scope = ?", [sid])[0]
        assert got == (fake.total(scope, "ActualCost", places=12), fake.total(scope, "AmortizedCost", places=12))
    assert fake.violations == []
    once = snapshot(store, with_run_ids=False)
    azure(store, settings, fake, cert, Window(d[0], d[4]), today, [SCOPE_A, SCOPE_B])
    assert snapshot(store, with_run_ids=False) == once
    assert len(ledger(store, "azure")) == 2 * (RUNS + 1)


def test_azure_estimated_then_final_replaces(store: Store, settings: Settings, fake: AzureFake,
                                             cert: tuple[Path, Path]) -> None:
    window = Window(datetime(2026, 11, 1), datetime(2026, 11, 3))
    full = {"Project": "Chatbot", "Team": "CoreAI", "Environment": "prod", "ModelID": "llama-70b"}
    for cost_type in ("ActualCost", "AmortizedCost"):
        fake.add(SCOPE_A, cost_type, [Atom(VM1, date(2026, 11, 1), 100.25, tags=full),
                                      Atom(VM1, date(2026, 11, 2), 50.5, tags=full)])
    [estimated] = azure(store, settings, fake, cert, window, date(2026, 11, 20), [SCOPE_A])
    assert estimated.status == "succeeded"
    assert store.query("SELECT bool_and(estimated), sum(billed_cost) FROM cost_lines")[0] == (True, Decimal("150.75"))
    # The invoice closes: Azure's final numbers differ (a late usage record on the 2nd).
    for cost_type in ("ActualCost", "AmortizedCost"):
        fake.add(SCOPE_A, cost_type, [Atom(VM1, date(2026, 11, 2), 1.125, tags=full)])
    [final] = azure(store, settings, fake, cert, window, date(2026, 12, 5), [SCOPE_A])
    assert final.status == "succeeded"
    assert store.query("SELECT bool_or(estimated), sum(billed_cost), count(*) FROM cost_lines")[0] == \
        (False, Decimal("151.875"), 2)
    assert store.query("SELECT sum(billed_cost) FROM cost_daily")[0][0] == Decimal("151.875")
    assert [s for s, *_ in ledger(store, "azure")] == ["succeeded", "succeeded"]


# --- FOCUS files --------------------------------------------------------------------------------

def test_focus_file_ingested_five_times_then_corrected(store: Store, rules: TagRules, tmp_path: Path) -> None:
    path = tmp_path / "bill-2026-11.csv"
    text = example_a.focus_csv()
    bad = "1,1,USD,yesterday,2026-11-03T00:00:00Z,Usage,EC2,acct-1,AWS,i-x,NULL\r\n"  # csv.writer ends lines so
    path.write_text(text + bad)
    results = []
    for _ in range(RUNS):
        [r] = ingest_focus(store, rules, [path])
        assert (r.status, r.rows, r.quarantined) == ("succeeded", 5, 1)
        results.append(r)
        assert store.query("SELECT count(*), sum(billed_cost) FROM cost_lines")[0] == (5, Decimal("534.00"))
        assert store.query("SELECT sum(billed_cost) FROM cost_daily")[0][0] == Decimal("534.00")
        # Quarantine is a per-run record of what that run could not read: one row per run, never merged.
        assert store.query("SELECT count(*) FROM quarantine WHERE run_id = ?", [r.run_id]) == [(1,)]
    check_ledger(store, "focus", [None] * RUNS, results)
    assert {r[0] for r in store.query("SELECT DISTINCT run_id FROM cost_lines")} == {results[-1].run_id}

    # The provider re-issues the file: a corrected amount, one line removed.
    corrected = [list(b) for b in example_a.BILL if b[2] != "bucket-logs"]
    corrected[0][4] = "250.50"
    path.write_text(example_a.focus_csv(bill=corrected))
    [fixed] = ingest_focus(store, rules, [path])
    assert (fixed.status, fixed.rows, fixed.quarantined) == ("succeeded", 4, 0)
    want = sum((Decimal(str(b[4])) for b in corrected), Decimal(0))
    assert want == Decimal("514.50")
    assert store.query("SELECT count(*), sum(billed_cost) FROM cost_lines")[0] == (4, want)
    assert store.query("SELECT sum(billed_cost), sum(lines) FROM cost_daily")[0] == (want, 4)
    assert store.query("SELECT count(*) FROM cost_lines WHERE resource_id = 'bucket-logs'") == [(0,)]
    assert json.loads(store.query("SELECT details FROM source_runs WHERE run_id = ?",
                                  [fixed.run_id])[0][0])["rows_in_file"] == 4
