"""Unit economics (docs/definitions.md 6.1): cost, tokens and GPU-hours per group and period, with unit costs."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from operator import itemgetter
from typing import Any

import duckdb

from finops.attribution import Attribution
from finops.attribution.sql import DAILY_MEASURES
from finops.money import CONTEXT
from finops.reports.model import (
    PLACES,
    Report,
    Row,
    fetch_rows,
    filter_sql,
    group_columns,
    params_dict,
    period_sql,
    with_attribution,
)
from finops.reports.params import ReportParams
from finops.settings import Settings
from finops.store import Store
from finops.tags import DIMS, UNALLOCATED

# Period start of a day `d` per granularity; `total` is one period, the whole window.
READS = ("att_daily",)  # the att_* relations the report reads
BUCKET = {
    "day": "day",
    "week": "CAST(date_trunc('week', day) AS DATE)",
    "month": "CAST(date_trunc('month', day) AS DATE)",
    "total": "CAST($start AS DATE)",
}


def period_end(start: date, granularity: str, window_end: date) -> date:
    """End (exclusive) of the period starting at `start`, clipped to the report window."""
    if granularity == "day":
        end = start + timedelta(days=1)
    elif granularity == "week":
        end = start + timedelta(days=7)
    elif granularity == "month":
        end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    else:
        end = window_end
    return min(end, window_end)


def _dims(dims: tuple[str, ...], unallocated: bool) -> str:
    return "".join(", " + c for c in group_columns(dims, unallocated))


def grouped(sets: tuple[tuple[str, ...], ...]) -> tuple[str, ...]:
    """The dims any of `sets` groups by, in canonical order."""
    return tuple(d for d in DIMS if any(d in s for s in sets))


def query(params: ReportParams, exact_usage: bool = False, splits: int = 0) -> str:
    """The report's rows; `exact_usage` leaves usage_cost unrounded (24 places), for rows summed further.
    `splits` cuts a window of granularity `total` into consecutive periods at the dates bound as
    `$split1`, `$split2`, ... (in order)."""
    bucket = period_sql("day", BUCKET[params.granularity], splits)
    where, _ = filter_sql(params)
    dims = params.group_by
    keys = "".join(f", {d}" for d in dims)
    # The report's order: per period, groups before __unallocated__, then by cost, largest first.
    unallocated_last = " OR ".join(f"{d} IS NOT DISTINCT FROM '{UNALLOCATED}'" for d in dims)
    order = "period, " + (f"({unallocated_last}), " if dims else "") + "cost DESC" + "".join(f", {d}" for d in dims)
    usage = "sum(usage_cost)" if exact_usage else "CAST(sum(usage_cost) AS DECIMAL(38,12))"
    return f"""
    WITH parts AS (
        SELECT {bucket} AS period {_dims(dims, True)}, {", ".join(DAILY_MEASURES)} FROM att_daily WHERE {where}
    )
    SELECT * FROM (
    SELECT period{keys}, sum(cost) AS cost, sum(prompt_tokens)::BIGINT AS prompt_tokens,
           sum(generation_tokens)::BIGINT AS generation_tokens, sum(requests)::BIGINT AS requests,
           sum(gpu_hours)::BIGINT AS gpu_hours, sum(busy_sum) AS busy_sum,
           {usage} AS usage_cost, CAST(sum(idle_cost) AS DECIMAL(38,12)) AS idle_cost,
           sum(cached_prompt_tokens)::BIGINT AS cached_prompt_tokens, sum(prefill_ms)::BIGINT AS prefill_ms,
           sum(decode_ms)::BIGINT AS decode_ms, sum(timed_prompt)::BIGINT AS timed_prompt,
           sum(timed_gen)::BIGINT AS timed_gen, sum(cache_known)::BIGINT AS cache_known
    FROM parts GROUP BY ALL
    ) ORDER BY {order}
    """  # noqa: S608 - validated dim names and constants, values bound


SUMMED = ("cost", "prompt_tokens", "generation_tokens", "requests", "gpu_hours", "usage_cost", "idle_cost",
          "prefill_ms", "decode_ms", "timed_prompt", "timed_gen", "cache_known")


def _finish(raw: list[Row], params: ReportParams) -> list[Row]:
    ends: dict[date, date] = {}  # few periods, many rows
    out = []
    dims, start, weight = params.group_by, params.start, params.generation_weight
    for row in raw:
        period = row["period"]
        end = ends.get(period) or ends.setdefault(period, period_end(period, params.granularity, params.end))
        r: Row = {"period_start": max(period, start), "period_end": end}
        for d in dims:
            r[d] = row[d]
        r.update(measures(row, weight))
        out.append(r)
    return out


def _money(v: Any) -> Decimal:
    return v if isinstance(v, Decimal) else Decimal(v or 0)


def prompt_share(row: Row, weight: Decimal) -> tuple[Decimal | None, str | None]:
    """The share of a group's cost that its prompts caused, and the rule that gave it
    (docs/definitions.md 6.1): prefill vs decode time where vLLM measured both, else the tokens with
    a generated token weighing `weight` prompt tokens; `mixed` when part of the tokens had times.
    Each rule's share weighs by its tokens: (n1 x1 + n2 x2) / (n1 + n2)."""
    prompt, gen = row["prompt_tokens"] or 0, row["generation_tokens"] or 0
    prefill = row.get("prefill_ms") or 0
    busy = prefill + (row.get("decode_ms") or 0)
    # Times exposed but nothing measured: the weight decides.
    timed_p, timed_g = (row.get("timed_prompt") or 0, row.get("timed_gen") or 0) if busy else (0, 0)
    timed = timed_p + timed_g
    rest_p, rest_g = prompt - timed_p, gen - timed_g
    rest = rest_p + rest_g
    if timed:
        by_time = timed * (Decimal(prefill) / busy)
        if not rest:
            return by_time / timed, "prefill_decode_time"
        return (by_time + rest * (Decimal(rest_p) / (rest_p + weight * rest_g))) / (timed + rest), "mixed"
    if rest:
        return rest * (Decimal(rest_p) / (rest_p + weight * rest_g)) / rest, "token_weight"
    return None, None


def _per_1k(cost: Decimal | None, tokens: int) -> Decimal | None:
    return (cost * 1000 / tokens).quantize(PLACES) if cost is not None and tokens else None


def measures(row: Row, weight: Decimal) -> Row:
    """Derived fields from summed measures (also used for totals)."""
    cost = _money(row["cost"])
    gen, prompt = row["generation_tokens"] or 0, row["prompt_tokens"] or 0
    req, hours = row["requests"] or 0, row["gpu_hours"] or 0
    total_tokens = gen + prompt
    share, basis = prompt_share(row, weight) if total_tokens else (None, None)
    # The two parts sum to the cost exactly: the generation part is what the prompt part leaves.
    prompt_cost: Decimal | None = None
    generation_cost: Decimal | None = None
    if share is not None:
        prompt_part = (cost * share).quantize(PLACES)
        prompt_cost, generation_cost = prompt_part, cost - prompt_part
    # The cache is measured on the prompt tokens of servers that expose it (`cache_known`).
    cached, known = row.get("cached_prompt_tokens"), row.get("cache_known") or 0
    computed = prompt - (cached or 0)
    return {
        "cost": cost, "prompt_tokens": prompt, "generation_tokens": gen, "total_tokens": total_tokens,
        "requests": req, "gpu_hours": hours,
        "avg_gpu_busy": round(float(row["busy_sum"]) / hours, 6) if hours else None,
        "cost_per_1k_generated_tokens": _per_1k(cost, gen),
        "cost_per_1k_tokens": _per_1k(cost, total_tokens),
        "cost_per_request": (cost / req).quantize(PLACES) if req else None,
        "usage_cost": _money(row["usage_cost"]), "idle_cost": _money(row["idle_cost"]),
        "cached_prompt_tokens": cached, "prompt_cost": prompt_cost, "generation_cost": generation_cost,
        "cost_per_1k_prompt_tokens": _per_1k(prompt_cost, prompt),
        "cost_per_1k_generation_tokens": _per_1k(generation_cost, gen),
        "cache_hit_rate": (Decimal(cached) / known).quantize(Decimal("1e-6")) if cached is not None and known else None,
        # What the cached prompt tokens would have cost at the rate of the prompt tokens computed.
        "cache_savings": (prompt_cost * cached / computed).quantize(PLACES)
        if prompt_cost is not None and cached and computed > 0 else (Decimal(0) if cached == 0 else None),
        "split_basis": basis,
        "note": "no_tokens" if total_tokens == 0 else ("no_gpu_metrics" if hours == 0 else None),
    }


def build(cur: duckdb.DuckDBPyConnection, att: Attribution, params: ReportParams) -> Report:
    _, binds = filter_sql(params)
    sql = query(params)
    return _report(fetch_rows(cur, sql, {"start": params.start, **binds} if "$start" in sql else binds), att, params)


def build_many(cur: duckdb.DuckDBPyConnection, att: Attribution, params: ReportParams,
               group_bys: tuple[tuple[str, ...], ...]) -> list[Report]:
    """`build` for each of `group_bys` (dims in canonical order), from one pass over the data: the
    rows by every dim any of them names, summed in Python into each (a GROUPING SETS pass costs
    DuckDB more per set than summing these few rows costs Python)."""
    return build_windows(cur, ((att, params),), group_bys)[0]


def build_windows(cur: duckdb.DuckDBPyConnection, windows: tuple[tuple[Attribution, ReportParams], ...],
                  group_bys: tuple[tuple[str, ...], ...]) -> list[list[Report]]:
    """`build_many` for each of consecutive `windows` (each with the attribution of its own window),
    from one pass over their span, which the attribution set up on `cur` covers. With more than one
    window, each is one period (granularity `total`): a row's period is the window its day is in."""
    first, last = windows[0][1], windows[-1][1]
    if len(windows) > 1 and any(p.granularity != "total" for _, p in windows):
        raise ValueError("consecutive windows are each one period: granularity total")
    every = grouped(group_bys)
    _, binds = filter_sql(first)
    span = first.model_copy(update={"group_by": every, "end": last.end})
    sql = query(span, exact_usage=True, splits=len(windows) - 1)
    binds.update({f"split{i}": p.start for i, (_, p) in enumerate(windows[1:], 1)})
    raw = fetch_rows(cur, sql, {"start": first.start, **binds} if "$start" in sql else binds)
    out = []
    for att, params in windows:
        rows = raw if len(windows) == 1 else [r for r in raw if r["period"] == params.start]
        out.append([_report(_rollup(rows, dims), att, params.model_copy(update={"group_by": dims}))
                    for dims in group_bys])
    return out


def _rollup(raw: list[Row], dims: tuple[str, ...]) -> list[Row]:
    """`raw` rows (usage_cost unrounded) summed per period and `dims`, in the report's order, with
    usage_cost rounded to 12 places as DuckDB rounds (half away from zero)."""
    groups: dict[tuple[Any, ...], Row] = {}
    for row in raw:
        key = (row["period"], *(row[d] for d in dims))
        into = groups.get(key)
        if into is None:
            groups[key] = {"period": row["period"], **{d: row[d] for d in dims},
                           **{k: row[k] for k in (*SUMMED, "busy_sum", "cached_prompt_tokens")}}
            continue
        for k in SUMMED:
            into[k] = CONTEXT.add(into[k], row[k]) if isinstance(row[k], Decimal) else into[k] + row[k]
        into["busy_sum"] = CONTEXT.add(into["busy_sum"], row["busy_sum"])
        if row["cached_prompt_tokens"] is not None:
            into["cached_prompt_tokens"] = (into["cached_prompt_tokens"] or 0) + row["cached_prompt_tokens"]
    rows = list(groups.values())
    for r in rows:
        r["usage_cost"] = r["usage_cost"].quantize(PLACES, rounding=ROUND_HALF_UP, context=CONTEXT)
    rows.sort(key=lambda r: (r["period"], any(r[d] == UNALLOCATED for d in dims), -r["cost"],
                             *(r[d] for d in dims)))
    return rows


def _report(raw: list[Row], att: Attribution, params: ReportParams) -> Report:
    rows = _finish(raw, params)  # in the report's order already (the query sorts)
    columns = list(zip(*map(itemgetter(*SUMMED), raw), strict=True)) or [()] * len(SUMMED)  # one pass, in C
    sums: dict[str, Any] = {k: sum(col, Decimal(0) if k in ("cost", "usage_cost", "idle_cost") else 0)
                            for k, col in zip(SUMMED, columns, strict=True)}
    sums["busy_sum"] = sum(float(r["busy_sum"]) for r in raw)
    known = [r["cached_prompt_tokens"] for r in raw if r["cached_prompt_tokens"] is not None]
    sums["cached_prompt_tokens"] = sum(known) if known else None
    totals = measures(sums, params.generation_weight)
    totals.pop("note")
    # The totals' split is the sum of the rows' (each row split by its own times), so the parts add up.
    if rows:
        for k in ("prompt_cost", "generation_cost", "cache_savings"):
            parts = [r[k] for r in rows if r[k] is not None]
            totals[k] = sum(parts, Decimal(0)) if parts else None
        totals["cost_per_1k_prompt_tokens"] = _per_1k(totals["prompt_cost"], totals["prompt_tokens"])
        totals["cost_per_1k_generation_tokens"] = _per_1k(totals["generation_cost"], totals["generation_tokens"])
        bases = {r["split_basis"] for r in rows if r["split_basis"] is not None}
        totals["split_basis"] = bases.pop() if len(bases) == 1 else ("mixed" if bases else None)
    totals["ingested_total"] = att.ingested_total if not params.filters else totals["cost"]
    return Report("unit-economics", params_dict(params, att.currency), rows, totals, currency=att.currency)


# Bought models: lines a provider billed per token (FOCUS `ConsumedUnit` Tokens), per model named in
# `SkuPriceDetails` (FOCUS's AI model identity: ModelId, TokenDirection Input/Output, TokenCacheAction).
BOUGHT = """
WITH t AS (
    SELECT provider_name AS provider, host_provider_name AS host_provider,
           coalesce(json_extract_string(sku_price_details, '$.ModelId'), sku_meter, sku_id) AS api_model,
           lower(coalesce(json_extract_string(sku_price_details, '$.TokenDirection'), '')) AS direction,
           lower(coalesce(json_extract_string(sku_price_details, '$.TokenCacheAction'), '')) AS cache,
           billing_currency AS currency, {cost} AS cost, CAST(round(consumed_quantity) AS HUGEINT) AS tokens
    FROM cost_lines
    WHERE charge_date >= $start AND charge_date < $end AND split_origin IS NOT TRUE AND lower(trim(consumed_unit)) IN ('tokens', 'token')
      AND json_valid(coalesce(sku_price_details, '{{}}')) AND {where}
)
SELECT provider, host_provider, api_model, currency, sum(cost) AS cost,
       coalesce(sum(tokens) FILTER (WHERE direction = 'input'), 0) AS prompt_tokens,
       coalesce(sum(tokens) FILTER (WHERE direction = 'input' AND cache = 'read'), 0) AS cached_prompt_tokens,
       coalesce(sum(tokens) FILTER (WHERE direction = 'output'), 0) AS generation_tokens,
       sum(cost) FILTER (WHERE direction = 'input') AS prompt_cost,
       sum(cost) FILTER (WHERE direction = 'output') AS generation_cost
FROM t GROUP BY ALL ORDER BY cost DESC, provider, api_model, currency
"""  # noqa: S608 - constants and validated dims; values bound


def bought_models(cur: duckdb.DuckDBPyConnection, params: ReportParams) -> list[Row]:
    """Token-billed models on the bill over the window, with cost per 1k tokens as self-hosted rows have."""
    where, binds = filter_sql(params)
    cost = "billed_cost" if params.cost_basis == "billed" else "effective_cost"
    rows = fetch_rows(cur, BOUGHT.format(cost=cost, where=where), {"start": params.start, "end": params.end, **binds})
    for r in rows:
        for k in ("prompt_tokens", "cached_prompt_tokens", "generation_tokens"):
            r[k] = int(r[k])
        r["cost_per_1k_generated_tokens"] = _per_1k(r["cost"], r["generation_tokens"])
        r["cost_per_1k_prompt_tokens"] = _per_1k(r["prompt_cost"], r["prompt_tokens"])
        r["cost_per_1k_generation_tokens"] = _per_1k(r["generation_cost"], r["generation_tokens"])
    return rows


def unit_economics(store: Store, settings: Settings, params: ReportParams) -> Report:
    """The report, and beside its self-hosted groups the models bought per token (`bought_models`)."""
    def build_all(cur: duckdb.DuckDBPyConnection, att: Attribution) -> Report:
        report = build(cur, att, params)
        report.tables["bought_models"] = bought_models(cur, params)
        return report

    # Periods are days or longer: priced from the daily rollups, never the hourly facts.
    return with_attribution(store, settings, params, build_all, reads=READS)
