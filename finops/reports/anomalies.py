"""Anomalies (docs/definitions.md 6.6): days whose cost, or cost per 1k generated tokens, left their
group's usual range, with the resources that moved most.

Each group's day is scored against the `history_days` before the window: the baseline is the median
of the same weekday in that history (weekly seasonality; the median of every history day when it
holds fewer than two of that weekday), the scale is the median absolute deviation of the history
from its weekday baselines (x 1.4826, so it estimates a standard deviation), floored at
`min_relative_scale` of the baseline. A day is anomalous when |value - baseline| / scale reaches
`min_score` and the deviation is worth at least `min_deviation` in money. Medians, not means: one bad
day in the history does not hide the next.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from finops.attribution import Attribution
from finops.reports.forecast import last_billed_day
from finops.reports.model import (
    PLACES,
    Report,
    Row,
    fetch_rows,
    filter_sql,
    group_columns,
    params_dict,
    ratio,
    with_attribution,
)
from finops.reports.params import MIN_DATE, ReportParams
from finops.settings import Settings
from finops.settings.anomalies import AnomalySettings
from finops.store import Store

MAD_TO_SIGMA = 1.4826
METRICS = ("cost", "cost_per_1k_generated_tokens")
READS = ("att_alloc", "att_line", "att_tok")  # the att_* relations the report reads


def _dims(dims: tuple[str, ...], unallocated: bool) -> str:
    return ", ".join(group_columns(dims, unallocated, "a" if unallocated else ""))


def _series(dims: tuple[str, ...], where_alloc: str) -> str:
    """Daily cost per group (constants only): the groups' series, without the lines' resources."""
    cols = f", {_dims(dims, True)}" if dims else ""
    return f"SELECT a.day{cols}, sum(a.amount) AS v FROM att_alloc a WHERE {where_alloc} GROUP BY ALL"  # noqa: S608


def _queries(dims: tuple[str, ...], where_alloc: str, where_tok: str) -> tuple[str, str]:
    """Daily cost per group and resource, and daily generated tokens per group (constants only)."""
    cost = f"""SELECT a.day, {_dims(dims, True) + ', ' if dims else ''}coalesce(l.resource_key, l.resource_id, '')
                      AS resource, sum(a.amount) AS cost
               FROM att_alloc a JOIN att_line l ON l.line_id = a.line_id WHERE {where_alloc} GROUP BY ALL"""  # noqa: S608
    tokens = f"""SELECT day{', ' + _dims(dims, False) if dims else ''}, coalesce(rkey, '') AS resource,
                        sum(generation_tokens)::BIGINT AS tokens
                 FROM att_tok WHERE {where_tok} GROUP BY ALL"""  # noqa: S608
    return cost, tokens


def _baseline(history: dict[date, Decimal], weekday: int) -> Decimal | None:
    """The baseline of a weekday (0 = Monday): the median of that weekday's history values, or of
    every history value when it holds fewer than two of that weekday."""
    same = [v for d, v in history.items() if d.weekday() == weekday]
    pool = same if len(same) >= 2 else list(history.values())
    return Decimal(statistics.median(pool)) if pool else None


def _baselines(history: dict[date, Decimal]) -> dict[int, Decimal | None]:
    """`_baseline` of every weekday."""
    return {wd: _baseline(history, wd) for wd in range(7)}


def _spread(history: dict[date, Decimal], bases: dict[int, Decimal | None]) -> Decimal | None:
    """The median absolute deviation of the history from its weekday baselines, as a standard
    deviation (x 1.4826); None for an empty history."""
    residuals = [v - b for d, v in history.items() if (b := bases[d.weekday()]) is not None]
    if not residuals:
        return None
    centre = statistics.median(residuals)
    return Decimal(statistics.median([abs(r - centre) for r in residuals])) * Decimal(str(MAD_TO_SIGMA))


def score_series(history: dict[date, Decimal], window: dict[date, Decimal], cfg: AnomalySettings,
                 worth: dict[date, Decimal] | None = None) -> list[dict[str, Any]]:
    """The anomalous days of one series: `history` and `window` map days to values (days without a
    value are left out); `worth` converts a deviation into money (default: the deviation itself)."""
    out: list[dict[str, Any]] = []
    if len(history) < 7:
        return out  # not enough history to say what usual is
    bases = _baselines(history)  # the history's statistics, once for every day scored
    spread = _spread(history, bases)
    for day, value in sorted(window.items()):
        base = bases[day.weekday()]
        if base is None:
            continue
        floor = max(abs(base) * Decimal(str(cfg.min_relative_scale)), Decimal("1e-9"))
        scale = max(spread, floor) if spread is not None else floor
        deviation = value - base
        money = abs(deviation) * (worth.get(day, Decimal(0)) if worth is not None else Decimal(1))
        score = float(deviation / scale)
        if abs(score) >= cfg.min_score and money >= cfg.min_deviation:
            k = Decimal(str(cfg.min_score))
            out.append({"day": day, "value": value, "baseline": base, "expected_low": base - k * scale,
                        "expected_high": base + k * scale, "score": round(score, 2), "deviation": deviation,
                        "deviation_cost": money})
    return out


def build(cur: duckdb.DuckDBPyConnection, att: Attribution, params: ReportParams, cfg: AnomalySettings,
          history_start: date) -> Report:
    where_alloc, binds = filter_sql(params, "a")
    where_tok, _ = filter_sql(params)
    dims = params.group_by
    cost_sql, tokens_sql = _queries(dims, where_alloc, where_tok)
    cols = "".join(f", {d}" for d in dims)
    # Groups' daily series are summed in DuckDB; per-resource detail is read for anomalous groups only.
    cost: dict[tuple[str, ...], dict[date, Decimal]] = defaultdict(dict)
    for r in fetch_rows(cur, _series(dims, where_alloc), binds):
        cost[tuple(r[d] for d in dims)][r["day"]] = r["v"]
    tokens: dict[tuple[str, ...], dict[date, int]] = defaultdict(dict)
    for r in fetch_rows(cur, f"SELECT day{cols}, sum(tokens)::BIGINT AS v FROM ({tokens_sql}) GROUP BY ALL",  # noqa: S608
                        binds):
        tokens[tuple(r[d] for d in dims)][r["day"]] = r["v"]
    # Days after the newest billed day are not scored: a bill that has not arrived yet is not a zero.
    billed = last_billed_day(cur) or params.start
    days = [params.start + timedelta(days=i) for i in range((min(params.end, billed + timedelta(days=1))
                                                             - params.start).days)]
    hist_days = [history_start + timedelta(days=i) for i in range((params.start - history_start).days)]
    rows: list[Row] = []
    for key in sorted(set(cost) | set(tokens)):
        series = cost.get(key, {})
        first = min([*series, *tokens.get(key, {})], default=None)
        if first is None:
            continue
        # A day without cost inside the group's life is a real zero (a stopped workload).
        def values(span: list[date], s: dict[date, Decimal] = series, start: date = first) -> dict[date, Decimal]:
            return {d: s.get(d, Decimal(0)) for d in span if d >= start}

        found = [{"metric": "cost", **a} for a in score_series(values(hist_days), values(days), cfg)]
        cpk = {d: ratio(series.get(d, Decimal(0)), n, 1000) for d, n in tokens.get(key, {}).items() if n}
        gen = {d: Decimal(n) / 1000 for d, n in tokens.get(key, {}).items() if n}
        found += [{"metric": "cost_per_1k_generated_tokens", **a} for a in score_series(
            {d: v for d, v in cpk.items() if d in set(hist_days) and v is not None},
            {d: v for d, v in cpk.items() if d in set(days) and v is not None}, cfg, gen)]
        for a in found:
            rows.append({"day": a.pop("day"), **dict(zip(dims, key, strict=True)), **_rounded(a)})
    _add_contributors(cur, rows, dims, (cost_sql, tokens_sql), binds, hist_days, cfg.contributors)
    rows.sort(key=lambda r: (r["day"], -r["deviation_cost"], r["metric"], *(str(r[d]) for d in dims)))
    totals = {"anomalies": len(rows), "deviation_cost": sum((r["deviation_cost"] for r in rows), Decimal(0)),
              "history_start": history_start, "groups": len(set(cost) | set(tokens))}
    return Report("anomalies", params_dict(params, att.currency), rows, totals, currency=att.currency)


def _add_contributors(cur: duckdb.DuckDBPyConnection, rows: list[Row], dims: tuple[str, ...], sqls: tuple[str, str],
                      binds: dict[str, Any], history: list[date], n: int) -> None:
    """Each row's `contributors`. A cost anomaly names the resources whose cost moved; a cost-per-1k
    one, those whose generated tokens moved first (a token drop leaves every bill as it was)."""
    if not rows:
        return
    sep = chr(31)  # a unit separator joins a group's dims into one key
    key_sql = f"concat_ws(chr(31), {', '.join(dims)})" if dims else "''"
    keys = sorted({sep.join(str(r[d]) for d in dims) for r in rows})
    detail: dict[str, dict[str, dict[str, dict[date, Decimal]]]] = {}
    for measure, sql, col in (("cost", sqls[0], "cost"), ("generation_tokens", sqls[1], "tokens")):
        found: dict[str, dict[str, dict[date, Decimal]]] = defaultdict(lambda: defaultdict(dict))
        for r in fetch_rows(cur, f"SELECT {key_sql} AS k, resource, day, {col} AS v FROM ({sql}) "  # noqa: S608
                                 "WHERE list_contains($keys, k)", {**binds, "keys": keys}):
            found[r["k"]][r["resource"]][r["day"]] = Decimal(r["v"])
        detail[measure] = found
    for r in rows:
        k = sep.join(str(r[d]) for d in dims)
        out = _contributors(detail["cost"].get(k, {}), "cost", r["day"], history, n)
        if r["metric"] != "cost":
            out = (_contributors(detail["generation_tokens"].get(k, {}), "generation_tokens", r["day"], history, n)
                   + out)[:n]
        r["contributors"] = out


def _rounded(a: dict[str, Any]) -> dict[str, Any]:
    return {k: v.quantize(PLACES) if isinstance(v, Decimal) else v for k, v in a.items()}


def _contributors(resources: dict[str, dict[date, Decimal]], measure: str, day: date, history: list[date],
                  n: int) -> list[dict[str, Any]]:
    """The resources whose `measure` that day moved most from their own same-weekday median."""
    moves: list[tuple[Decimal, str, dict[str, Any]]] = []
    places = PLACES if measure == "cost" else Decimal(1)
    for resource, series in resources.items():
        base = _baseline({d: series.get(d, Decimal(0)) for d in history}, day.weekday()) or Decimal(0)
        delta = series.get(day, Decimal(0)) - base
        if delta:
            moves.append((-abs(delta), resource, {
                "resource": resource or None, "measure": measure, "value": series.get(day, Decimal(0)).quantize(places),
                "baseline": base.quantize(places), "change": delta.quantize(places)}))
    return [m for _, _, m in sorted(moves, key=lambda m: (m[0], m[1]))[:n]]


def anomalies(store: Store, settings: Settings, params: ReportParams) -> Report:
    cfg = settings.anomalies
    history_start = max(params.start - timedelta(days=cfg.history_days), MIN_DATE)
    wide = params.model_copy(update={"start": history_start})
    return with_attribution(store, settings, wide, lambda cur, att: build(cur, att, params, cfg, history_start),
                            reads=READS)
