"""Build vs buy (docs/definitions.md 6.9): the same tokens priced at an API offering whose price
changes inside the window, the saving or premium, and the break-even GPU busy fraction."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from finops.reports import get
from finops.reports.params import build_params
from finops.settings import Settings
from finops.settings.build_vs_buy import BuildVsBuySettings, Offering
from finops.store import Store
from finops.tags import TagRules
from tests.support import example_a
from tests.support.daily import land_daily

D = Decimal
DAY1, DAY2, END = date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4)


def offering(**kw: object) -> Offering:
    base: dict[str, object] = {"model_id": "m", "provider": "acme", "model": "m-instruct", "input_per_1m": "10",
                               "output_per_1m": "30"}
    return Offering.model_validate({**base, **kw})


def test_a_price_change_inside_the_window_prices_each_day_at_its_price(
        store: Store, settings: Settings, rules: TagRules, tmp_path: Path) -> None:
    # Team t serves model m: 100.00 a day, 1,000,000 prompt and 1,000,000 generated tokens a day.
    land_daily(store, rules, tmp_path, {("t", DAY1): D("100.00"), ("t", DAY2): D("100.00")},
               {("t", DAY1): 1_000_000, ("t", DAY2): 1_000_000})
    prices = [offering(effective_to=DAY2),  # 10 in, 30 out until the 3rd; then 20 in, 40 out
              offering(input_per_1m="20", output_per_1m="40", effective_from=DAY2),
              offering(provider="other", model="m-fast", input_per_1m="5", output_per_1m="5", effective_from=DAY2)]
    s = settings.model_copy(update={"build_vs_buy": BuildVsBuySettings(offerings=prices)})
    report = get("build-vs-buy")(store, s, build_params(start=DAY1, end=END))
    rows = {(r["provider"], r["api_model"]): r for r in report.rows}
    acme = rows[("acme", "m-instruct")]
    assert acme["api_cost"] == D("40") + D("60") and acme["priced_days"] == 2
    assert acme["cost"] == D("200") and acme["saving"] == D("-100")  # self-hosting is the dearer here
    assert acme["example_prices"] is False and acme["break_even_busy"] is None  # no GPU metrics
    # An offering priced on one of the two days is not compared (its saving would mix windows).
    other = rows[("other", "m-fast")]
    assert other["priced_days"] == 1 and other["api_cost"] is None and other["saving"] is None
    assert report.totals == {"cost": D("200"), "models": 1, "offerings": 2}


def test_break_even_busy_on_example_a(store: Store, settings: Settings, rules: TagRules, tmp_path: Path) -> None:
    example_a.load(store, rules, tmp_path)
    # llama-70b: 240.00 for 12M prompt and 4M generated tokens, GPUs 0.55 busy. At 5 in and 15 out the
    # API would bill 60 + 60 = 120: self-hosting matches it only at 0.55 x 240 / 120 = 1.1 busy (never).
    s = settings.model_copy(update={"build_vs_buy": BuildVsBuySettings(offerings=[
        offering(model_id="Llama-70B", input_per_1m="5", output_per_1m="15"),  # spelled as a tag might be
        offering(model_id="llama-70b", provider="dear", input_per_1m="20", output_per_1m="60")])})
    rows = {r["provider"]: r for r in get("build-vs-buy")(store, s, build_params(start=DAY1, end=DAY2)).rows
            if r["model_id"] == "llama-70b"}
    assert rows["acme"]["api_cost"] == D("120") and rows["acme"]["saving"] == D("-120")
    assert rows["acme"]["break_even_busy"] == pytest.approx(1.1)
    # At four times the price the API bills 480: self-hosting saves 240 and breaks even at 0.275 busy.
    assert rows["dear"]["saving"] == D("240") and rows["dear"]["break_even_busy"] == pytest.approx(0.275)
    assert rows["acme"]["cost_per_1m_generation_tokens"] is not None


def test_overlapping_prices_are_refused() -> None:
    with pytest.raises(ValidationError, match="effective dates overlap"):
        BuildVsBuySettings(offerings=[offering(), offering(effective_from=DAY2)])


def test_the_shipped_table_is_marked_as_examples(store: Store, settings: Settings, rules: TagRules,
                                                  tmp_path: Path) -> None:
    example_a.load(store, rules, tmp_path)
    rows = get("build-vs-buy")(store, settings, build_params(start=DAY1, end=DAY2)).rows
    assert {r["model_id"] for r in rows} == {"llama-70b", "mistral-7b"}
    assert all(r["example_prices"] for r in rows) and all(r["api_cost"] is not None for r in rows)
