"""Worked example A (SPEC section 6): every number exact."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from finops.reports.params import build_params
from finops.reports.unit_economics import unit_economics
from finops.settings import Settings
from finops.store.db import Store
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
