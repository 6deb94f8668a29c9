"""Budgets and forecasts on synthetic histories landed through the real ingest.

The budgets report's actual spend, burn rate and days left are exact sums of what was landed; its
forecast is held to the continuation of a known weekly pattern. The forecast report is backtested
on a noisy seasonal history (the error floor is justified where it is asserted).
"""

from __future__ import annotations

import random
import statistics
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from finops.reports import get
from finops.reports.budgets import period_of
from finops.reports.forecasting import forecast
from finops.reports.params import build_params
from finops.settings import Settings
from finops.settings.forecast import ForecastSettings
from finops.store import Store
from finops.store.budgets import BudgetSpec, save_budget
from finops.tags import TagRules
from tests.reports.test_workbook import _both, check_sheet
from tests.support.daily import Series, land_daily

NOW = datetime(2026, 11, 15, 6, 0)


def weekly_pattern(day: date, weekday: Decimal, weekend: Decimal) -> Decimal:
    return weekend if day.weekday() >= 5 else weekday


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days)]


@pytest.fixture
def landed(store: Store, rules: TagRules, tmp_path: Path) -> Series:
    cost: Series = {}
    tokens: dict[tuple[str, date], int] = {}
    for d in days(date(2026, 10, 1), date(2026, 11, 15)):
        cost[("a", d)] = weekly_pattern(d, Decimal("100.00"), Decimal("50.00"))
        tokens[("a", d)] = int(weekly_pattern(d, Decimal(100_000), Decimal(50_000)))
        cost[("b", d)] = Decimal("10.00")
    land_daily(store, rules, tmp_path, cost, tokens)
    for name, filters, period, amount, extra in (
            ("a-month", {"team": "a"}, "month", "3000", {}),
            ("a-tight", {"team": "a"}, "month", "2500", {"max_cost_per_1k_generated_tokens": Decimal("0.9")}),
            ("a-quarter", {"team": "a"}, "quarter", "20000", {}),
            ("everything", {}, "month", "4000", {}),
            ("b-month", {"team": "b"}, "month", "250", {})):
        save_budget(store, name, BudgetSpec(filters=filters, period=period, amount=Decimal(amount), **extra), NOW)
    return cost


def test_periods_are_calendar_months_and_quarters() -> None:
    assert period_of("month", date(2026, 12, 31)) == (date(2026, 12, 1), date(2027, 1, 1))
    assert period_of("quarter", date(2026, 11, 15)) == (date(2026, 10, 1), date(2027, 1, 1))
    assert period_of("quarter", date(2027, 3, 31)) == (date(2027, 1, 1), date(2027, 4, 1))


def test_actual_burn_rate_and_days_left_are_exact(store: Store, settings: Settings, landed: Series) -> None:
    as_of = NOW.date()
    report = get("budgets")(store, settings, build_params(end=as_of, today=as_of))
    rows = {r["budget"]: r for r in report.rows}
    assert list(rows) == ["a-month", "a-quarter", "a-tight", "b-month", "everything"]
    nov = days(date(2026, 11, 1), as_of)
    actual = sum(landed[("a", d)] for d in nov)
    a = rows["a-month"]
    assert (a["period_start"], a["period_end"]) == (date(2026, 11, 1), date(2026, 12, 1))
    assert a["actual_cost"] == actual and a["actual_share"] == (actual / 3000).quantize(Decimal("1e-12"))
    assert a["actual_through"] == as_of  # billed through the day before
    assert a["burn_rate_per_day"] == (actual / len(nov)).quantize(Decimal("1e-12"))
    assert a["days_left"] == ((Decimal(3000) - actual) / a["burn_rate_per_day"]).quantize(Decimal("0.1"))
    assert a["generation_tokens"] == sum(int(weekly_pattern(d, Decimal(100_000), Decimal(50_000))) for d in nov)
    assert rows["a-quarter"]["actual_cost"] == sum(landed[("a", d)] for d in days(date(2026, 10, 1), as_of))
    assert rows["everything"]["actual_cost"] == sum(v for (_, d), v in landed.items() if d >= date(2026, 11, 1))
    assert rows["b-month"]["actual_cost"] == Decimal("140.00")
    # The forecast continues the weekly pattern: the month's true total is known. A noiseless
    # history leaves smoothing nothing to fit (it does not converge), so the weekday mean answers.
    truth = sum(weekly_pattern(d, Decimal(100), Decimal(50)) for d in days(date(2026, 11, 1), date(2026, 12, 1)))
    assert a["forecast_method"] == "weekday_mean" and a["days_to_period_end"] == 16
    assert a["forecast_cost"] == a["forecast_cost_low"] == a["forecast_cost_high"] == truth
    assert a["status"] == "ok" and a["forecast_threshold_crossed"] is None
    # 2,500 is below the month's ~2,550: at risk by forecast, not by actual; and over its cost ceiling
    # (1.00 per 1k generated tokens against 0.90).
    tight = rows["a-tight"]
    assert tight["status"] == "at_risk" and tight["forecast_threshold_crossed"] == Decimal(100)
    assert tight["actual_threshold_crossed"] is None and tight["ceiling_exceeded"]
    assert tight["cost_per_1k_generated_tokens"] == Decimal("1.000000000000")
    # b spends 10 a day: 300 in November against 250; the forecast knows it before the actual does.
    assert rows["b-month"]["forecast_method"] == "weekday_mean"  # a constant history: no smoothing needed
    assert rows["b-month"]["forecast_cost"] == Decimal("300.00") and rows["b-month"]["status"] == "at_risk"
    assert report.totals == {"budgets": 5, "as_of": as_of, "ok": 3, "at_risk": 2, "over": 0, "currency_mismatch": 0}


def test_the_weekly_workbook_carries_budgets_and_anomalies(store: Store, settings: Settings, rules: TagRules,
                                                           landed: Series, tmp_path: Path) -> None:
    # A runaway day for team b in the week reported (ISO week 45: 2 to 8 November).
    land_daily(store, rules, tmp_path, {("b", date(2026, 11, 4)): Decimal("90.00")}, {}, name="extra.csv")
    weekly = get("weekly")(store, settings, build_params(week="2026-W45"))
    as_of = get("budgets")(store, settings, build_params(end=date(2026, 11, 9), today=NOW.date()))
    assert weekly.tables["budgets"] == as_of.rows and len(as_of.rows) == 5
    [spike] = weekly.tables["anomalies"]
    assert (spike["team"], spike["day"], spike["metric"], spike["value"]) == ("b", date(2026, 11, 4), "cost",
                                                                              Decimal("100.00"))
    data, wb = _both(weekly)
    assert check_sheet(wb["budgets"], data["budgets"]) > 0 and check_sheet(wb["anomalies"], data["anomalies"]) > 0
    scoped = get("weekly")(store, settings, build_params(week="2026-W45", filters={"team": "b"}))
    assert [r["budget"] for r in scoped.tables["budgets"]] == ["b-month"] and scoped.tables["anomalies"] == [spike]


def test_days_the_bill_has_not_reached_are_forecast_not_zero(store: Store, settings: Settings,
                                                            landed: Series) -> None:
    """Billed through 14 November: as of the 17th the 15th and 16th are forecast with the rest of the
    month, so the forecast (and its alert) does not sag while a bill is late."""
    on_time = next(r for r in get("budgets")(store, settings, build_params(end=NOW.date(), today=NOW.date())).rows
                   if r["budget"] == "a-month")
    late = next(r for r in get("budgets")(store, settings, build_params(end=date(2026, 11, 17), today=NOW.date())).rows
                if r["budget"] == "a-month")
    assert late["actual_through"] == NOW.date() and late["actual_cost"] == on_time["actual_cost"]
    assert late["forecast_cost"] == on_time["forecast_cost"] and late["burn_rate_per_day"] == on_time["burn_rate_per_day"]
    assert late["days_to_period_end"] == 14


def test_a_period_that_ended_is_all_actual(store: Store, settings: Settings, landed: Series) -> None:
    report = get("budgets")(store, settings, build_params(end=date(2026, 11, 1), today=NOW.date()))
    a = next(r for r in report.rows if r["budget"] == "a-month")
    october = sum(landed[("a", d)] for d in days(date(2026, 10, 1), date(2026, 11, 1)))
    assert a["period_start"] == date(2026, 10, 1) and a["days_to_period_end"] == 0
    assert a["actual_cost"] == a["forecast_cost"] == a["forecast_cost_low"] == october


def test_a_team_filter_sees_only_its_budgets(store: Store, settings: Settings, landed: Series) -> None:
    params = build_params(end=NOW.date(), today=NOW.date(), filters={"team": "b"})
    assert [r["budget"] for r in get("budgets")(store, settings, params).rows] == ["b-month"]


def test_the_forecast_report_backtests_within_its_floor(store: Store, settings: Settings, rules: TagRules,
                                                        tmp_path: Path) -> None:
    """Ten weeks of three teams with a weekly pattern and +-5 % uniform daily noise; the last two weeks
    are forecast from the eight before. Floor: 5 % error on each team's two-week total and 8 % mean
    daily error. The noise alone makes a perfect model's daily error ~2.5 % (the mean of |U(-5, 5)|)
    and its two-week total error well under 2 %; the floors leave room for fitting error while a
    forecast that missed the weekly pattern (weekends are 40-60 % lower) fails both."""
    rng = random.Random(5)
    start, cut, end = date(2026, 8, 31), date(2026, 10, 26), date(2026, 11, 9)
    cost: Series = {}
    for team, level in (("x", 400), ("y", 150), ("z", 900)):
        for d in days(start, end):
            base = Decimal(level) * (Decimal("0.5") if d.weekday() >= 5 else Decimal(1))
            cost[(team, d)] = (base * Decimal(1 + rng.uniform(-0.05, 0.05))).quantize(Decimal("0.01"))
    land_daily(store, rules, tmp_path, cost, {})
    report = get("forecast")(store, settings, build_params(start=cut, end=end, group_by="team"))
    assert report.totals["history_end"] == cut and report.totals["methods"] == "ets 3"
    errors, totals = [], {}
    for r in report.rows:
        assert r["actual_cost"] == cost[(r["team"], r["day"])]
        errors.append(abs(r["cost"] - r["actual_cost"]) / r["actual_cost"])
        f, a = totals.get(r["team"], (Decimal(0), Decimal(0)))
        totals[r["team"]] = (f + r["cost"], a + r["actual_cost"])
    mape = statistics.fmean(errors)
    worst_total = max(abs(f - a) / a for f, a in totals.values())
    print(f"\nforecast backtest: daily MAPE {mape:.2%}, worst two-week total error {worst_total:.2%}")
    assert len(report.rows) == 3 * 14 and mape < Decimal("0.08") and worst_total < Decimal("0.05")


def test_a_window_after_the_data_is_forecast_from_where_the_data_ends(store: Store, settings: Settings,
                                                                       landed: Series) -> None:
    report = get("forecast")(store, settings, build_params(start=date(2026, 11, 20), end=date(2026, 11, 27),
                                                           group_by="team"))
    assert report.totals["history_end"] == date(2026, 11, 15)
    a = [r for r in report.rows if r["team"] == "a"]
    assert [r["day"] for r in a] == days(date(2026, 11, 20), date(2026, 11, 27))
    assert all(r["actual_cost"] is None for r in a)
    for r in a:  # the weekly pattern, continued
        assert abs(r["cost"] - weekly_pattern(r["day"], Decimal(100), Decimal(50))) < Decimal("2")
    # Far ahead too: the history is still the 56 days before the data's end, not before the window.
    far = get("forecast")(store, settings, build_params(start=date(2027, 1, 29), end=date(2027, 2, 1), group_by="team"))
    assert far.totals["history_end"] == date(2026, 11, 15) and far.totals["methods"] == "weekday_mean 2"
    assert [r["cost"] for r in far.rows if r["team"] == "a"] == [Decimal(100), Decimal(50), Decimal(50)]


@pytest.mark.parametrize(("n", "method"), [(0, "none"), (5, "mean"), (16, "weekday_mean"), (30, "ets")])
def test_each_history_length_gets_its_method(n: int, method: str) -> None:
    rng = random.Random(n)
    first = date(2026, 9, 1)
    history = [float(weekly_pattern(first + timedelta(days=i), Decimal(100), Decimal(60))) + rng.uniform(-2, 2)
               for i in range(n)]
    f = forecast(history, first, 10, ForecastSettings())
    assert f.method == method and len(f.point) == 10
    assert all(lo <= p <= hi for lo, p, hi in zip(f.low, f.point, f.high, strict=True))
    assert f.total_low <= f.total <= f.total_high
    if n >= 14:  # the weekly pattern is kept: the first forecast day is 2026-09-(n+1)
        for i, p in enumerate(f.point):
            assert abs(p - float(weekly_pattern(first + timedelta(days=n + i), Decimal(100), Decimal(60)))) < 8
