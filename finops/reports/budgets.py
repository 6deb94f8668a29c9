"""Budgets (docs/definitions.md 6.8): per budget, spend to date in its current period, the forecast
to the period's end with its interval, the burn rate, the days left at that rate and a status.

The report is as of `end` (exclusive; default today): a budget's period is the month or quarter
holding the day before `end`, its actual spend is that period's cost before `end`, and the rest of
the period is forecast (docs/definitions.md 6.7) from the `forecast.history_days` before `end`.
A team-scoped request sees the budgets filtered on its team only.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import duckdb

from finops.attribution import Attribution
from finops.reports.forecast import READS, daily, last_billed_day, money, predict
from finops.reports.model import PLACES, Report, Row, params_dict, ratio, with_attribution
from finops.reports.params import MIN_DATE, ReportParams
from finops.settings import Settings
from finops.settings.forecast import ForecastSettings
from finops.store import Store
from finops.store.budgets import Budget, stored
from finops.tags import DIMS

MONTHS = {"month": 1, "quarter": 3}


def period_of(period: str, day: date) -> tuple[date, date]:
    """[start, end) of the calendar month or quarter holding `day`."""
    months = MONTHS[period]
    first = date(day.year, (day.month - 1) // months * months + 1, 1)
    m = first.month - 1 + months
    return first, date(first.year + m // 12, m % 12 + 1, 1)


def visible(b: Budget, filters: dict[str, str]) -> bool:
    """A budget is within a request's filters when it filters on each of them with the same value."""
    return all(b.filters.get(d) == v for d, v in filters.items())


def _crossed(thresholds: list[Decimal], pct: Decimal) -> Decimal | None:
    return max((t for t in thresholds if pct >= t), default=None)


def evaluate(cur: duckdb.DuckDBPyConnection, params: ReportParams, b: Budget, as_of: date, currency: str,
             cfg: ForecastSettings, last_billed: date | None) -> Row:
    """One budget's row as of `as_of` (exclusive). Days after the newest billed day (any group's)
    are forecast, not counted as zero spend: a bill a day or two late must not hide a forecast."""
    start, end = period_of(b.period, as_of - timedelta(days=1))
    through = min(as_of, last_billed + timedelta(days=1)) if last_billed is not None else as_of
    data = daily(cur, params.model_copy(update={"filters": b.filters}), ())
    cost, tokens = data.cost.get((), {}), data.tokens.get((), {})
    actual = sum((v for d, v in cost.items() if start <= d < through), Decimal(0))
    generated = sum((v for d, v in tokens.items() if start <= d < through), 0)
    horizon = (end - max(through, start)).days
    history_start = max(through - timedelta(days=cfg.history_days), MIN_DATE)
    fc = predict(cost, history_start, through, horizon, cfg)
    ft = predict(tokens, history_start, through, horizon, cfg)
    rest, low, high = money(fc.total), money(fc.total_low, ROUND_FLOOR), money(fc.total_high, ROUND_CEILING)
    elapsed = (through - start).days
    burn = (actual / elapsed).quantize(PLACES) if elapsed > 0 else None
    days_left = None
    if burn and burn > 0:
        days_left = max(((b.amount - actual) / burn).quantize(Decimal("0.1")), Decimal(0))
    forecast_cost = actual + rest
    cpk = ratio(actual, generated, 1000)
    forecast_cpk = ratio(forecast_cost, generated + round(ft.total), 1000)
    row: Row = {
        "budget": b.name, **{d: b.filters.get(d) for d in DIMS}, "period": b.period, "period_start": start,
        "period_end": end, "amount": b.amount, "budget_currency": b.currency, "actual_cost": actual,
        "actual_through": through, "actual_share": None, "forecast_cost": forecast_cost,
        "forecast_cost_low": actual + low, "forecast_cost_high": actual + high, "forecast_share": None,
        "forecast_method": fc.method, "burn_rate_per_day": burn, "days_left": days_left,
        "days_to_period_end": (end - as_of).days, "generation_tokens": generated,
        "forecast_generation_tokens": generated + round(ft.total), "cost_per_1k_generated_tokens": cpk,
        "forecast_cost_per_1k_generated_tokens": forecast_cpk,
        "max_cost_per_1k_generated_tokens": b.max_cost_per_1k_generated_tokens,
        "actual_threshold_crossed": None, "forecast_threshold_crossed": None, "ceiling_exceeded": False,
        "status": "currency_mismatch",
    }
    if b.currency != currency:
        return row  # amounts in two currencies: nothing is compared
    over_ceiling = (b.max_cost_per_1k_generated_tokens is not None and forecast_cpk is not None
                    and forecast_cpk > b.max_cost_per_1k_generated_tokens)
    crossed_actual = _crossed(b.actual_thresholds, actual * 100 / b.amount)
    crossed_forecast = _crossed(b.forecast_thresholds, forecast_cost * 100 / b.amount)
    row.update(actual_share=ratio(actual, b.amount), forecast_share=ratio(forecast_cost, b.amount),
               actual_threshold_crossed=crossed_actual, forecast_threshold_crossed=crossed_forecast,
               ceiling_exceeded=over_ceiling,
               status="over" if actual >= b.amount else "at_risk" if crossed_actual is not None
               or crossed_forecast is not None or over_ceiling else "ok")
    return row


def build(cur: duckdb.DuckDBPyConnection, att: Attribution, params: ReportParams, cfg: ForecastSettings,
          budgets: list[Budget]) -> Report:
    last = last_billed_day(cur)
    rows = [evaluate(cur, params, b, params.end, att.currency, cfg, last) for b in budgets]
    totals: Row = {"budgets": len(rows), "as_of": params.end,
                   **{s: sum(r["status"] == s for r in rows) for s in ("ok", "at_risk", "over", "currency_mismatch")}}
    return Report("budgets", params_dict(params, att.currency), rows, totals, currency=att.currency)


def listed(cur: duckdb.DuckDBPyConnection, filters: dict[str, str]) -> list[Budget]:
    """The budgets within a request's filters."""
    return [b for b in stored(lambda sql: cur.execute(sql).fetchall()) if visible(b, filters)]


def first_day(shown: list[Budget], as_of: date) -> date:
    """The first day of the earliest period among `shown` as of `as_of` (`as_of` if none)."""
    return min([period_of(b.period, as_of - timedelta(days=1))[0] for b in shown], default=as_of)


def budgets(store: Store, settings: Settings, params: ReportParams) -> Report:
    cfg = settings.forecast

    def build_listed(cur: duckdb.DuckDBPyConnection, att: Attribution) -> Report:
        return build(cur, att, window, cfg, listed(cur, params.filters))

    shown = [b for b in stored(store.query) if visible(b, params.filters)]
    window = params.model_copy(update={
        "start": max(min(first_day(shown, params.end), params.end - timedelta(days=cfg.history_days)), MIN_DATE)})
    return with_attribution(store, settings, window, build_listed, reads=READS)
