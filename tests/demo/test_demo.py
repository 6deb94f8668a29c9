"""`finops demo`: the control total equals the generated bill, the same seed gives the same database,
GPU and token facts arrive exactly, a non-demo database is never touched, and the demo's service
answers with the weekly report as XLSX."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from typer.testing import CliRunner

from finops.cli import app
from finops.collect import ingest_focus
from finops.demo.fleet import INJECTED, RESOURCES, Fleet
from finops.demo.run import DemoConfig, DemoFailed, run_demo
from finops.settings import Settings
from finops.store import open_store
from finops.tags import TagRules
from finops.timeutil import iso_week
from tests.conftest import FOCUS_SAMPLE
from tests.demo.conftest import DAYS, SEED, Demo, Served, monday_before

FACT_TABLES = ("cost_lines", "gpu_hours", "token_hours")
# Columns that name a run or a file path rather than data.
NOT_DATA = {"run_id", "scope", "line_id"}


def facts(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every fact row of the database, without run ids and file paths, sorted."""
    store = open_store(db, read_only=True)
    try:
        out = {}
        for table in FACT_TABLES:
            cols = [r[0] for r in store.query(f"DESCRIBE {table}") if r[0] not in NOT_DATA]
            out[table] = sorted(store.query(f"SELECT {', '.join(cols)} FROM {table}"), key=repr)
        return out
    finally:
        store.close()


def billed_in_files(folder: Path) -> Decimal:
    """The sum of BilledCost over the FOCUS files the demo wrote, read with the csv module."""
    total = Decimal(0)
    for path in sorted(folder.glob("demo-focus-*.csv")):
        total += sum((Decimal(row["BilledCost"]) for row in csv.DictReader(io.StringIO(path.read_text()))), Decimal(0))
    return total


def test_control_total_equals_the_generated_bill(demo: Demo) -> None:
    fleet = Fleet(end=demo.end, days=DAYS, seed=SEED)
    bill = fleet.total_cost()
    assert bill == billed_in_files(demo.db.parent / "demo-files") > 0
    assert demo.summary["bill_total"] == bill
    assert demo.summary["control_total"] == bill  # exact; hence to the cent
    assert demo.summary["control_total"].quantize(Decimal("0.01")) == bill.quantize(Decimal("0.01"))
    assert demo.summary["control_total_matches_bill"] is True
    shown = " ".join(demo.output.split())  # rich wraps at the terminal width
    assert f"${bill:,.2f}" in shown and "equal to the cent" in shown


def test_gpu_and_token_facts_came_through_exactly(demo: Demo) -> None:
    fleet = Fleet(end=demo.end, days=DAYS, seed=SEED)
    gpu_hours = sum(r.gpus for r in RESOURCES) * DAYS * 24
    generated = sum(t.generation for tokens in fleet.server_tokens.values() for t in tokens)
    store = open_store(demo.snapshot, read_only=True)  # the demo's service may hold demo.db already
    try:
        [(stored_hours, busy_sum)] = store.query("SELECT count(*), sum(busy) FROM gpu_hours")
        [(stored_generated,)] = store.query("SELECT sum(generation_tokens) FROM token_hours")
        runs = store.query("SELECT status, details FROM source_runs WHERE source = 'prometheus' ORDER BY run_id")
    finally:
        store.close()
    assert stored_hours == gpu_hours > 0
    assert stored_generated == generated > 0
    assert abs(busy_sum - sum(sum(v) for v in fleet.gpu_busy.values())) < 1e-6
    assert demo.summary["gpu_hours"] == gpu_hours and demo.summary["generation_tokens"] == generated
    assert runs and all(status == "succeeded" for status, _ in runs)
    if shutil.which("prometheus") and shutil.which("promtool"):
        # Older days from recorded responses, the last week from a real Prometheus.
        shown = " ".join(demo.output.split())
        assert len(runs) == 2 and "through a real Prometheus" in shown and "recorded query responses" in shown


def test_the_mig_gpu_bills_each_instance_its_slices(demo: Demo) -> None:
    """vm-mig-01's A100 is cut into a 4g and a 3g instance; the 3g runs nothing, so each of its hours is
    idle and costs 3/7 of the VM's hour; the 4g serves qwen and names both instances' model."""
    fleet = Fleet(end=demo.end, days=DAYS, seed=SEED)
    vm = next(r for r in RESOURCES if r.mig)
    vm_cost = sum((fleet.day_cost(vm, fleet.start + timedelta(days=d)) for d in range(DAYS)), Decimal(0))
    lines = {m["mig_profile"]: m for m in demo.summary["mig"]}
    assert set(lines) == {"4g.40gb", "3g.40gb"} and {m["host"] for m in lines.values()} == {vm.host}
    idle, serving = lines["3g.40gb"], lines["4g.40gb"]
    assert idle["hours_observed"] == idle["idle_hours"] == DAYS * 24 and idle["avg_busy"] == 0
    assert idle["idle_cost"].quantize(Decimal("0.01")) == (vm_cost * 3 / 7).quantize(Decimal("0.01"))
    assert serving["idle_hours"] == 0 and serving["avg_busy"] > 0.3
    assert idle["model_id"] == serving["model_id"] == "qwen-7b"
    shown = " ".join(demo.output.split())
    assert "MIG instances" in shown and "3g.40gb" in shown and f"${idle['idle_cost']:,.2f}" in shown


def test_same_seed_same_database_whichever_metrics_path(demo: Demo, tmp_path: Path) -> None:
    """A second run with the same seed, over an older copy of the demo database and without Prometheus
    (every metric from recorded responses), gives the same facts and the same summary."""
    db = tmp_path / "again.duckdb"
    shutil.copy(demo.snapshot, db)  # a previous demo database there: replaced, never added to
    result = run_demo(DemoConfig(db=db, seed=SEED, days=DAYS, end=demo.end, use_prometheus=False),
                      Settings(db=db))
    assert facts(db) == facts(demo.snapshot)
    assert [p.path for p in result.metrics] == ["recorded"]
    again = result.summary
    assert (again.control_total, again.bill_total, again.gpu_hours, again.generation_tokens, again.idle_gpu_cost,
            again.untagged_share) == (demo.summary["control_total"], demo.summary["bill_total"],
                                      demo.summary["gpu_hours"], demo.summary["generation_tokens"],
                                      demo.summary["idle_gpu_cost"], demo.summary["untagged_share"])


def test_a_database_the_demo_did_not_create_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "real.duckdb"
    settings = Settings(db=db)
    store = open_store(db, settings.duckdb)
    try:
        [run] = ingest_focus(store, TagRules.from_settings(settings), [FOCUS_SAMPLE])
        assert run.status == "succeeded"
        before = store.query("SELECT count(*) FROM cost_lines")
    finally:
        store.close()
    result = CliRunner().invoke(app, ["demo", "--no-serve", "--db", str(db)])
    assert result.exit_code == 1
    assert "holds data the demo did not create" in " ".join(result.output.split())
    store = open_store(db, read_only=True)
    try:
        assert store.query("SELECT count(*) FROM cost_lines") == before
    finally:
        store.close()


def test_the_service_answers_and_serves_the_weekly_report_as_xlsx(demo: Demo, served: Served) -> None:
    assert httpx.get(f"{served.url}/docs", timeout=10).status_code == 200
    week = iso_week(monday_before(demo.end))
    resp = httpx.get(f"{served.url}/v1/reports/weekly", params={"week": week, "format": "xlsx"},
                     headers={"Authorization": f"Bearer {served.key}"}, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.content[:2] == b"PK"
    book = openpyxl.load_workbook(io.BytesIO(resp.content), read_only=True)
    assert {"summary", "chargeback_team", "Reconciliation"} <= set(book.sheetnames)
    weekly = json.loads(httpx.get(f"{served.url}/v1/reports/weekly", params={"week": week},
                                  headers={"Authorization": f"Bearer {served.key}"}, timeout=60).text,
                        parse_float=Decimal)
    fleet = Fleet(end=demo.end, days=DAYS, seed=SEED)
    days = [monday_before(demo.end) + timedelta(days=i) for i in range(7)]
    week_bill = sum((fleet.day_cost(r, d) for r in RESOURCES for d in days), Decimal(0))
    assert weekly["totals"]["ingested_total"] == week_bill
    assert weekly["totals"]["control_total_matches"] is True


def test_a_database_in_use_is_refused(demo: Demo, served: Served) -> None:
    with pytest.raises(DemoFailed, match="is a service using it"):
        run_demo(DemoConfig(db=demo.db, seed=SEED, days=DAYS, end=demo.end), Settings(db=demo.db))


def test_the_default_alert_rules_fire_on_the_demo(demo: Demo, tmp_path: Path) -> None:
    """The demo headlines idle GPU cost; the default rules must say so, read the evening after its data."""
    from datetime import datetime, time

    from finops.alerts.evaluate import AlertEngine
    from finops.settings.alerts import AlertSettings

    db = tmp_path / "demo.duckdb"
    shutil.copy(demo.snapshot, db)
    settings = Settings(db=db)
    store = open_store(db, settings.duckdb)
    try:
        ev = AlertEngine(store, settings, AlertSettings()).evaluate(datetime.combine(demo.end, time(21)))
    finally:
        store.close()
    fired = {f.rule for f in ev.findings}
    assert {"idle_gpu", "untagged_spend"} <= fired, fired


def test_the_demo_shows_budgets_and_finds_each_injected_anomaly(demo: Demo) -> None:
    """Every change `INJECTED` into the fleet is found on its days by the team and metric that moved,
    and nothing else is; coreai's budget, set below its pace, is flagged by its forecast."""
    teams = {"i-0rag01": "research", "vm-search-01": "platform", "i-0chat0": "coreai"}
    metrics = {"cost": {"cost", "cost_per_1k_generated_tokens"}, "tokens": {"cost_per_1k_generated_tokens"}}
    injected = {(teams[i.rid_part], back) for i in INJECTED for back in range(i.until_end + 1, i.from_end + 1)}
    allowed = {(teams[i.rid_part], m) for i in INJECTED for m in metrics[i.what]}
    found = [(a["team"], (demo.end - date.fromisoformat(a["day"])).days, a["metric"])
             for a in demo.summary["anomalies"]]
    assert {(team, back) for team, back, _ in found} == injected, found
    assert all((team, metric) in allowed for team, _, metric in found), found
    assert ("coreai", 6, "cost_per_1k_generated_tokens") in found  # the token drop, by cost per 1k
    budgets = {b["budget"]: b for b in demo.summary["budgets"]}
    assert set(budgets) == {"coreai monthly", "platform monthly", "research monthly"}
    assert budgets["coreai monthly"]["status"] in ("at_risk", "over")
    assert budgets["platform monthly"]["status"] == budgets["research monthly"]["status"] == "ok"
    for b in budgets.values():
        assert b["forecast_cost_low"] <= b["forecast_cost"] <= b["forecast_cost_high"]
    assert "Budgets this month" in demo.output and "Anomalies in the last week" in demo.output


def test_the_demo_splits_cost_prices_the_cache_and_compares_with_apis(demo: Demo) -> None:
    """V1 servers give prefill and decode time and cached tokens; chat02's older vLLM and the
    gateway-metered shared server do not, so llama-70b is split both ways and llama-8b by weight."""
    models = {m["model_id"]: m for m in demo.summary["by_model"]}
    assert models["llama-70b"]["split_basis"] == "mixed"
    assert models["qwen-7b"]["split_basis"] == models["mistral-7b"]["split_basis"] == "prefill_decode_time"
    assert models["llama-8b"]["split_basis"] == "token_weight" and models["llama-8b"]["cache_hit_rate"] is None
    assert models["qwen-7b"]["cache_hit_rate"] == Decimal("0.2") and models["qwen-7b"]["cache_savings"] > 0
    for m in models.values():
        if m["split_basis"] is not None:
            assert m["cost_per_1k_prompt_tokens"] < m["cost_per_1k_generation_tokens"]
    offers = {o["model_id"]: o for o in demo.summary["build_vs_buy"]}
    assert set(offers) == {"llama-70b", "llama-8b", "mistral-7b", "qwen-7b"}
    for o in offers.values():
        assert o["saving"] == o["api_cost"] - o["cost"] and o["break_even_busy"] is not None
    assert "Build vs buy" in demo.output and "EXAMPLE" in demo.output
