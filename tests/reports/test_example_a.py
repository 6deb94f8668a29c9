"""Worked example A (docs/definitions.md section 9): every number exact."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from finops.reports.params import build_params
from finops.reports.unit_economics import unit_economics
from finops.settings import Settings
from finops.store import Store
from finops.tags import TagRules
from tests.support import example_a

D = Decimal


@pytest.fixture
def loaded(store: Store, rules: TagRules, tmp_path: Path) -> Store:
    example_a.load(store, rules, tmp_path)
    return store


def test_unit_economics_of_example_a(loaded: Store, settings: Settings) -> None:
    params = build_params(start="2026-11-02", end="2026-11-03")
    report = unit_economics(loaded, settings, params)
    by_group = {(r["project"], r["team"], r["environment"], r["model_id"]): r for r in report.rows}
    llama = by_group[("chatbot", "coreai", "prod", "llama-70b")]
    assert llama["cost"] == D("240")
    assert llama["cost_per_1k_generated_tokens"] == D("0.06")
    assert llama["cost_per_1k_tokens"] == D("0.015")
    chat_mistral = by_group[("chatbot", "coreai", "prod", "mistral-7b")]
    assert chat_mistral["cost"] == D("120")
    assert chat_mistral["cost_per_1k_generated_tokens"] == D("0.04")
    assert chat_mistral["cost_per_1k_tokens"] == (D(120) / D(9000)).quantize(D("1e-12"))
    search = by_group[("search", "platform", "prod", "mistral-7b")]
    assert search["cost"] == D("96")
    assert search["cost_per_1k_generated_tokens"] == D("0.08")
    assert search["cost_per_1k_tokens"] == (D(96) / D(3600)).quantize(D("1e-12"))
    unalloc = by_group[("__unallocated__",) * 4]
    assert unalloc["cost"] == D("78")
    assert unalloc["cost_per_1k_generated_tokens"] is None and unalloc["cost_per_1k_tokens"] is None
    assert unalloc["note"] == "no_tokens"
    # Control total: 240 + 120 + 96 + 78.
    assert sum(r["cost"] for r in report.rows) == D("534") == report.totals["cost"] == report.totals["ingested_total"]
    # The untagged GPU of i-gpu4 keeps its hours under __untagged__, with no cost of its own.
    untagged = by_group[("__untagged__",) * 4]
    assert (untagged["cost"], untagged["gpu_hours"]) == (0, 24)
    assert llama["gpu_hours"] == 48 and llama["avg_gpu_busy"] == pytest.approx(0.55)
    # i-gpu2's GPU idles 12 hours at 5.00 an hour.
    assert chat_mistral["idle_cost"] == D("60")


def test_idle_gpus_of_example_a(loaded: Store, settings: Settings) -> None:
    from finops.reports.idle_gpus import idle_gpus

    report = idle_gpus(loaded, settings, build_params(start="2026-11-02", end="2026-11-03"))
    by_gpu = {r["gpu_uuid"]: r for r in report.rows}
    gpu4, gpu2 = by_gpu["GPU-i-gpu4-0"], by_gpu["GPU-i-gpu2-0"]
    assert (gpu4["idle_hours"], gpu4["idle_cost"]) == (24, D("48"))
    assert gpu4["longest_idle_streak_hours"] == 24 and gpu4["last_busy_at"] is None
    assert gpu4["no_tokens_served"] is True
    assert (gpu2["idle_hours"], gpu2["idle_cost"], gpu2["longest_idle_streak_hours"]) == (12, D("60"), 12)
    assert gpu2["no_tokens_served"] is False
    for uuid in ("GPU-i-gpu1-0", "GPU-i-gpu1-1", "GPU-vm-3-0"):
        assert by_gpu[uuid]["idle_hours"] == 0 and by_gpu[uuid]["idle_cost"] == 0
    assert [r["gpu_uuid"] for r in report.rows[:2]] == ["GPU-i-gpu2-0", "GPU-i-gpu4-0"]
    assert report.totals["idle_cost"] == D("108")


def test_untagged_spend_of_example_a(loaded: Store, settings: Settings) -> None:
    from finops.reports.untagged import untagged_spend

    report = untagged_spend(loaded, settings, build_params(start="2026-11-02", end="2026-11-03"))
    t = report.totals
    assert t["total_cost"] == D("534")
    assert t["untagged_cost"] == D("198")
    assert t["untagged_share"] == (D(198) / D(534)).quantize(D("1e-12"))
    assert str(t["untagged_share"]).startswith("0.370786")
    assert t["recoverable_cost"] == D("120")
    by_res = {r["resource_id"]: r for r in report.rows}
    assert by_res["i-gpu2"]["missing_tags"] == "model_id"
    assert by_res["bucket-logs"]["missing_tags"] == "environment,model_id,project,team"
    assert by_res["i-gpu1"]["untagged_cost"] == 0
    assert sum(r["cost"] for r in report.rows) == D("534")


def test_untagged_spend_accelerator_scope_drops_storage(loaded: Store, settings: Settings) -> None:
    from finops.reports.untagged import untagged_spend

    report = untagged_spend(loaded, settings, build_params(start="2026-11-02", end="2026-11-03", scope="accelerator"))
    assert {r["resource_id"] for r in report.rows} == {"i-gpu1", "i-gpu2", "i-gpu4", example_a.AZURE_VM3}
    assert report.totals["untagged_cost"] == D("168")


def test_unit_economics_with_no_dimension_is_the_whole_bill_per_period(loaded: Store, settings: Settings) -> None:
    params = build_params(start="2026-11-02", end="2026-11-03", group_by="")
    report = unit_economics(loaded, settings, params)
    assert [(r["period_start"].isoformat(), r["cost"]) for r in report.rows] == [("2026-11-02", D("534"))]
