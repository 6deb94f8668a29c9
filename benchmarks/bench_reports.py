"""The four reports on a generated fleet, against a hand-written DuckDB query (lower bound) and pandas.

    python benchmarks/bench_reports.py                 # small fleet (1,000 GPUs x 35 days)
    python benchmarks/bench_reports.py --scale full    # 10,000 GPUs x 365 days
    python benchmarks/bench_reports.py --reuse         # keep an already generated fleet

Measures, same run, same store (median of 7 runs each, ours and its bound in turn):
- unit economics for a month, 4 dims, daily;  - idle GPUs for a week;
- untagged spend for a month;                 - the weekly report (a week and the week before),
  whose bound is the sum of its tables' bounds (WEEKLY_BOUND and the queries listed with it).
`ours` is the report as the API serves it (`finops.reports.get(name)(store, settings, params)`,
attribution included). `bound` is one hand-written DuckDB query over the same rollups (hourly
GPU rows for idle GPUs) computing the report's main table by own tags only, without the
attribution rules: the least work any engine must do to read and aggregate that data. `pandas` is a
straightforward pandas implementation of the same bound (the rows read through Arrow, then
groupby/merge). Goals: ours <= 1.5x the bound and >= 20x faster than pandas.
`shared-cost key ... (not the stored one)` is the same report asked with a key other than the one
the store keeps (`tokens`): attribution is computed on the fly from the rollups, unless the report
reads nothing the key changes (untagged spend); goal: within 5x of the same bound.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from benchmarks.common import OUT, Measure, best_of, paired, print_table, write_json  # noqa: E402
from benchmarks.generate import Fleet, add_args, fleet_from_args, generate  # noqa: E402

DIMS = ["project", "team", "environment", "model_id"]
IDLE = 0.05

UE_BOUND = """
WITH c AS (SELECT charge_date AS day, project, team, environment, model_id, sum(effective_cost) AS cost
           FROM cost_daily WHERE charge_date >= $s AND charge_date < $e GROUP BY ALL),
t AS (SELECT day, project, team, environment, coalesce(model_id, lower(model_name)) AS model_id,
             sum(prompt_tokens) AS prompt, sum(generation_tokens) AS gen, sum(requests) AS req
      FROM token_daily WHERE day >= $s AND day < $e GROUP BY ALL),
g AS (SELECT day, project, team, environment, model_id, sum(hours) AS hours, sum(busy_sum) AS busy
      FROM gpu_daily WHERE day >= $s AND day < $e GROUP BY ALL)
SELECT *, cost / nullif(gen, 0) * 1000 AS cost_per_1k_gen, cost / nullif(prompt + gen, 0) * 1000 AS cost_per_1k,
       busy / nullif(hours, 0) AS avg_busy
FROM c FULL JOIN t USING (day, project, team, environment, model_id)
       FULL JOIN g USING (day, project, team, environment, model_id)
"""

IDLE_BOUND = """
WITH h AS (SELECT gpu_uuid, host, resource_key, CAST(hour_start AS DATE) AS day, hour_start, busy, busy < $idle AS idle
           FROM gpu_hours WHERE hour_start >= $s AND hour_start < $e),
rate AS (SELECT c.day, c.resource_key, c.cost / n.hours AS hour_cost FROM
         (SELECT charge_date AS day, resource_key, sum(effective_cost) AS cost FROM cost_daily
          WHERE charge_date >= $s AND charge_date < $e GROUP BY ALL) c
         JOIN (SELECT day, resource_key, count(*) AS hours FROM h GROUP BY ALL) n USING (day, resource_key)),
isl AS (SELECT gpu_uuid, idle, hour_start - to_hours(row_number() OVER (PARTITION BY gpu_uuid, idle ORDER BY hour_start))
               AS island FROM h)
SELECT h.gpu_uuid, any_value(h.host) AS host, count(*) AS hours, count(*) FILTER (WHERE h.idle) AS idle_hours,
       avg(h.busy) AS avg_busy, coalesce(sum(r.hour_cost) FILTER (WHERE h.idle), 0) AS idle_cost,
       any_value(s.longest) AS longest
FROM h LEFT JOIN rate r USING (day, resource_key)
LEFT JOIN (SELECT gpu_uuid, max(n) AS longest FROM (SELECT gpu_uuid, island, count(*) AS n FROM isl WHERE idle
           GROUP BY ALL) GROUP BY ALL) s USING (gpu_uuid)
GROUP BY h.gpu_uuid
"""

UNTAGGED_BOUND = """
SELECT provider_name, coalesce(sub_account_id, billing_account_id) AS account, service_name, resource_id,
       sum(effective_cost) AS cost,
       coalesce(sum(effective_cost) FILTER (WHERE project IS NULL OR team IS NULL OR environment IS NULL
                                            OR model_id IS NULL), 0) AS untagged_cost
FROM cost_daily WHERE charge_date >= $s AND charge_date < $e GROUP BY ALL
"""

WEEKLY_BOUND = """
SELECT project, team, environment, model_id,
       coalesce(sum(effective_cost) FILTER (WHERE charge_date >= $s), 0) AS cost,
       coalesce(sum(effective_cost) FILTER (WHERE charge_date < $s), 0) AS previous_cost,
       coalesce(sum(effective_cost) FILTER (WHERE charge_date >= $s), 0)
         - coalesce(sum(effective_cost) FILTER (WHERE charge_date < $s), 0) AS change
FROM cost_daily WHERE charge_date >= $p AND charge_date < $e GROUP BY ALL
"""


# The weekly report's other tables, each by own tags over both weeks (chargeback per team, per
# project, unit economics per model), and its savings table's least work: the hourly busy sums per
# model (consolidation), idle hours per resource (idle shutdown) and on-demand cost per resource
# (spot, commitments). The weekly bound is the sum of these, WEEKLY_BOUND, idle GPUs for each week,
# untagged spend for the week and WEEKLY_ANOMALIES.
WEEKLY_BY = """
SELECT {dim}, coalesce(sum(effective_cost) FILTER (WHERE charge_date >= $s), 0) AS cost,
       coalesce(sum(effective_cost) FILTER (WHERE charge_date < $s), 0) AS previous_cost
FROM cost_daily WHERE charge_date >= $p AND charge_date < $e GROUP BY ALL
"""
WEEKLY_MODEL = """
WITH c AS (SELECT model_id, charge_date >= $s AS this, sum(effective_cost) AS cost FROM cost_daily
           WHERE charge_date >= $p AND charge_date < $e GROUP BY ALL),
t AS (SELECT coalesce(model_id, lower(model_name)) AS model_id, day >= $s AS this, sum(generation_tokens) AS gen
      FROM token_daily WHERE day >= $p AND day < $e GROUP BY ALL)
SELECT *, cost / nullif(gen, 0) * 1000 AS cost_per_1k FROM c FULL JOIN t USING (model_id, this)
"""
SAVINGS_BOUND = """
WITH h AS (SELECT resource_key, model_id, hour_start, busy FROM gpu_hours WHERE hour_start >= $s AND hour_start < $e)
SELECT 'peak' AS kind, model_id AS k, max(b) AS v FROM (SELECT model_id, hour_start, sum(busy) AS b FROM h GROUP BY ALL)
GROUP BY ALL
UNION ALL SELECT 'idle', resource_key, count(*) FILTER (WHERE busy < $idle) FROM h GROUP BY ALL
UNION ALL SELECT 'on_demand', resource_key, sum(effective_cost) FROM cost_daily
          WHERE charge_date >= $s AND charge_date < $e GROUP BY ALL
"""

# The anomalies table's least work: cost and tokens per team and day over its history and the week.
WEEKLY_ANOMALIES = """
WITH c AS (SELECT charge_date AS day, team, sum(effective_cost) AS cost FROM cost_daily
           WHERE charge_date >= $h AND charge_date < $e GROUP BY ALL),
t AS (SELECT day, team, sum(prompt_tokens + generation_tokens) AS tokens FROM token_daily
      WHERE day >= $h AND day < $e GROUP BY ALL)
SELECT * FROM c FULL JOIN t USING (day, team)
"""


def _read(cur: Any, sql: str, binds: dict[str, Any]) -> pd.DataFrame:
    return cur.sql(sql, params=binds).to_arrow_table().to_pandas()


def pandas_ue(cur: Any, s: date, e: date) -> pd.DataFrame:
    w = {"s": s, "e": e}
    c = _read(cur, "SELECT * FROM cost_daily WHERE charge_date >= $s AND charge_date < $e", w)
    t = _read(cur, "SELECT * FROM token_daily WHERE day >= $s AND day < $e", w)
    g = _read(cur, "SELECT * FROM gpu_daily WHERE day >= $s AND day < $e", w)
    c = c.rename(columns={"charge_date": "day"})
    c["effective_cost"] = c["effective_cost"].astype(float)
    t["model_id"] = t["model_id"].fillna(t["model_name"].str.lower())
    keys = ["day", *DIMS]
    cc = c.groupby(keys, dropna=False)["effective_cost"].sum().rename("cost").reset_index()
    tt = t.groupby(keys, dropna=False)[["prompt_tokens", "generation_tokens", "requests"]].sum().reset_index()
    gg = g.groupby(keys, dropna=False)[["hours", "busy_sum"]].sum().reset_index()
    out = cc.merge(tt, on=keys, how="outer").merge(gg, on=keys, how="outer")
    out["cost_per_1k_gen"] = out["cost"] / out["generation_tokens"].where(out["generation_tokens"] > 0) * 1000
    out["avg_busy"] = out["busy_sum"] / out["hours"].where(out["hours"] > 0)
    return out


def pandas_idle(cur: Any, s: date, e: date) -> pd.DataFrame:
    w = {"s": s, "e": e}
    h = _read(cur, "SELECT gpu_uuid, host, resource_key, hour_start, busy FROM gpu_hours "
                   "WHERE hour_start >= $s AND hour_start < $e", w)
    c = _read(cur, "SELECT charge_date, resource_key, effective_cost FROM cost_daily "
                   "WHERE charge_date >= $s AND charge_date < $e", w)
    h["day"] = h["hour_start"].dt.normalize()
    h["idle"] = h["busy"] < IDLE
    c["day"] = pd.to_datetime(c["charge_date"])
    c["effective_cost"] = c["effective_cost"].astype(float)
    cost = c.groupby(["day", "resource_key"])["effective_cost"].sum().rename("cost").reset_index()
    hours = h.groupby(["day", "resource_key"]).size().rename("n").reset_index()
    rate = cost.merge(hours, on=["day", "resource_key"])
    rate["hour_cost"] = rate["cost"] / rate["n"]
    h = h.merge(rate[["day", "resource_key", "hour_cost"]], on=["day", "resource_key"], how="left")
    h = h.sort_values(["gpu_uuid", "hour_start"])
    h["idle_cost"] = h["hour_cost"].where(h["idle"], 0.0)
    run = (h["idle"] != h.groupby("gpu_uuid")["idle"].shift()).cumsum()
    streak = h[h["idle"]].groupby(["gpu_uuid", run[h["idle"]]]).size().groupby(level=0).max().rename("longest")
    out = h.groupby("gpu_uuid").agg(hours=("busy", "size"), idle_hours=("idle", "sum"), avg_busy=("busy", "mean"),
                                    idle_cost=("idle_cost", "sum"))
    return out.join(streak)


def pandas_untagged(cur: Any, s: date, e: date) -> pd.DataFrame:
    c = _read(cur, "SELECT * FROM cost_daily WHERE charge_date >= $s AND charge_date < $e", {"s": s, "e": e})
    c["effective_cost"] = c["effective_cost"].astype(float)
    c["account"] = c["sub_account_id"].fillna(c["billing_account_id"])
    c["untagged_cost"] = c["effective_cost"].where(c[DIMS].isna().any(axis=1), 0.0)
    return c.groupby(["provider_name", "account", "service_name", "resource_id"], dropna=False)[
        ["effective_cost", "untagged_cost"]].sum()


def pandas_weekly(cur: Any, p: date, s: date, e: date) -> pd.DataFrame:
    c = _read(cur, "SELECT * FROM cost_daily WHERE charge_date >= $p AND charge_date < $e", {"p": p, "e": e})
    c["effective_cost"] = c["effective_cost"].astype(float)
    c["week"] = (pd.to_datetime(c["charge_date"]) >= pd.Timestamp(s)).map({True: "cost", False: "previous_cost"})
    out = c.groupby([*DIMS, "week"], dropna=False)["effective_cost"].sum().unstack("week", fill_value=0.0)
    out["change"] = out.get("cost", 0.0) - out.get("previous_cost", 0.0)
    return out


def _bound(cur: Any, sql: str, binds: dict[str, Any]) -> Callable[[], list[dict[str, Any]]]:
    return lambda: list(cur.sql(sql, params=binds).to_arrow_table().to_pylist())


def _peer(cur: Any, fn: Callable[[Any], pd.DataFrame]) -> Callable[[], pd.DataFrame]:
    return lambda: fn(cur)


def main() -> None:
    p = argparse.ArgumentParser(description="reports vs a hand-written DuckDB query and pandas")
    add_args(p)
    p.add_argument("--reuse", action="store_true", help="reuse the generated fleet if its size matches")
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args()
    fleet: Fleet = fleet_from_args(args)
    out = OUT / f"fleet-{fleet.gpus}x{fleet.days}"
    meta = out / "fleet.json"
    config = {"gpus": fleet.gpus, "days": fleet.days, "start": str(fleet.start)}
    gen: dict[str, Any] = {}
    if not (args.reuse and meta.exists() and json.loads(meta.read_text()).get("config") == config):
        print(f"generating {fleet.gpus} GPUs x {fleet.days} days ...")
        gen = generate(fleet, out)
        meta.write_text(json.dumps({"config": config, "generate": gen}))
    else:
        gen = json.loads(meta.read_text())["generate"]
    print("fleet:", ", ".join(f"{k} {v:,.0f}" for k, v in gen.items() if not k.endswith("_s")))

    from finops import reports
    from finops.reports.model import snapshot
    from finops.reports.params import build_params
    from finops.settings import Settings
    from finops.store import open_store

    settings = Settings(db=out / "fleet.duckdb")
    store = open_store(settings.db, settings.duckdb)
    # A reused store that a later migration marked for a rebuild would make every report attribute
    # on the fly (10-40x slower): bring its stored attribution up to date first, as an upgrade does.
    from finops.attribution.materialize import rebuild

    rebuilt = rebuild(store.transaction, settings.shared_cost_key)
    if rebuilt:
        print(f"stored attribution was out of date: {rebuilt} day(s) attributed again before timing")
    month = (fleet.start, fleet.start + timedelta(days=30))
    week_start = fleet.end - timedelta(days=7 + fleet.end.weekday())
    week = (week_start, week_start + timedelta(days=7))
    prev = week_start - timedelta(days=7)
    cases: list[tuple[str, Any, Any, Any]] = []
    other_key = next(k for k in ("tokens", "gpu_hours") if k != settings.shared_cost_key)
    other: dict[str, Callable[[], Any]] = {}  # measure -> the report under the other key

    def case(measure: str, name: str, kw: dict[str, Any], bound: Any, peer: Any) -> None:
        """A measure: report `name` with `kw` as stored, its bound and pandas peer; and under the other key."""
        cases.append((measure, lambda: reports.get(name)(store, settings, build_params(**kw)), bound, peer))
        other[measure] = lambda: reports.get(name)(store, settings, build_params(**kw, shared_cost_key=other_key))

    ue: dict[str, Any] = {"start": month[0], "end": month[1], "granularity": "day"}
    case("unit economics, month, 4 dims, daily", "unit-economics", ue,
         (UE_BOUND, {"s": month[0], "e": month[1]}), lambda c: pandas_ue(c, *month))
    case("idle GPUs, week", "idle-gpus", {"start": week[0], "end": week[1]},
         (IDLE_BOUND, {"s": week[0], "e": week[1], "idle": IDLE}), lambda c: pandas_idle(c, *week))
    case("untagged spend, month", "untagged-spend", {"start": month[0], "end": month[1]},
         (UNTAGGED_BOUND, {"s": month[0], "e": month[1]}), lambda c: pandas_untagged(c, *month))
    case("weekly report", "weekly", {"start": week[0], "end": week[1]},
         (WEEKLY_BOUND, {"p": prev, "s": week[0], "e": week[1]}), lambda c: pandas_weekly(c, prev, *week))
    two_weeks: dict[str, Any] = {"p": prev, "s": week[0], "e": week[1]}
    weekly_tables: list[tuple[str, dict[str, Any]]] = [(WEEKLY_BOUND, two_weeks), (WEEKLY_MODEL, two_weeks),
                     *((WEEKLY_BY.format(dim=d), two_weeks) for d in ("team", "project")),
                     (IDLE_BOUND, {"s": prev, "e": week[0], "idle": IDLE}),
                     (IDLE_BOUND, {"s": week[0], "e": week[1], "idle": IDLE}),
                     (UNTAGGED_BOUND, {"s": week[0], "e": week[1]}),
                     (SAVINGS_BOUND, {"s": week[0], "e": week[1], "idle": IDLE}),
                     (WEEKLY_ANOMALIES, {"h": week[0] - timedelta(days=settings.anomalies.history_days),
                                         "e": week[1]})]
    measures: list[Measure] = []
    cases_otf: list[tuple[str, Any]] = []  # (measure, its bounds)
    try:
        for name, fn, (sql, binds), pdfn in cases:
            cur = store.cursor()
            try:
                # Ours and its bound (for the weekly report, each of its tables' bounds) run in turn.
                bounds = [(q, b) for q, b in weekly_tables] if name == "weekly report" else [(sql, binds)]
                (t_ours, rep), *timed = paired([fn, *(_bound(cur, q, b) for q, b in bounds)], args.repeat)
                t_bound, rows = sum(t for t, _ in timed), timed[0][1]
                t_pd, frame = best_of(_peer(cur, pdfn), max(3, args.repeat // 2))
            finally:
                cur.close()
            sizes = f"{len(rep.rows):,} report rows, bound {len(rows):,} rows, pandas {len(frame):,} rows"
            measures.append(Measure(f"{name}", t_ours, "s", t_bound, "<= 1.5x bound", t_ours <= 1.5 * t_bound,
                                    note=sizes))
            measures.append(Measure(f"{name}: pandas / ours", t_pd / t_ours, "x", None, ">= 20x", t_pd / t_ours >= 20,
                                    extra={"pandas_s": t_pd}))
            cases_otf.append((name, bounds))
        for name, bounds in cases_otf:  # another policy, against the same bound(s)
            cur = store.cursor()
            try:
                (t_otf, _), *timed = paired([other[name], *(_bound(cur, q, b) for q, b in bounds)],
                                            max(3, args.repeat // 2))
            finally:
                cur.close()
            t_bound = sum(t for t, _ in timed)
            measures.append(Measure(f"{name.split(',')[0]}, shared-cost key {other_key} (not the stored one)", t_otf, "s", t_bound,
                                    "<= 5x bound", t_otf <= 5 * t_bound))
        with snapshot(store) as cur:
            rows = {t: cur.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]  # noqa: S608
                    for t in ("cost_lines", "cost_daily", "gpu_hours", "gpu_daily", "token_hours", "token_daily")}
    finally:
        store.close()
    print_table(f"Reports on {fleet.gpus:,} GPUs x {fleet.days} days "
                f"(month {month[0]}..{month[1]}, week {week[0]}..{week[1]})", measures)
    write_json("bench_reports", {**config, "tables": rows, "generate": gen}, measures)


if __name__ == "__main__":
    main()
