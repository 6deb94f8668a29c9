"""Weekly finance report (docs/definitions.md 6.4): one ISO week next to the week before, with a control total."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import duckdb

from finops.attribution import STEPS, Attribution
from finops.attribution.stored import attribute_stored
from finops.money import CONTEXT
from finops.reports import anomalies, budgets, idle_gpus, recommendations, unit_economics, untagged
from finops.reports.forecast import history_window
from finops.reports.model import Report, Row, params_dict, ratio, snapshot
from finops.reports.params import MIN_DATE, ReportParams
from finops.settings import Settings
from finops.store import Store
from finops.tags import UNALLOCATED
from finops.timeutil import iso_week

# The week's unit economics per model with the prompt/generation split and the prefix cache.
MODEL_FIELDS = ("model_id", "cost", "prompt_tokens", "generation_tokens", "cached_prompt_tokens", "prompt_cost",
                "generation_cost", "cost_per_1k_prompt_tokens", "cost_per_1k_generation_tokens", "cache_hit_rate",
                "cache_savings", "split_basis", "gpu_hours", "avg_gpu_busy", "idle_cost")

SUMMARY = (  # (metric, unit)
    ("total_cost", "money"), ("attributed_cost", "money"), ("unallocated_cost", "money"),
    ("untagged_share", "ratio"), ("idle_cost", "money"), ("prompt_tokens", "tokens"),
    ("generation_tokens", "tokens"), ("cost_per_1k_generated_tokens", "money"),
)


def _change(this: Any, prev: Any) -> tuple[Any, Any]:
    if this is None or prev is None:
        return None, None
    return this - prev, ratio(Decimal(this - prev), prev) if prev else None


def _weeks(cur: duckdb.DuckDBPyConnection, settings: Settings, p: ReportParams,
           before: ReportParams) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tables of the week reported (`p`) and of the week `before` it. The week reported is set up
    alone for what only it shows: idle GPUs hour by hour and the savings table. Then one attribution
    over both weeks gives every table both show from one pass, each row in the week its day is in
    (the week before's idle cost from its GPU-days, without their hours)."""
    p, before = (w.model_copy(update={"granularity": "total"}) for w in (p, before))  # one period a week
    att = attribute_stored(cur, p, settings, reads={*idle_gpus.READS, *recommendations.READS})
    idle = idle_gpus.build(cur, att, p)
    savings = recommendations.build(cur, att, p, settings, idle=idle if not p.filters else None)
    both = before.model_copy(update={"end": p.end})
    span = attribute_stored(cur, both, settings, reads={"att_alloc", *unit_economics.READS, *untagged.reads(p),
                                                        *idle_gpus.IDLE_COST_READS})
    # Each week's ingested total, in the currency of both (a window mixing currencies needs a rate).
    atts = (Attribution(span.currency, CONTEXT.subtract(span.ingested_total, att.ingested_total)),
            Attribution(span.currency, att.ingested_total))
    windows = ((atts[0], before), (atts[1], p))
    steps = {True: dict.fromkeys(STEPS, Decimal(0)), False: dict.fromkeys(STEPS, Decimal(0))}
    for this_week, step, amount in cur.execute(
            "SELECT day >= $start, step, sum(amount) FROM att_alloc GROUP BY ALL", {"start": p.start}).fetchall():
        steps[this_week][step] = Decimal(amount)
    tables = unit_economics.build_windows(cur, windows, (p.group_by, ("team",), ("project",), ("model_id",)))
    spend = untagged.build_windows(cur, windows)
    idle_before = idle_gpus.idle_cost(cur, atts[0], before)
    weeks = []
    for this_week, (a, _), (rows, team, project, model), unt in zip((False, True), windows, tables, spend, strict=True):
        weeks.append({"att": a, "steps": steps[this_week], "rows": rows, "team": team, "project": project,
                      "model": model, "untagged": unt, "idle": idle if this_week else idle_before})
    weeks[1]["savings"] = savings
    return weeks[1], weeks[0]


def _keyed(report: Report, dims: tuple[str, ...]) -> dict[tuple[Any, ...], Row]:
    return {tuple(r[d] for d in dims): r for r in report.rows}


def _compare(this: Report, prev: Report, dims: tuple[str, ...], fields: tuple[str, ...]) -> list[Row]:
    a, b = _keyed(this, dims), _keyed(prev, dims)
    rows = []
    for key in list(a) + [k for k in b if k not in a]:
        cur_row, prev_row = a.get(key, {}), b.get(key, {})
        row: Row = dict(zip(dims, key, strict=True))
        for f in fields:
            now = cur_row.get(f, Decimal(0) if f == "cost" else None)
            before = prev_row.get(f, Decimal(0) if f == "cost" else None)
            change, pct = _change(now, before)
            prefix = "" if f == "cost" else f + "_"
            row.update({f: now, f"previous_{f}" if f != "cost" else "previous_cost": before,
                        f"{prefix}change": change, f"{prefix}change_pct": pct})
        rows.append(row)
    return rows


def _summary(this: dict[str, Any], prev: dict[str, Any]) -> list[Row]:
    def values(x: dict[str, Any]) -> dict[str, Any]:
        tot = x["rows"].totals
        unalloc = x["steps"]["unallocated"]
        return {
            "total_cost": x["att"].ingested_total, "attributed_cost": tot["cost"] - unalloc,
            "unallocated_cost": unalloc, "untagged_share": x["untagged"].totals["untagged_share"],
            "idle_cost": x["idle"].totals["idle_cost"], "prompt_tokens": tot["prompt_tokens"],
            "generation_tokens": tot["generation_tokens"],
            "cost_per_1k_generated_tokens": tot["cost_per_1k_generated_tokens"],
        }

    a, b = values(this), values(prev)
    rows = []
    for metric, unit in SUMMARY:
        change, pct = _change(a[metric], b[metric])
        rows.append({"metric": metric, "unit": unit, "this_week": a[metric], "previous_week": b[metric],
                     "change": change, "change_pct": pct})
    return rows


def weekly(store: Store, settings: Settings, params: ReportParams) -> Report:
    span = params.end - params.start
    prev_params = params.model_copy(update={"start": params.start - span, "end": params.start})
    with snapshot(store) as cur:
        # The widest window first: under another shared-cost key, the weeks read what it weighed.
        watch = _watch(cur, settings, params)
        this, prev = _weeks(cur, settings, params, prev_params)
    dims = params.group_by
    rows = _compare(this["rows"], prev["rows"], dims, ("cost",))
    rows.sort(key=lambda r: (any(r[d] == UNALLOCATED for d in dims), -r["cost"]))
    ingested = this["att"].ingested_total
    recon = [{"item": f"attributed by {s.replace('_', ' ')}" if s != "unallocated" else UNALLOCATED,
              "amount": this["steps"][s]} for s in STEPS]
    recon += [
        {"item": "control total (sum of rows)", "amount": sum((r["cost"] for r in rows), Decimal(0))},
        {"item": "ingested total", "amount": ingested},
    ]
    tables = {
        "summary": _summary(this, prev),
        "chargeback_team": _compare(this["team"], prev["team"], ("team",), ("cost",)),
        "chargeback_project": _compare(this["project"], prev["project"], ("project",), ("cost",)),
        "unit_economics_by_model": _compare(this["model"], prev["model"], ("model_id",),
                                            ("cost", "generation_tokens", "cost_per_1k_generated_tokens")),
        "idle_gpus": _idle(this["idle"], prev["idle"]),
        "untagged_spend": [r for r in this["untagged"].rows if r["untagged_cost"] > 0],
        "savings": recommendations.top(this["savings"], settings),
        "models": [{k: r[k] for k in MODEL_FIELDS} for r in this["model"].rows],
        **watch,
        "reconciliation": recon,
    }
    totals: Row = {
        "cost": sum((r["cost"] for r in rows), Decimal(0)), "previous_cost": prev["att"].ingested_total,
        "ingested_total": ingested, "control_total_matches": sum((r["cost"] for r in rows), Decimal(0)) == ingested,
        "week": iso_week(params.start) if span == timedelta(days=7) and params.start.isoweekday() == 1 else None,
    }
    return Report("weekly", params_dict(params, this["att"].currency), rows, totals, tables,
                  currency=this["att"].currency)


def _watch(cur: duckdb.DuckDBPyConnection, settings: Settings, p: ReportParams) -> dict[str, list[Row]]:
    """The budgets as of the week's end and the week's anomalies per team (one more attribution
    over the history both need, on the same snapshot)."""
    listed = budgets.listed(cur, p.filters)
    cfg, fc = settings.anomalies, settings.forecast
    history_start = max(p.start - timedelta(days=cfg.history_days), MIN_DATE)
    wide = history_window(p, fc)
    wide = wide.model_copy(update={"start": min(wide.start, history_start, budgets.first_day(listed, p.end)),
                                   "granularity": "total"})
    att = attribute_stored(cur, wide, settings, reads={*budgets.READS, *anomalies.READS})
    by_team = p.model_copy(update={"group_by": ("team",)})
    return {"budgets": budgets.build(cur, att, p, fc, listed).rows,
            "anomalies": anomalies.build(cur, att, by_team, cfg, history_start).rows}


def _idle(this: Report, prev: Report) -> list[Row]:
    before = {(r["gpu_uuid"], r["mig_instance"]): r["idle_cost"] for r in prev.rows}
    return [
        {**r, "previous_idle_cost": before.get((r["gpu_uuid"], r["mig_instance"]), Decimal(0))}
        for r in this.rows if r["idle_hours"] > 0
    ]
