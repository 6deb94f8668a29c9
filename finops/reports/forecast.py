"""Forecast (docs/definitions.md 6.7): daily cost and generated tokens per group for the days of the
window, each with an interval, learnt from the `forecast.history_days` before the data ends.

The history ends where the data does (the last day with cost, at most the window's start): a
window in the future is forecast from the newest data, and days between the two are forecast but
not shown. Days of the window that have data carry it as `actual_cost` and `actual_generation_tokens`,
so a window in the past is a backtest.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any

import duckdb

from finops.attribution import Attribution
from finops.reports.forecasting import Forecast, forecast
from finops.reports.model import (
    Report,
    Row,
    fetch_rows,
    filter_sql,
    group_columns,
    params_dict,
    with_attribution,
)
from finops.reports.params import MIN_DATE, ReportParams
from finops.settings import Settings
from finops.settings.forecast import ForecastSettings
from finops.store import Store

CENT = Decimal("0.01")
READS = ("att_alloc", "att_tok")  # the att_* relations the report reads
Key = tuple[str, ...]


@dataclass
class Daily:
    """Daily cost and generated tokens per group (days without a row are absent)."""

    cost: dict[Key, dict[date, Decimal]]
    tokens: dict[Key, dict[date, int]]



def daily(cur: duckdb.DuckDBPyConnection, params: ReportParams, dims: tuple[str, ...]) -> Daily:
    """Daily cost (every dollar, unallocated included) and generated tokens per group of `dims`,
    over the attributed window, within `params.filters`."""
    where_alloc, binds = filter_sql(params)
    cols = "".join(c + ", " for c in group_columns(dims, True))
    cost: dict[Key, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for r in fetch_rows(cur, f"SELECT {cols}day, sum(amount) AS cost FROM att_alloc WHERE {where_alloc} "  # noqa: S608
                             "GROUP BY ALL", binds):
        cost[tuple(r[d] for d in dims)][r["day"]] += r["cost"]
    tokens: dict[Key, dict[date, int]] = defaultdict(dict)
    cols = "".join(c + ", " for c in group_columns(dims, False))
    for r in fetch_rows(cur, f"SELECT {cols}day, sum(generation_tokens)::BIGINT AS tokens FROM att_tok "  # noqa: S608
                             f"WHERE {where_alloc} GROUP BY ALL", binds):
        tokens[tuple(r[d] for d in dims)][r["day"]] = r["tokens"]
    return Daily(cost, tokens)


def last_billed_day(cur: duckdb.DuckDBPyConnection) -> date | None:
    """The newest day with any cost in the attributed window, whatever the filters: where the bill
    ends for everyone (a group without cost before it stopped; after it, the bill has not arrived)."""
    [(found,)] = cur.execute("SELECT max(day) FROM att_alloc").fetchall()
    return found


def series(values: dict[date, Any], first: date, end: date) -> list[float]:
    """The consecutive daily values of [first, end), a day without a value being 0."""
    return [float(values.get(first + timedelta(days=i), 0)) for i in range((end - first).days)]


def predict(values: dict[date, Any], history_start: date, history_end: date, horizon: int,
            cfg: ForecastSettings) -> Forecast:
    """Forecast `horizon` days from `history_end`, learning from the group's life within the history
    (its days before the first value are not zeros: the group did not exist)."""
    first = max(history_start, min((d for d in values if d < history_end), default=history_end))
    return forecast(series(values, first, history_end), first, horizon, cfg)


def history_window(params: ReportParams, cfg: ForecastSettings) -> ReportParams:
    """The attributed window a forecast of `params` reads: its history and the window itself."""
    return params.model_copy(update={"start": max(params.start - timedelta(days=cfg.history_days), MIN_DATE)})


def build(cur: duckdb.DuckDBPyConnection, att: Attribution, params: ReportParams, cfg: ForecastSettings) -> Report:
    dims = params.group_by
    data = daily(cur, params, dims)
    last = last_billed_day(cur)
    history_end = min(params.start, last + timedelta(days=1)) if last is not None else params.start
    history_start = max(history_end - timedelta(days=cfg.history_days), MIN_DATE)
    horizon = (params.end - history_end).days
    skip = (params.start - history_end).days
    rows: list[Row] = []
    methods: dict[str, int] = defaultdict(int)
    for key in sorted(set(data.cost) | set(data.tokens)):
        cost, tokens = data.cost.get(key, {}), data.tokens.get(key, {})
        fc = predict(cost, history_start, history_end, horizon, cfg)
        ft = predict(tokens, history_start, history_end, horizon, cfg)
        methods[fc.method] += 1
        for i in range(skip, horizon):
            day = history_end + timedelta(days=i)
            known = last is not None and day <= last
            rows.append({"day": day, **dict(zip(dims, key, strict=True)), "method": fc.method,
                         "cost": money(fc.point[i]), "cost_low": money(fc.low[i], ROUND_FLOOR),
                         "cost_high": money(fc.high[i], ROUND_CEILING), "generation_tokens": round(ft.point[i]),
                         "generation_tokens_low": math.floor(ft.low[i]),
                         "generation_tokens_high": math.ceil(ft.high[i]),
                         "actual_cost": cost.get(day, Decimal(0)) if known else None,
                         "actual_generation_tokens": tokens.get(day, 0) if known else None})
    rows.sort(key=lambda r: (r["day"], *(str(r[d]) for d in dims)))
    known_rows = [r for r in rows if r["actual_cost"] is not None]
    totals: Row = {"cost": sum((r["cost"] for r in rows), Decimal(0)),
                   "actual_cost": sum((r["actual_cost"] for r in known_rows), Decimal(0)) if known_rows else None,
                   "history_start": history_start, "history_end": history_end, "groups": len(set(data.cost) | set(data.tokens)),
                   "methods": ", ".join(f"{m} {n}" for m, n in sorted(methods.items()))}
    return Report("forecast", params_dict(params, att.currency), rows, totals, currency=att.currency)


def money(x: float, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """A forecast amount to the cent; interval ends are rounded outwards (floor, ceiling)."""
    return Decimal(repr(x)).quantize(CENT, rounding=rounding)


def forecast_report(store: Store, settings: Settings, params: ReportParams) -> Report:
    cfg = settings.forecast
    # A window after the data is forecast from the data's end: attribute the history before that.
    [(last,)] = store.query("SELECT max(charge_date) FROM cost_daily WHERE charge_date < ?", [params.end])
    anchor = min(params.start, last + timedelta(days=1)) if last is not None else params.start
    window = params.model_copy(update={"start": max(anchor - timedelta(days=cfg.history_days), MIN_DATE)})
    return with_attribution(store, settings, window, lambda cur, att: build(cur, att, params, cfg), reads=READS)
