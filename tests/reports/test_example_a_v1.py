"""Worked example A with vLLM V1 signals (docs/definitions.md 9.6): unit economics split each group's
cost between prompt and generation by prefill and decode time, by the token weight where the server
gives no times, and by both for a group with servers of each kind; the prefix cache's hit rate and
savings."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from finops.reports import get
from finops.reports.params import build_params
from finops.settings import Settings
from finops.store import Store
from finops.tags import TagRules
from tests.support import example_a

D = Decimal


def test_every_new_unit_economics_field_is_exact(store: Store, settings: Settings, rules: TagRules,
                                                 tmp_path: Path) -> None:
    example_a.load(store, rules, tmp_path, v1=True)
    report = get("unit-economics")(store, settings, build_params(start=date(2026, 11, 2), end=date(2026, 11, 3)))
    rows = {(r["project"], r["model_id"]): r for r in report.rows}
    fields = ("cost", "prompt_cost", "generation_cost", "cost_per_1k_prompt_tokens", "cost_per_1k_generation_tokens",
              "cached_prompt_tokens", "cache_hit_rate", "cache_savings", "split_basis")
    expected = {
        # prefill 2,400,000 ms of 9,600,000: a quarter; 3,000,000 of 12,000,000 prompt tokens cached.
        ("chatbot", "llama-70b"): (D("240"), D("60"), D("180"), D("0.005"), D("0.045"), 3_000_000, D("0.25"),
                                   D("20"), "prefill_decode_time"),
        # no times: 6,000,000 prompt tokens against 4 x 3,000,000 generated: a third.
        ("chatbot", "mistral-7b"): (D("120"), D("40"), D("80"), D("40") * 1000 / 6_000_000,
                                    D("80") * 1000 / 3_000_000, None, None, None, "token_weight"),
        # prefill 600,000 ms of 2,400,000: a quarter; 600,000 of 2,400,000 prompt tokens cached.
        ("search", "mistral-7b"): (D("96"), D("24"), D("72"), D("0.01"), D("0.06"), 600_000, D("0.25"), D("8"),
                                   "prefill_decode_time"),
    }
    for key, values in expected.items():
        got = rows[key]
        for f, want in zip(fields, values, strict=True):
            want = want.quantize(D("1e-12")) if isinstance(want, D) and f.startswith(("cost_per", "cache_sav")) else want
            assert got[f] == want, (key, f, got[f], want)
        assert got["prompt_cost"] + got["generation_cost"] == got["cost"]  # exactly
    assert rows[("__unallocated__", "__unallocated__")]["split_basis"] is None  # no tokens: nothing to split
    t = report.totals
    assert t["prompt_cost"] == D("124") and t["generation_cost"] == D("332") and t["split_basis"] == "mixed"
    assert t["cached_prompt_tokens"] == 3_600_000 and t["cache_savings"] == D("28")
    # The cache rate counts the prompt tokens of servers that measure it: 3,600,000 of 14,400,000.
    assert t["cache_hit_rate"] == D("0.25")


def test_the_weight_is_a_setting(store: Store, settings: Settings, rules: TagRules, tmp_path: Path) -> None:
    example_a.load(store, rules, tmp_path, v1=True)
    params = build_params(start=date(2026, 11, 2), end=date(2026, 11, 3), group_by="model_id", generation_weight=2)
    [_, mistral] = [r for r in get("unit-economics")(store, settings, params).rows if r["model_id"] != "__unallocated__"][:2]
    # mistral-7b: i-gpu2's 9,000,000 tokens by weight 2 (6 / (6 + 2 x 3) = 1/2) and vm-3's 3,600,000 by
    # time (1/4), averaged by tokens: (9 x 1/2 + 3.6 x 1/4) / 12.6 = 3/7 of 216.
    assert mistral["model_id"] == "mistral-7b" and mistral["split_basis"] == "mixed"
    assert mistral["prompt_cost"] == (D(216) * 3 / 7).quantize(D("1e-12"))
