"""Savings recommendations (issue 13): what to switch off, consolidate, move to spot or commit.

Every recommendation carries the money it would save per month and the evidence behind it. Rules:
- Month: a saving seen over the window is scaled as (saving in the window / days observed) x
  `days_per_month` (default 30.4375 = 365.25 / 12), rounded half-up to the cent. Days observed are
  the UTC days of the window on which the thing had facts (GPU-hours, cost lines or tokens); a
  commitment saves its daily minimum x discount every day of the month.
- A resource's cost is claimed once: idle shutdown first, then consolidation (without resources
  already claimed), then spot and commitment (on resources neither of those claimed; spot before
  commitment). A unit cost outlier's saving is its excess over the model's median net of the idle
  and consolidation savings already found on the same group.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import duckdb

from finops.attribution import Attribution
from finops.reports import idle_gpus
from finops.reports.model import Report, Row, fetch_rows, params_dict, ratio, with_attribution
from finops.reports.params import ReportParams
from finops.reports.untagged import ACCELERATOR_REGEX
from finops.settings import Settings
from finops.settings.recommendations import RecommendationSettings
from finops.store import Store
from finops.tags import DIMS, UNALLOCATED, UNTAGGED

# The att_* relations `build` reads.
READS = ("att_alloc", "att_cost", "att_gpu", "att_gpu_cost", "att_gpu_hours", "att_inv", "att_tok")
KINDS = ("idle_shutdown", "consolidation", "spot", "commitment", "unit_cost_outlier")
CONFIDENCE = ("high", "medium", "low")
CENT = Decimal("0.01")
PRECISION = Decimal("1e-12")  # as money is stored
# FOCUS PricingCategory values meaning on-demand (1.0 names and 1.1+ names).
ON_DEMAND = ("standard", "on-demand", "ondemand", "on demand")
# Compute services whose instances can run on spot (besides GPU families and GPU telemetry).
COMPUTE_REGEX = r"elastic compute cloud|\bec2\b|virtual machines|compute engine"
ASSUMED = "cost lines without a pricing category (and no commitment) taken as on-demand; "
# The units earlier recommendations claimed, as a set to anti-join (a list tested row by row costs
# a comparison per claimed unit and row).
CLAIMED = "(SELECT unnest(CAST($claimed AS VARCHAR[])))"


@dataclass
class Rec:
    kind: str
    resource: str | None
    dims: dict[str, str]
    window_saving: Decimal  # saving over the days observed, before scaling to a month
    monthly_saving: Decimal
    confidence: str
    action: str
    evidence: dict[str, Any]
    assumptions: str
    claims: set[str] = field(default_factory=set)


def monthly(amount: Decimal, days: int, rs: RecommendationSettings) -> Decimal:
    """Scale a saving seen over `days` observed days to a month, exact, rounded half-up to the cent."""
    return (Decimal(amount) * rs.days_per_month / days).quantize(CENT, ROUND_HALF_UP)


def _lower(confidence: str) -> str:
    return CONFIDENCE[min(CONFIDENCE.index(confidence) + 1, len(CONFIDENCE) - 1)]


def _scaling(days: int, rs: RecommendationSettings, p: ReportParams) -> str:
    return (f"window {p.start}..{p.end} (end exclusive): saving per observed day ({days} day(s)) x "
            f"{rs.days_per_month} days per month")


def _name(names: dict[str, str], unit: str) -> str:
    """The bill's resource id for a resource key (the key itself, or the host, when nothing billed it)."""
    return names.get(unit) or unit


def _label(dims: dict[str, str]) -> str:
    return "/".join(dims[d] for d in DIMS if d in dims)


# --- idle shutdown -------------------------------------------------------------------------------

UNITS = """
SELECT gpu_uuid, nullif(mig_instance, '') AS mig_instance,
       any_value(coalesce(rkey, lower(host), gpu_uuid)) AS unit, count(DISTINCT day) AS days
FROM att_gpu_cost GROUP BY gpu_uuid, mig_instance
"""


def idle_shutdown(cur: duckdb.DuckDBPyConnection, att: Attribution, p: ReportParams,
                  rs: RecommendationSettings, names: dict[str, str], idle: Report | None = None) -> list[Rec]:
    """Resources whose GPUs sat idle for stretches of at least `min_idle_streak_hours` (`idle`: the
    idle GPUs report of the whole fleet for the window, when the caller has it)."""
    gpus = (idle or idle_gpus.build(cur, att, p)).rows
    where = {(r["gpu_uuid"], r["mig_instance"]): r for r in fetch_rows(cur, UNITS)}
    by_unit: dict[str, list[Row]] = defaultdict(list)
    for g in gpus:
        by_unit[where[(g["gpu_uuid"], g["mig_instance"])]["unit"]].append(g)
    recs = []
    for unit, rows in sorted(by_unit.items()):
        hits = [g for g in rows if g["longest_idle_streak_hours"] >= rs.min_idle_streak_hours]
        if not hits:
            continue
        days = max(where[(g["gpu_uuid"], g["mig_instance"])]["days"] for g in rows)
        saving = sum((g["idle_cost"] for g in hits), Decimal(0))
        hours, idle = sum(g["hours_observed"] for g in rows), sum(g["idle_hours"] for g in hits)
        streak = max(g["longest_idle_streak_hours"] for g in hits)
        full = all(g["idle_hours"] == g["hours_observed"] for g in rows)
        no_tokens = all(g["no_tokens_served"] for g in rows)
        top = max(hits, key=lambda g: g["idle_cost"])
        name = _name(names, unit)
        if full:
            action = (f"Stop {name}: its {len(rows)} GPU(s) were idle in all {hours} observed GPU-hours"
                      f"{' and served no tokens' if no_tokens else ''}.")
        else:
            action = (f"Schedule {name} off during its idle stretches (longest {streak} h) or move its work to "
                      f"fewer GPUs: {idle} of {hours} GPU-hours were idle.")
        confidence = "high" if full else "medium"
        if max(g["hours_observed"] for g in rows) < 24:
            confidence = _lower(confidence)
        recs.append(Rec(
            "idle_shutdown", name, {d: top[d] for d in DIMS}, saving, monthly(saving, days, rs),
            confidence, action,
            {"window_start": p.start, "window_end": p.end, "days_observed": days, "gpus": len(rows),
             "gpu_hours_observed": hours, "idle_gpu_hours": idle, "idle_cost": saving,
             "longest_idle_streak_hours": streak, "whole_resource_idle": full, "no_tokens_served": no_tokens,
             "idle_threshold": p.idle_threshold},
            f"idle below busy {p.idle_threshold} in stretches of at least {rs.min_idle_streak_hours} h; the "
            f"pattern continues; {_scaling(days, rs, p)}",
            {unit}))
    return recs


# --- consolidation -------------------------------------------------------------------------------

def _keys(p: ReportParams) -> tuple[str, ...]:
    """Dims of a model group: the report's group_by, model_id (groups are compared per model) and the
    filtered dims (so that a team-scoped report can tell its own groups)."""
    return tuple(d for d in DIMS if d in p.group_by or d == "model_id" or d in p.filters)


def _consolidation_sql(keys: tuple[str, ...]) -> str:
    cols = ", ".join(f"coalesce({d}, '{UNTAGGED}') AS {d}" for d in keys)
    k = ", ".join(keys)
    # Model groups on units no earlier recommendation claimed: their GPU-hours per group and hour for
    # the peak, their GPU-days per unit and GPU for the cost (a day's hours all cost its hour cost).
    where = f"WHERE model_id IS NOT NULL AND coalesce(rkey, lower(host), gpu_uuid) NOT IN {CLAIMED}"
    return f"""
    CREATE OR REPLACE TEMP TABLE rec_groups AS
    SELECT {k}, max(hour_busy) AS peak, count(DISTINCT CAST(hour_start AS DATE)) AS days FROM (
        -- A time-sliced workload's part of its GPU's busy, summed exactly (a float sum depends on order).
        SELECT {cols}, hour_start, sum(CAST(busy * coalesce(time_share, 1.0) AS DECIMAL(18,12))) AS hour_busy
        FROM att_gpu_hours {where} GROUP BY ALL
    ) GROUP BY ALL;
    CREATE OR REPLACE TEMP TABLE rec_units AS
    WITH per_gpu AS (
        SELECT {cols}, coalesce(rkey, lower(host), gpu_uuid) AS unit, gpu_uuid, mig_instance,
               sum(hour_cost * hours) AS cost
        FROM att_gpu_cost {where} GROUP BY ALL
    )
    SELECT {k}, unit, count(*) AS gpus, sum(cost) AS cost,
           unit IN (SELECT unit FROM (SELECT DISTINCT unit, {k} FROM per_gpu) GROUP BY unit HAVING count(*) = 1)
               AS exclusive
    FROM per_gpu GROUP BY {k}, unit;
    """  # noqa: S608 - dim names are constants


def consolidation(cur: duckdb.DuckDBPyConnection, p: ReportParams, rs: RecommendationSettings,
                  names: dict[str, str], claimed: set[str]) -> list[Rec]:
    """Model groups whose peak combined busy fits on fewer GPUs with `headroom` to spare."""
    keys = _keys(p)
    for statement in filter(str.strip, _consolidation_sql(keys).split(";\n")):
        cur.execute(statement, {"claimed": sorted(claimed)} if "$claimed" in statement else None).fetchall()
    units: dict[tuple[str, ...], list[Row]] = defaultdict(list)
    for u in fetch_rows(cur, "SELECT * FROM rec_units"):
        units[tuple(u[d] for d in keys)].append(u)
    recs = []
    for g in fetch_rows(cur, "SELECT * FROM rec_groups"):
        group = tuple(g[d] for d in keys)
        if g["model_id"] == UNTAGGED:
            continue
        peak = Decimal(str(round(float(g["peak"]), 6)))
        needed = max(1, math.ceil(peak / (1 - rs.headroom)))
        remaining = total = sum(u["gpus"] for u in units[group])
        freed = []
        for u in sorted(units[group], key=lambda u: (u["cost"], u["unit"])):  # cheapest first: conservative
            if u["exclusive"] and remaining - u["gpus"] >= needed:
                freed.append(u)
                remaining -= u["gpus"]
        if not freed:
            continue
        saving = sum((u["cost"] for u in freed), Decimal(0))
        dims = dict(zip(keys, group, strict=True))
        released = ", ".join(_name(names, u["unit"]) for u in freed)
        recs.append(Rec(
            "consolidation", released, dims, saving, monthly(saving, g["days"], rs), "medium",
            f"Serve {dims['model_id']} for {_label(dims)} on {remaining} GPU(s) instead of {total} and release "
            f"{released}: its peak combined busy was {peak} GPUs.",
            {"window_start": p.start, "window_end": p.end, "days_observed": g["days"], "gpus": total,
             "peak_combined_busy": peak, "gpus_needed": needed, "headroom": rs.headroom,
             "released": [{"resource": _name(names, u["unit"]), "gpus": u["gpus"], "cost": u["cost"]}
                          for u in freed]},
            f"the peak hour of the window repeats; headroom {rs.headroom} (each GPU busy at most "
            f"{1 - rs.headroom}); the cheapest resources are released; {_scaling(g['days'], rs, p)}",
            {u["unit"] for u in freed}))
    return recs


# --- spot and commitment -------------------------------------------------------------------------

def _on_demand_sql(rs: RecommendationSettings) -> str:
    dims = ", ".join(f"CASE WHEN a.step = 'unallocated' THEN '{UNALLOCATED}' "
                     f"ELSE coalesce(a.{d}, '{UNTAGGED}') END AS {d}" for d in DIMS)
    batch = "".join(f" OR list_contains(CAST($batch_{d} AS VARCHAR[]), lower(a.{d}))"
                    for d in rs.batch_workloads)
    return f"""
    CREATE OR REPLACE TEMP TABLE rec_od AS
    SELECT c.day, c.resource_key AS unit, {dims},
           greatest(a.amount - a.committed_amount, 0) AS amount, c.pricing_category IS NULL AS assumed,
           (c.resource_key IN (SELECT rkey FROM att_gpu WHERE rkey IS NOT NULL)
            OR regexp_matches(lower(coalesce(i.instance_type, '')), $accel)
            OR regexp_matches(lower(coalesce(c.resource_type, '')), $accel)
            OR regexp_matches(lower(coalesce(c.service_name, '')), $accel)) AS gpu,
           regexp_matches(lower(coalesce(c.service_name, '')), $compute) AS compute_service,
           coalesce(list_contains(CAST($nonprod AS VARCHAR[]), lower(a.environment)){batch}, false) AS nonprod
    FROM att_alloc a JOIN att_cost c USING (line_id) LEFT JOIN att_inv i ON i.resource_key = c.resource_key
    WHERE c.resource_key IS NOT NULL AND coalesce(lower(c.charge_category), 'usage') = 'usage'
      AND (list_contains(CAST($on_demand AS VARCHAR[]), lower(c.pricing_category)) OR c.pricing_category IS NULL)
    """  # noqa: S608 - dim names are validated constants, values bound


SPOT = f"""
SELECT unit, project, team, environment, model_id, sum(amount) AS amount, count(DISTINCT day) AS days,
       bool_or(assumed) AS assumed
FROM rec_od WHERE nonprod AND amount > 0 AND (gpu OR compute_service)
    AND unit NOT IN {CLAIMED}
GROUP BY ALL ORDER BY unit
"""  # noqa: S608 - constants only

COMMIT_DAYS = f"""
SELECT unit, day, sum(amount) AS amount, bool_or(assumed) AS assumed,
       arg_max([project, team, environment, model_id], amount) AS dims
FROM rec_od WHERE gpu AND NOT nonprod AND amount > 0 AND unit NOT IN {CLAIMED}
GROUP BY ALL ORDER BY unit, day
"""  # noqa: S608 - constants only

COVERAGE = """
SELECT resource_key AS unit, sum(cost) AS cost, sum(committed_cost) AS committed FROM att_cost
WHERE resource_key IS NOT NULL GROUP BY ALL
"""


def spot(cur: duckdb.DuckDBPyConnection, p: ReportParams, rs: RecommendationSettings,
         names: dict[str, str], claimed: set[str]) -> list[Rec]:
    """On-demand compute of non-production or batch workloads, priced at the spot discount."""
    recs = []
    for r in fetch_rows(cur, SPOT, {"claimed": sorted(claimed)}):
        dims = {d: r[d] for d in DIMS}
        saving = r["amount"] * rs.spot_discount
        name = _name(names, r["unit"])
        recs.append(Rec(
            "spot", name, dims, saving, monthly(saving, r["days"], rs),
            "low" if r["assumed"] else "medium",
            f"Run {name} ({dims['environment']}) on spot or preemptible capacity instead of on-demand.",
            {"window_start": p.start, "window_end": p.end, "days_observed": r["days"],
             "on_demand_cost": r["amount"], "pricing_category_known": not r["assumed"]},
            f"estimate: spot costs {1 - rs.spot_discount} of on-demand (discount {rs.spot_discount}) and the "
            f"workload tolerates interruptions; {ASSUMED if r['assumed'] else ''}{_scaling(r['days'], rs, p)}",
            {r["unit"]}))
    return recs


def commitment(cur: duckdb.DuckDBPyConnection, p: ReportParams, rs: RecommendationSettings,
               names: dict[str, str], claimed: set[str]) -> list[Rec]:
    """Production GPU resources with on-demand spend on every recent day: commit to their daily minimum."""
    [(last_day,)] = cur.execute("SELECT max(day) FROM att_cost").fetchall()
    coverage = {r["unit"]: r for r in fetch_rows(cur, COVERAGE)}
    per_unit: dict[str, dict[date, Row]] = defaultdict(dict)
    for r in fetch_rows(cur, COMMIT_DAYS, {"claimed": sorted(claimed)}):
        per_unit[r["unit"]][r["day"]] = r
    recs = []
    for unit, days in sorted(per_unit.items()):
        run, day = [], last_day
        while day in days:  # the steady run: consecutive days up to the last day with cost data
            run.append(days[day])
            day -= timedelta(days=1)
        if len(run) < rs.commitment_min_days:
            continue
        base = min(r["amount"] for r in run)
        saving = base * rs.commitment_discount * len(run)
        top = max(run, key=lambda r: r["amount"])
        dims = dict(zip(DIMS, top["dims"], strict=True))
        assumed = any(r["assumed"] for r in run)
        name = _name(names, unit)
        cov = coverage[unit]
        recs.append(Rec(
            "commitment", name, dims, saving, monthly(saving, len(run), rs),
            "low" if assumed else "medium",
            f"Cover {name}'s steady {base.quantize(CENT, ROUND_HALF_UP)} a day of on-demand GPU spend with a "
            f"commitment (reservation or savings plan).",
            {"window_start": p.start, "window_end": p.end, "days_observed": len(run),
             "steady_days": [run[-1]["day"], run[0]["day"]], "daily_on_demand_min": base,
             "daily_on_demand_max": max(r["amount"] for r in run),
             "on_demand_cost": sum((r["amount"] for r in run), Decimal(0)),
             "commitment_coverage": ratio(cov["committed"], cov["cost"])},
            f"a commitment sized to the lowest daily on-demand spend of the last {len(run)} days is fully used; "
            f"commitment discount {rs.commitment_discount}; "
            f"{ASSUMED if assumed else ''}"
            f"window {p.start}..{p.end} (end exclusive): saving = daily minimum x discount x "
            f"{rs.days_per_month} days per month",
            {unit}))
    return recs


# --- unit cost outliers --------------------------------------------------------------------------

def _outlier_sql(keys: tuple[str, ...]) -> str:
    cols = ", ".join(f"coalesce({d}, '{UNTAGGED}') AS {d}" for d in keys)
    return f"""
    WITH c AS (SELECT {cols}, sum(amount) AS cost FROM att_alloc
               WHERE model_id IS NOT NULL AND step <> 'unallocated' GROUP BY ALL),
         t AS (SELECT {cols}, sum(generation_tokens) AS gen, count(DISTINCT day) AS days FROM att_tok
               WHERE model_id IS NOT NULL GROUP BY ALL)
    SELECT * FROM c JOIN t USING ({', '.join(keys)}) WHERE t.gen > 0
    """  # noqa: S608 - dim names are constants


def _median(values: list[Decimal]) -> Decimal:
    v, n = sorted(values), len(values)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def unit_cost_outliers(cur: duckdb.DuckDBPyConnection, p: ReportParams, rs: RecommendationSettings,
                       found: list[Rec]) -> list[Rec]:
    """Groups paying far more per 1k generated tokens than the median of the groups serving that model."""
    keys = _keys(p)
    by_model: dict[str, list[Row]] = defaultdict(list)
    for g in fetch_rows(cur, _outlier_sql(keys)):
        g["per_1k"] = Decimal(g["cost"]) * 1000 / g["gen"]
        by_model[g["model_id"]].append(g)
    recs = []
    for model, groups in sorted(by_model.items()):
        if model == UNTAGGED or len(groups) < rs.outlier_min_groups:
            continue
        median = _median([g["per_1k"] for g in groups])
        for g in groups:
            if g["per_1k"] <= rs.outlier_factor * median:
                continue
            dims = {d: g[d] for d in keys}
            excess = g["cost"] - median * g["gen"] / 1000
            # Idle or consolidation savings already found on this group explain part of the excess.
            claimed = sum((r.window_saving for r in found if r.kind in ("idle_shutdown", "consolidation")
                           and all(r.dims.get(d) == v for d, v in dims.items())), Decimal(0))
            saving = excess - claimed
            if saving <= 0:
                continue
            q, times = Decimal("1e-6"), (g["per_1k"] / median).quantize(Decimal("0.1"))
            recs.append(Rec(
                "unit_cost_outlier", None, dims, saving, monthly(saving, g["days"], rs), "low",
                f"Review batching and instance size for {model} in {_label(dims)}: it costs "
                f"{g['per_1k'].quantize(q)} per 1k generated tokens, {times} times the median "
                f"{median.quantize(q)} of the {len(groups)} groups serving it.",
                {"window_start": p.start, "window_end": p.end, "days_observed": g["days"], "cost": g["cost"],
                 "generation_tokens": g["gen"], "cost_per_1k_generated_tokens": g["per_1k"].quantize(PRECISION),
                 "model_median": median.quantize(PRECISION), "groups_compared": len(groups),
                 "excess_cost": excess, "already_claimed": claimed},
                f"the group could serve at the model's median cost per 1k generated tokens; outlier above "
                f"{rs.outlier_factor} x median; excess net of idle and consolidation savings on the group; "
                f"{_scaling(g['days'], rs, p)}"))
    return recs


# --- the report ----------------------------------------------------------------------------------

def _row(r: Rec, params: ReportParams) -> Row:
    return {"kind": r.kind, "resource": r.resource, **{d: r.dims.get(d) for d in params.group_by},
            "monthly_saving": r.monthly_saving, "confidence": r.confidence, "action": r.action,
            "evidence": r.evidence, "assumptions": r.assumptions}


def build(cur: duckdb.DuckDBPyConnection, att: Attribution, params: ReportParams, settings: Settings,
          rs: RecommendationSettings | None = None, idle: Report | None = None) -> Report:
    """Recommendations on the attribution already built on `cur`, ranked by monthly saving. `idle` is
    the unfiltered idle GPUs report of the same window and threshold, if already built."""
    rs = rs or settings.recommendations
    # The whole fleet informs medians and claims; rows are filtered last.
    p = params.model_copy(update={"filters": {}, "group_by": _keys(params)})
    names = dict(cur.execute("SELECT resource_key, max(resource_id) FROM att_cost "
                             "WHERE resource_key IS NOT NULL GROUP BY ALL").fetchall())
    recs = idle_shutdown(cur, att, p, rs, names, idle)
    claimed = {u for r in recs for u in r.claims}
    recs += consolidation(cur, p, rs, names, claimed)
    claimed = {u for r in recs for u in r.claims}
    cur.execute(_on_demand_sql(rs), {
        "accel": ACCELERATOR_REGEX, "compute": COMPUTE_REGEX, "nonprod": list(rs.non_production_environments),
        "on_demand": list(ON_DEMAND), **{f"batch_{d}": list(v) for d, v in rs.batch_workloads.items()},
    }).fetchall()
    recs += spot(cur, p, rs, names, claimed)
    claimed = {u for r in recs for u in r.claims}
    recs += commitment(cur, p, rs, names, claimed)
    recs += unit_cost_outliers(cur, p, rs, recs)
    recs = [r for r in recs if r.monthly_saving >= rs.min_monthly_saving
            and all(r.dims.get(d) == v for d, v in params.filters.items())]
    recs.sort(key=lambda r: (-r.monthly_saving, KINDS.index(r.kind), r.resource or "", _label(r.dims)))
    rows = [_row(r, params) for r in recs]
    totals: Row = {
        "recommendations": len(rows), "monthly_saving": sum((r.monthly_saving for r in recs), Decimal(0)),
        "by_kind": {k: sum((r.monthly_saving for r in recs if r.kind == k), Decimal(0))
                    for k in KINDS if any(r.kind == k for r in recs)},
    }
    out = params_dict(params, att.currency) | {"recommendations": rs.model_dump(mode="json")}
    return Report("recommendations", out, rows, totals, currency=att.currency)


def recommendations(store: Store, settings: Settings, params: ReportParams,
                    rs: RecommendationSettings | None = None) -> Report:
    return with_attribution(store, settings, params, lambda cur, att: build(cur, att, params, settings, rs),
                            reads=READS)


def top(report: Report, settings: Settings) -> list[Row]:
    """The first `weekly_top` recommendations, without the nested evidence (a sheet of flat rows)."""
    n = settings.recommendations.weekly_top
    return [{k: v for k, v in r.items() if k != "evidence"} for r in report.rows[:n]]
