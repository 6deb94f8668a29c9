"""Idle GPUs (docs/definitions.md 6.2): per GPU, the hours it sat below the idle threshold and what they cost."""

from __future__ import annotations

from decimal import Decimal

import duckdb

from finops.attribution import Attribution
from finops.reports.model import Report, fetch_rows, filter_sql, params_dict, with_attribution
from finops.reports.params import ReportParams
from finops.settings import Settings
from finops.store import Store
from finops.tags import UNTAGGED

DIMS = ("project", "team", "environment", "model_id")
READS = ("att_gpu", "att_gpu_hours", "att_tok")  # the att_* relations `build` reads
IDLE_COST_READS = ("att_gpu_cost",)  # and `idle_cost`


def query(where: str) -> str:
    # The most frequent value of each dim over the GPU's hours, counted from its GPU-days (an hourly
    # row has its GPU-day's dims; a day is far fewer rows than its hours); of tied values the lowest,
    # so the row never depends on row order. One pass sums the hours per GPU and value of every dim.
    sets = ", ".join(f"(gpu_uuid, mig_instance, {d})" for d in DIMS)
    picked = ", ".join(f"arg_min({d}, (-h, {d})) FILTER (WHERE {d} IS NOT NULL) AS {d}" for d in DIMS)
    dims = "".join(f", coalesce(d.{d}, '{UNTAGGED}') AS {d}" for d in DIMS)
    # The window's hours are read twice rather than kept (cheaper): one pass per GPU for the measures,
    # one over the idle hours for streaks (consecutive idle hours share `hour_start` minus their rank).
    # What does not change within a GPU-day (its host, model, dims, whether its resource served
    # tokens) comes from the GPU-days (few rows). A GPU shared by time-slicing has a row per workload
    # and hour: its hours are counted once.
    return f"""
    WITH streaks AS (
        SELECT gpu_uuid, mig_instance, max(n) AS longest FROM (
            SELECT gpu_uuid, mig_instance, island, count(*) AS n FROM (
                SELECT gpu_uuid, mig_instance, hour_start - to_hours(row_number() OVER (
                           PARTITION BY gpu_uuid, mig_instance ORDER BY hour_start)) AS island
                FROM (SELECT gpu_uuid, mig_instance, hour_start FROM att_gpu_hours
                      WHERE idle AND time_share IS NULL AND {where}
                      UNION ALL
                      SELECT DISTINCT gpu_uuid, mig_instance, hour_start FROM att_gpu_hours
                      WHERE idle AND time_share IS NOT NULL AND {where})
            ) GROUP BY ALL
        ) GROUP BY ALL
    ),
    days AS (
        SELECT gpu_uuid, mig_instance, any_value(host) AS host, any_value(mig_profile) AS mig_profile,
               any_value(gpu_model) AS gpu_model FROM att_gpu WHERE {where} GROUP BY ALL
    ),
    dims AS (
        SELECT gpu_uuid, mig_instance, {picked} FROM (
            SELECT gpu_uuid, mig_instance, {", ".join(DIMS)}, sum(hours) AS h FROM att_gpu WHERE {where}
            GROUP BY GROUPING SETS ({sets})
        ) GROUP BY ALL
    ),
    sliced AS (
        -- The hours of GPUs shared by time-slicing (a row per workload and hour), each counted once.
        SELECT gpu_uuid, mig_instance, count(*) AS hours, count(*) FILTER (WHERE idle) AS idle_hours FROM (
            SELECT DISTINCT gpu_uuid, mig_instance, hour_start, idle FROM att_gpu_hours
            WHERE time_share IS NOT NULL AND {where}
        ) GROUP BY ALL
    ),
    served AS (
        SELECT DISTINCT r.gpu_uuid, r.mig_instance FROM (SELECT DISTINCT gpu_uuid, mig_instance, rkey FROM att_gpu WHERE {where}) r
        JOIN (SELECT DISTINCT rkey FROM att_tok WHERE generation_tokens > 0) t ON t.rkey = r.rkey
    ),
    g AS (
        SELECT gpu_uuid, mig_instance,
               count(*) FILTER (WHERE time_share IS NULL) AS whole_hours,
               count(*) FILTER (WHERE idle AND time_share IS NULL) AS whole_idle_hours,
               -- Summed as exact decimals: a float sum's last bits depend on the order threads add them.
               CAST(round(avg(CAST(busy AS DECIMAL(18,12))), 6) AS DOUBLE) AS avg_busy,
               CAST(coalesce(sum(hour_cost) FILTER (WHERE idle), 0) AS DECIMAL(38,12)) AS idle_cost,
               max(hour_start) FILTER (WHERE NOT idle) AS last_busy_at
        FROM att_gpu_hours WHERE {where} GROUP BY gpu_uuid, mig_instance
    )
    SELECT y.host, g.gpu_uuid, nullif(g.mig_instance, '') AS mig_instance, y.mig_profile, y.gpu_model,
           {dims[2:]},
           (g.whole_hours + coalesce(t.hours, 0))::BIGINT AS hours_observed,
           (g.whole_idle_hours + coalesce(t.idle_hours, 0))::BIGINT AS idle_hours, g.avg_busy, g.idle_cost,
           coalesce(s.longest, 0)::BIGINT AS longest_idle_streak_hours, g.last_busy_at,
           v.gpu_uuid IS NULL AS no_tokens_served
    FROM g JOIN days y ON y.gpu_uuid = g.gpu_uuid AND y.mig_instance = g.mig_instance
    LEFT JOIN streaks s ON s.gpu_uuid = g.gpu_uuid AND s.mig_instance = g.mig_instance
    LEFT JOIN served v ON v.gpu_uuid = g.gpu_uuid AND v.mig_instance = g.mig_instance
    LEFT JOIN sliced t ON t.gpu_uuid = g.gpu_uuid AND t.mig_instance = g.mig_instance
    LEFT JOIN dims d ON d.gpu_uuid = g.gpu_uuid AND d.mig_instance = g.mig_instance
    """  # noqa: S608 - dims are constants, `where` comes from filter_sql (bound values)


def build(cur: duckdb.DuckDBPyConnection, att: Attribution, params: ReportParams) -> Report:
    where, binds = filter_sql(params)
    rows = fetch_rows(cur, query(where), binds)
    for r in rows:
        r["idle_fraction"] = round(r["idle_hours"] / r["hours_observed"], 6) if r["hours_observed"] else None
    rows.sort(key=lambda r: (-r["idle_cost"], -r["idle_hours"], r["host"] or "", r["gpu_uuid"]))
    hours = sum(r["hours_observed"] for r in rows)
    idle = sum(r["idle_hours"] for r in rows)
    totals = {
        "gpus": len(rows), "hours_observed": hours, "idle_hours": idle,
        "idle_fraction": round(idle / hours, 6) if hours else None,
        "idle_cost": sum((r["idle_cost"] for r in rows), Decimal(0)),
        "gpus_without_tokens": sum(1 for r in rows if r["no_tokens_served"]),
    }
    return Report("idle-gpus", params_dict(params, att.currency), rows, totals, currency=att.currency)


# Idle cost per GPU from its GPU-days (attribution's daily rows, `hourly=False`): a GPU-day's hours
# all cost its hour cost, so its idle hours (counted from the day's hourly busy values) times it is
# what the hourly rows' idle hours add up to, without reading them.
IDLE_COST = """
SELECT gpu_uuid, nullif(mig_instance, '') AS mig_instance,
       CAST(coalesce(sum(hour_cost * idle_hours), 0) AS DECIMAL(38,12)) AS idle_cost
FROM att_gpu_cost WHERE day >= $start AND day < $end AND {where} GROUP BY ALL
"""


def idle_cost(cur: duckdb.DuckDBPyConnection, att: Attribution, params: ReportParams) -> Report:
    """Only the idle cost per GPU and its total (what a week compared with this one needs), from
    the daily rows of the window (the attribution set up may cover more days)."""
    where, binds = filter_sql(params)
    rows = fetch_rows(cur, IDLE_COST.format(where=where), {"start": params.start, "end": params.end, **binds})
    totals = {"idle_cost": sum((r["idle_cost"] for r in rows), Decimal(0))}
    return Report("idle-gpus", params_dict(params, att.currency), rows, totals, currency=att.currency)


def idle_gpus(store: Store, settings: Settings, params: ReportParams) -> Report:
    return with_attribution(store, settings, params, lambda cur, att: build(cur, att, params), reads=READS)
