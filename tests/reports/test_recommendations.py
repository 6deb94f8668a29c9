"""Savings recommendations (issue 13) on constructed fleets and on worked example A.

Each fleet goes through the real paths: cost lines as a FOCUS file through ingest, telemetry as a
collector batch through `run_task`. Expected savings are computed here from the fleet's own numbers
and the documented rule: saving per observed day x 30.4375 days per month, half-up to the cent.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from finops.batch import Batch, Task
from finops.collect import ingest_focus, run_task
from finops.reports import get
from finops.reports.export import render
from finops.reports.params import ReportParams, build_params
from finops.reports.recommendations import recommendations
from finops.resources import resource_key
from finops.settings import Settings
from finops.settings.recommendations import RecommendationSettings
from finops.store import Store, open_store
from finops.tags import TagRules
from finops.timeutil import Window
from tests.support import example_a

D = Decimal
D0 = datetime(2026, 11, 2)
DAYS = 7
MONTH = D("30.4375")
EC2 = "Amazon Elastic Compute Cloud"


def per_month(amount: Decimal, days: int) -> Decimal:
    return (amount * MONTH / days).quantize(D("0.01"), ROUND_HALF_UP)


@dataclass
class Res:
    """One billed resource: its daily cost and pricing, its GPUs' busy per hour, its tokens per day."""

    rid: str
    tags: dict[str, str] | None
    cost: list[str]  # per day
    pricing: str | None = "Standard"
    commitment: str | None = None
    service: str = EC2
    gpus: list[Callable[[int], float]] = field(default_factory=list)  # hour of window -> busy
    tokens_per_day: int = 0


def tags(project: str, team: str, env: str, model: str) -> dict[str, str]:
    return {"Project": project, "Team": team, "Environment": env, "ModelID": model}


def load(store: Store, rules: TagRules, tmp: Path, fleet: list[Res]) -> None:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["BilledCost", "EffectiveCost", "BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd",
                "ChargeCategory", "PricingCategory", "CommitmentDiscountId", "ServiceName", "BillingAccountId",
                "ProviderName", "ResourceId", "Tags"])
    for r in fleet:
        for day, cost in enumerate(r.cost):
            start = D0 + timedelta(days=day)
            w.writerow([cost, cost, "USD", f"{start:%Y-%m-%dT%H:%M:%SZ}", f"{start + timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}",
                        "Usage", r.pricing or "", r.commitment or "", r.service, "acct-1", "AWS", r.rid,
                        json.dumps(r.tags) if r.tags else ""])
    path = tmp / "fleet.csv"
    path.write_text(out.getvalue())
    [result] = ingest_focus(store, rules, [path])
    assert result.status == "succeeded", result.error
    gpu_rows, tok_rows = [], []
    for r in fleet:
        key = resource_key(r.rid)
        model = (r.tags or {}).get("ModelID")
        for h in range(24 * DAYS):
            hour = D0 + timedelta(hours=h)
            for i, busy in enumerate(r.gpus):
                gpu_rows.append({"hour_start": hour, "host": f"host-{r.rid}", "resource_id": r.rid, "resource_key": key,
                                 "gpu_uuid": f"GPU-{r.rid}-{i}", "gpu_index": str(i), "gpu_model": "NVIDIA H100",
                                 "busy": busy(h), "samples": 60})
            if r.tokens_per_day:
                tok_rows.append({"hour_start": hour, "instance": f"host-{r.rid}:8000", "resource_id": r.rid,
                                 "resource_key": key, "model_name": model, "prompt_tokens": 2 * r.tokens_per_day // 24,
                                 "generation_tokens": r.tokens_per_day // 24, "requests": 10})
    facts = {name: pa.Table.from_pylist(rows) for name, rows in (("gpu_hours", gpu_rows), ("token_hours", tok_rows))
             if rows}
    task = Task("fleet", Window(D0, D0 + timedelta(days=DAYS)), lambda: Batch(facts=facts))
    t = run_task(store, "prometheus", task)
    assert t.status == "succeeded", t.error


def const(busy: float) -> Callable[[int], float]:
    return lambda h: busy


def peak_at(hour: int, peak: float, base: float) -> Callable[[int], float]:
    return lambda h: peak if h == hour else base


# One waste of each kind, the numbers chosen so each kind's saving is easy to recompute by hand.
COMMIT_COST = ["30", "32", "30", "35", "31", "30", "33"]
CONSOLIDATION = [("i-c1", "10"), ("i-c2", "11"), ("i-c3", "12"), ("i-c4", "13")]
OUTLIERS = [("i-m1", "a", "x", "10"), ("i-m2", "b", "y", "10"), ("i-m3", "c", "z", "40")]
GEN_PER_DAY = 1_200_000


def wasteful_fleet() -> list[Res]:
    fleet = [
        # Idle all week, billed on demand (a commitment candidate too, but shutting it down wins).
        Res("i-idle", tags("search", "platform", "prod", "embed-small"), ["24"] * DAYS, gpus=[const(0.0)]),
        # Spot: a dev GPU billed on demand; and a dev bucket, which is no compute (no spot).
        Res("i-dev", tags("chatbot", "coreai", "dev", "llama-8b"), ["20"] * DAYS, gpus=[const(0.5)]),
        Res("bucket-dev", tags("chatbot", "coreai", "dev", "llama-8b"), ["5"] * DAYS,
            service="Amazon Simple Storage Service"),
        # Commitment: steady production GPU spend on demand.
        Res("i-prod", tags("search", "platform", "prod", "qwen-32b"), COMMIT_COST, gpus=[const(0.7)]),
    ]
    # Consolidation: one model on four committed GPUs, 0.15 busy each, 0.3 each in one peak hour.
    fleet += [Res(rid, tags("chatbot", "coreai", "prod", "llama-70b"), [cost] * DAYS, "Committed", "sp-1",
                  gpus=[peak_at(30, 0.3, 0.15)], tokens_per_day=2_400_000) for rid, cost in CONSOLIDATION]
    # Unit cost outlier: three groups serve mistral-7b with the same tokens; one pays four times more.
    fleet += [Res(rid, tags(project, team, "prod", "mistral-7b"), [cost] * DAYS, "Committed", "ri-2",
                  gpus=[const(0.6)], tokens_per_day=GEN_PER_DAY) for rid, project, team, cost in OUTLIERS]
    return fleet


def efficient_fleet() -> list[Res]:
    """Busy, committed, production: nothing to recommend."""
    fleet = [Res(rid, tags("chatbot", "coreai", "prod", "llama-70b"), ["50"] * DAYS, "Committed", "sp-1",
                 gpus=[const(0.7)], tokens_per_day=2_400_000) for rid in ("i-e1", "i-e2")]
    fleet += [Res(rid, tags(project, "x", "prod", "mistral-7b"), ["10"] * DAYS, "Committed", "ri-2",
                  gpus=[const(0.8)], tokens_per_day=GEN_PER_DAY) for rid, project in
              (("i-e3", "a"), ("i-e4", "b"), ("i-e5", "c"))]
    return fleet


def window(filters: dict[str, str] | None = None) -> ReportParams:
    return build_params(start="2026-11-02", end="2026-11-09", filters=filters)


@pytest.fixture
def wasteful(store: Store, rules: TagRules, tmp_path: Path) -> Store:
    load(store, rules, tmp_path, wasteful_fleet())
    return store


def test_each_kind_is_found_with_its_exact_saving(wasteful: Store, settings: Settings) -> None:
    report = recommendations(wasteful, settings, window())
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for r in report.rows:
        by_kind.setdefault(r["kind"], []).append(r)
    assert sorted(by_kind) == ["commitment", "consolidation", "idle_shutdown", "spot", "unit_cost_outlier"]
    assert all(len(v) == 1 for v in by_kind.values()), by_kind

    idle = by_kind["idle_shutdown"][0]
    assert idle["resource"] == "i-idle" and idle["confidence"] == "high"
    assert idle["monthly_saving"] == per_month(D(24) * DAYS, DAYS) == D("730.50")
    assert idle["evidence"]["idle_gpu_hours"] == 24 * DAYS and idle["evidence"]["whole_resource_idle"] is True

    # Peak combined busy 4 x 0.3 = 1.2 GPUs; at most 0.8 busy each -> 2 GPUs; the two cheapest go.
    needed = math.ceil(D("1.2") / (1 - D("0.2")))
    freed = sorted(CONSOLIDATION, key=lambda x: D(x[1]))[: len(CONSOLIDATION) - needed]
    cons = by_kind["consolidation"][0]
    assert cons["resource"] == ", ".join(rid for rid, _ in freed) == "i-c1, i-c2"
    assert cons["monthly_saving"] == per_month(sum((D(c) for _, c in freed), D(0)) * DAYS, DAYS) == D("639.19")
    assert cons["evidence"]["gpus_needed"] == needed == 2 and cons["evidence"]["peak_combined_busy"] == D("1.2")
    assert (cons["project"], cons["model_id"]) == ("chatbot", "llama-70b")

    spot = by_kind["spot"][0]
    assert (spot["resource"], spot["environment"], spot["confidence"]) == ("i-dev", "dev", "medium")
    assert spot["monthly_saving"] == per_month(D(20) * D("0.70") * DAYS, DAYS) == D("426.13")

    commit = by_kind["commitment"][0]
    assert commit["resource"] == "i-prod"
    assert commit["monthly_saving"] == (min(D(c) for c in COMMIT_COST) * D("0.30") * MONTH).quantize(D("0.01"))
    assert commit["evidence"]["daily_on_demand_min"] == D(30) and commit["evidence"]["days_observed"] == DAYS

    # Cost per 1k generated tokens: 10/1200, 10/1200, 40/1200 a day; median 10/1200; excess 30 a day.
    gen = D(GEN_PER_DAY // 24 * 24) * DAYS
    per_1k = sorted(D(c) * DAYS * 1000 / gen for *_, c in OUTLIERS)
    median = per_1k[1]
    excess = D(40) * DAYS - median * gen / 1000
    out = by_kind["unit_cost_outlier"][0]
    assert (out["project"], out["team"], out["model_id"], out["confidence"]) == ("c", "z", "mistral-7b", "low")
    assert out["monthly_saving"] == per_month(excess, DAYS) == D("913.13")
    assert out["evidence"]["groups_compared"] == 3

    # Ranked by monthly saving; the total is their sum; assumptions are stated on every row.
    savings = [r["monthly_saving"] for r in report.rows]
    assert savings == sorted(savings, reverse=True)
    assert report.totals["monthly_saving"] == sum(savings) == D("2982.89")
    assert "0.70" in spot["assumptions"] and "0.30" in commit["assumptions"] and "headroom 0.20" in cons["assumptions"]
    assert all("2026-11-02..2026-11-09" in r["assumptions"] for r in report.rows)


def test_settings_change_the_estimates(wasteful: Store, settings: Settings) -> None:
    rs = RecommendationSettings(spot_discount=D("0.5"), commitment_discount=D("0.4"), headroom=D("0.5"),
                                non_production_environments=("dev",), min_monthly_saving=D("500"))
    report = recommendations(wasteful, settings, window(), rs)
    by_kind = {r["kind"]: r for r in report.rows}
    # 1.2 / 0.5 -> 3 GPUs needed: only the cheapest of four goes, 10 a day, under the 500 minimum.
    assert "consolidation" not in by_kind
    assert "spot" not in by_kind  # 20 x 0.5 a day = 304.38 a month < 500
    assert "commitment" not in by_kind  # 30 x 0.4 = 365.25
    assert set(by_kind) == {"idle_shutdown", "unit_cost_outlier"}
    report = recommendations(wasteful, settings, window(), rs.model_copy(update={"min_monthly_saving": D(0)}))
    by_kind = {r["kind"]: r for r in report.rows}
    assert by_kind["consolidation"]["monthly_saving"] == per_month(D(10) * DAYS, DAYS)
    assert by_kind["spot"]["monthly_saving"] == per_month(D(20) * D("0.5") * DAYS, DAYS)
    assert by_kind["commitment"]["monthly_saving"] == per_month(D(30) * D("0.4"), 1)


def test_team_filter_keeps_its_own_recommendations(wasteful: Store, settings: Settings) -> None:
    report = recommendations(wasteful, settings, window(filters={"team": "platform"}))
    assert {(r["kind"], r["resource"]) for r in report.rows} == {("idle_shutdown", "i-idle"), ("commitment", "i-prod")}


def test_no_recommendation_for_an_efficient_fleet(store: Store, rules: TagRules, tmp_path: Path,
                                                   settings: Settings) -> None:
    load(store, rules, tmp_path, efficient_fleet())
    report = recommendations(store, settings, window())
    assert report.rows == [] and report.totals["monthly_saving"] == 0
    # The same fleet billed on demand is a commitment candidate: the check above can fail.
    on_demand = [Res(r.rid, r.tags, r.cost, gpus=r.gpus, tokens_per_day=r.tokens_per_day) for r in efficient_fleet()]
    other = open_store(tmp_path / "other.duckdb")
    try:
        load(other, rules, tmp_path, on_demand)
        kinds = {r["kind"] for r in recommendations(other, settings, window()).rows}
        assert kinds == {"commitment"}
    finally:
        other.close()


def test_unknown_pricing_category_is_a_low_confidence_spot(store: Store, rules: TagRules, tmp_path: Path,
                                                             settings: Settings) -> None:
    load(store, rules, tmp_path, [Res("i-test", tags("p", "t", "test", "m"), ["8"] * DAYS, pricing=None,
                                      gpus=[const(0.5)])])
    [row] = recommendations(store, settings, window()).rows
    assert (row["kind"], row["confidence"]) == ("spot", "low")
    assert row["monthly_saving"] == per_month(D(8) * D("0.7") * DAYS, DAYS)
    assert "taken as on-demand" in row["assumptions"]


# --- worked example A -----------------------------------------------------------------------------

@pytest.fixture
def example(store: Store, rules: TagRules, tmp_path: Path) -> Store:
    example_a.load(store, rules, tmp_path)
    return store


def test_example_a_idle_shutdowns(example: Store, settings: Settings) -> None:
    report = get("recommendations")(example, settings, build_params(start="2026-11-02", end="2026-11-03"))
    by_res = {r["resource"]: r for r in report.rows}
    assert set(by_res) == {"i-gpu4", "i-gpu2"}
    gpu4, gpu2 = by_res["i-gpu4"], by_res["i-gpu2"]
    assert gpu4["kind"] == gpu2["kind"] == "idle_shutdown"
    assert gpu4["monthly_saving"] == D("48.00") * MONTH == D("1461.00")
    assert gpu4["evidence"]["whole_resource_idle"] is True and gpu4["confidence"] == "high"
    # Partial: i-gpu2 idles 12 night hours a day at 120 / 24 = 5.00 an hour.
    assert gpu2["monthly_saving"] == 12 * (D(120) / 24) * MONTH == D("1826.25")
    assert gpu2["evidence"]["whole_resource_idle"] is False and gpu2["evidence"]["idle_gpu_hours"] == 12
    assert gpu2["confidence"] == "medium" and gpu2["action"].startswith("Schedule i-gpu2 off")
    assert [r["resource"] for r in report.rows] == ["i-gpu2", "i-gpu4"]


def test_weekly_report_has_a_savings_table(example: Store, settings: Settings) -> None:
    weekly = get("weekly")(example, settings, build_params(week="2026-W45"))
    savings = weekly.tables["savings"]
    assert [(r["kind"], r["resource"], r["monthly_saving"]) for r in savings] == [
        ("idle_shutdown", "i-gpu2", D("1826.25")), ("idle_shutdown", "i-gpu4", D("1461.00"))]
    assert "evidence" not in savings[0] and savings[0]["assumptions"]
    wb = load_workbook(io.BytesIO(render(weekly, "xlsx")[0]))
    sheet = wb["savings"]
    header = [c.value for c in sheet[1]]
    col = header.index("monthly_saving")
    cells = [row[col] for row in sheet.iter_rows(min_row=2)]
    assert [c.value for c in cells] == [1826.25, 1461.0] and "$" in cells[0].number_format


def test_cli_report_recommendations(rules: TagRules, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from finops.cli import app

    db = tmp_path / "cli.duckdb"
    s = open_store(db)
    try:
        example_a.load(s, rules, tmp_path)
    finally:
        s.close()
    monkeypatch.setenv("FINOPS_DB", str(db))
    result = CliRunner().invoke(app, ["report", "recommendations", "--start", "2026-11-02", "--end", "2026-11-03",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout, parse_float=D)
    assert [(r["resource"], r["monthly_saving"]) for r in data["rows"]] == [("i-gpu2", D("1826.25")),
                                                                           ("i-gpu4", D("1461.00"))]
    assert data["totals"]["monthly_saving"] == D("3287.25")
    assert data["params"]["recommendations"]["spot_discount"] == "0.70"
    # The table view and CSV render too.
    assert CliRunner().invoke(app, ["report", "recommendations", "--start", "2026-11-02", "--end", "2026-11-03"]).exit_code == 0
    s = open_store(db)
    try:
        report = get("recommendations")(s, Settings(db=db), build_params(start="2026-11-02", end="2026-11-03"))
    finally:
        s.close()
    csv_text = render(report, "csv")[0].decode()
    assert csv_text.splitlines()[0].startswith("kind,resource,project,team,environment,model_id,monthly_saving")


def test_batch_workloads_are_spot_candidates_not_commitments(store: Store, rules: TagRules, tmp_path: Path,
                                                            settings: Settings) -> None:
    load(store, rules, tmp_path, [Res("i-eval", tags("nightly-eval", "t", "prod", "m"), ["16"] * DAYS,
                                      gpus=[const(0.5)])])
    [row] = recommendations(store, settings, window()).rows
    assert (row["kind"], row["monthly_saving"]) == ("commitment", per_month(D(16) * D("0.30"), 1))
    rs = RecommendationSettings(batch_workloads={"project": ("Nightly-Eval",)})
    [row] = recommendations(store, settings, window(), rs).rows
    assert (row["kind"], row["resource"]) == ("spot", "i-eval")
    assert row["monthly_saving"] == per_month(D(16) * D("0.70") * DAYS, DAYS)
