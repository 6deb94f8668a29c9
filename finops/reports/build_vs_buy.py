"""Build vs buy (docs/definitions.md 6.9): per model, what self-hosting cost per 1M prompt and
generated tokens over the window, beside what the same tokens would have cost at each configured API
offering (effective-dated: each day at the price valid that day), the saving or premium, and the
GPU busy fraction at which self-hosting would match the API.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import duckdb

from finops.attribution import Attribution
from finops.reports import unit_economics
from finops.reports.model import PLACES, Report, Row, fetch_rows, filter_sql, params_dict, with_attribution
from finops.reports.params import ReportParams
from finops.settings import Settings
from finops.settings.build_vs_buy import Offering
from finops.store import Store
from finops.tags import UNALLOCATED, UNTAGGED, TagRules

MILLION = Decimal(1_000_000)


def _per_1m(cost: Decimal | None, tokens: int) -> Decimal | None:
    return (cost * MILLION / tokens).quantize(PLACES) if cost is not None and tokens else None


def api_cost(days: list[Row], prices: list[Offering]) -> tuple[Decimal, int]:
    """What the days' tokens cost at one offering whose `prices` are effective-dated (each day at the
    price valid then), and the days priced. Cached prompt tokens take the cached input price where
    the offering has one."""
    total, priced = Decimal(0), 0
    for d in days:
        o = next((p for p in prices if p.valid_on(d["day"])), None)
        if o is None:
            continue
        cached = (d["cached"] or 0) if o.cached_input_per_1m is not None else 0
        total += ((d["prompt"] - cached) * o.input_per_1m + cached * (o.cached_input_per_1m or 0)
                  + d["gen"] * o.output_per_1m) / MILLION
        priced += 1
    return total.quantize(PLACES), priced


def build(cur: duckdb.DuckDBPyConnection, att: Attribution, params: ReportParams, offerings: list[Offering]) -> Report:
    by_model = unit_economics.build(cur, att, params.model_copy(update={"group_by": ("model_id",),
                                                                         "granularity": "total"}))
    where, binds = filter_sql(params)
    days: dict[str, list[Row]] = defaultdict(list)
    for r in fetch_rows(cur, f"""SELECT coalesce(model_id, '{UNTAGGED}') AS model_id, day,
                                        sum(prompt_tokens)::BIGINT AS prompt, sum(generation_tokens)::BIGINT AS gen,
                                        sum(cached_prompt_tokens)::BIGINT AS cached
                                 FROM att_tok WHERE {where} GROUP BY ALL ORDER BY day""", binds):  # noqa: S608
        days[r["model_id"]].append(r)
    rows: list[Row] = []
    for m in by_model.rows:
        model = m["model_id"]
        if model in (UNALLOCATED, UNTAGGED) or not m["generation_tokens"]:
            continue
        ours = {"model_id": model, "cost": m["cost"], "prompt_tokens": m["prompt_tokens"],
                "generation_tokens": m["generation_tokens"], "cached_prompt_tokens": m["cached_prompt_tokens"],
                "cost_per_1m_prompt_tokens": _per_1m(m["prompt_cost"], m["prompt_tokens"]),
                "cost_per_1m_generation_tokens": _per_1m(m["generation_cost"], m["generation_tokens"]),
                "avg_gpu_busy": m["avg_gpu_busy"]}
        matching: dict[tuple[str, str], list[Offering]] = defaultdict(list)
        for o in offerings:
            if o.model_id == model:
                matching[(o.provider, o.model)].append(o)
        served = len(days.get(model, []))
        for (provider, api_model), prices in matching.items():
            priced_cost, priced_days = api_cost(days.get(model, []), prices)
            currency = prices[0].currency
            # Compared only when every day with tokens had a price, in the report's currency.
            comparable = currency == att.currency and priced_days == served
            row = {**ours, "provider": provider, "api_model": api_model,
                   "example_prices": any(p.example for p in prices), "api_currency": currency,
                   "priced_days": priced_days, "api_cost": priced_cost if comparable else None,
                   "saving": priced_cost - m["cost"] if comparable else None, "break_even_busy": None}
            # Self-hosting costs the same whatever the GPUs do, while the API bill grows with the tokens,
            # which grow with the GPUs' busy fraction: the two meet at busy x cost / api_cost.
            if row["api_cost"] and m["avg_gpu_busy"] is not None:
                row["break_even_busy"] = round(float(Decimal(str(m["avg_gpu_busy"])) * m["cost"] / row["api_cost"]), 6)
            rows.append(row)
        if not matching:
            rows.append({**ours, "provider": None, "api_model": None, "example_prices": None, "api_currency": None,
                         "priced_days": 0, "api_cost": None, "saving": None, "break_even_busy": None})
    rows.sort(key=lambda r: (-r["cost"], r["model_id"], r["provider"] or "", r["api_model"] or ""))
    models = {r["model_id"]: r["cost"] for r in rows}
    totals: Row = {"cost": sum(models.values(), Decimal(0)), "models": len(models),
                   "offerings": sum(r["provider"] is not None for r in rows)}
    return Report("build-vs-buy", params_dict(params, att.currency), rows, totals, currency=att.currency)


def build_vs_buy(store: Store, settings: Settings, params: ReportParams) -> Report:
    # An offering names our model as a tag value would: normalised the same way ("Llama-70B" is llama-70b).
    rules = TagRules.from_settings(settings)
    offerings = [o.model_copy(update={"model_id": rules.value(o.model_id) or o.model_id})
                 for o in settings.build_vs_buy.offerings]
    return with_attribution(store, settings, params, lambda cur, att: build(cur, att, params, offerings), hourly=False)
