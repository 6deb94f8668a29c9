"""Reports read attribution from the attr_* tables kept at landing, through the att_* names.

`attribute_stored` gives a report the same att_* relations `attribute` builds, as temp views over
the stored tables for the report's window, cost basis and idle threshold (only those the report
reads: each view costs a report about a millisecond). Under another shared-cost key than the one
stored, attribution per group and day swaps the stored key's shared amounts for the asked key's
(both kept at landing, `attr_shared`); where the report reads what else the key changes (the
pieces, GPU-days priced from their group), it computes only that from the stored tables
(REWEIGH). It computes attribution from the facts instead (same result, slower) when the stored
tables cannot answer: a rebuild not finished, or amounts that need converting into another
currency. A lake replica keeps no attribution (its `attr_state` is never complete).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Collection
from datetime import date
from decimal import Decimal
from functools import reduce

import duckdb

from finops.attribution import sql
from finops.attribution.engine import Attribution, attribute, resolve_rates, run_stages
from finops.attribution.query import Query
from finops.money import CONTEXT
from finops.settings import SHARED_KEYS, Settings

log = logging.getLogger(__name__)

BASES = ("effective", "billed")

# The att_* relations reports read; `{b}` is the cost basis, `{w}` the window, `{idle}` the threshold.
VIEWS = {
    "att_line": """SELECT *, cost_{b} AS cost, recoverable_{b} AS recoverable FROM attr_line WHERE {w}""",
    "att_cost": """SELECT * FROM att_line""",
    "att_alloc": """SELECT *, amount_{b} AS amount FROM attr_alloc WHERE {w}""",
    "att_tok": """SELECT * FROM attr_tok WHERE {w}""",
    "att_gpu": """SELECT * FROM attr_gpu WHERE {w}""",
    "att_inv": """SELECT resource_key, max(project) AS project, max(team) AS team, max(environment) AS environment,
                  max(model_id) AS model_id, max(instance_type) AS instance_type, max(gpu_count) AS gpu_count
                  FROM inventory GROUP BY resource_key""",
    "att_gpu_cost": """SELECT *, hour_cost_{b} AS hour_cost, len(list_filter(busy_hourly, lambda x: x < {idle}))
                       AS idle_hours FROM attr_gpu WHERE {w}""",
    "att_daily": """SELECT * EXCLUDE (basis) FROM attr_daily WHERE basis = '{b}' AND {w}""",
}
# att_daily at another idle threshold than the stored one: summed from the views it is made of.
_DAILY_SUMMED = sql.DAILY_SELECT.format(alloc="att_alloc", tok="att_tok", gpu="att_gpu_cost")
# GPU-hours, for reports that need them (`hourly`): the priced GPU-days' hours, as attribution lays them out.
HOURS = {"att_gpu_hours": sql.GPU_HOURS_SELECT}
# Relations a view reads besides the stored tables.
_NEEDS: dict[str, tuple[str, ...]] = {"att_cost": ("att_line",), "att_gpu_hours": ("att_gpu_cost",)}
# Relations no shared-cost key changes: the key only weighs the pieces of the shared step
# (att_alloc) and, through the groups' cost, the hour cost of GPUs on no billed resource
# (att_gpu_cost, att_gpu_hours). Which lines the rules recover does not depend on it.
KEY_FREE = frozenset({"att_line", "att_cost", "att_tok", "att_gpu", "att_inv"})
# Another shared-cost key over stored days: the stored lines, tokens and GPU-days (without their hour
# cost) as views, and what the key weighs computed from them as attribution does, in order (SQL
# stages, and views over what they made): the shared step's pieces (the other steps' are kept), the
# hour cost of the GPU-days on no resource billed that day (priced from their group's cost; a billed
# GPU-day keeps its stored hour cost, from its own bill), attribution per group and day.
_BILLED = "EXISTS (SELECT 1 FROM attr_line l WHERE l.day = g.day AND l.resource_key = g.rkey)"
_REWEIGH_VIEWS = {**{name: VIEWS[name] for name in ("att_line", "att_cost", "att_tok", "att_inv")},
                  "att_gpu": "SELECT * EXCLUDE (hour_cost_effective, hour_cost_billed) FROM attr_gpu WHERE {w}",
                  "att_gpu_unbilled": f"SELECT * FROM att_gpu g WHERE NOT {_BILLED}"}  # noqa: S608 - constants
REWEIGH: tuple[str | tuple[str, str], ...] = (
    sql.PIECES_KEPT, sql.ALLOC_SHARED,
    ("att_alloc", "SELECT * FROM (" + VIEWS["att_alloc"] + ") WHERE step <> 'shared' "  # noqa: S608 - constants
                  "UNION ALL BY NAME SELECT * FROM att_alloc_shared WHERE {w}"),
    sql.HOUR_COST_UNBILLED,
    ("att_gpu_cost", "SELECT * FROM (" + VIEWS["att_gpu_cost"] + f") g WHERE {_BILLED} "  # noqa: S608 - constants
                     "UNION ALL BY NAME SELECT * FROM att_gpu_regrouped WHERE {w}"),
    sql.DAILY,
)
# The same where every GPU-day of the window sits on a resource billed that day: their hour cost is
# kept, and at the kept idle threshold so are attr_daily's rows but for the shared step's amounts,
# kept per key (attr_shared, migration 0015): the stored key's taken out, the asked key's put back. A
# group and day keeps its row: the same pieces make it under every key (`n`).
_ZEROS = "0, 0, 0, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0"  # the other measures of a piece, after its cost
_DAILY_KEYED = f"""
SELECT day, project, team, environment, model_id, step, {", ".join(f"sum({m}) AS {m}" for m in sql.DAILY_MEASURES)},
       sum(n) AS n
FROM (SELECT day, project, team, environment, model_id, step, {", ".join(sql.DAILY_MEASURES)}, n FROM attr_daily
      WHERE basis = '{{b}}' AND {{w}}
      UNION ALL SELECT day, project, team, environment, model_id, NULL, -amount_{{b}}, {_ZEROS}, -n FROM attr_shared
      WHERE shared_key = '{{stored_key}}' AND {{w}}
      UNION ALL SELECT day, project, team, environment, model_id, NULL, amount_{{b}}, {_ZEROS}, n FROM attr_shared
      WHERE shared_key = '{{key}}' AND {{w}})
GROUP BY ALL HAVING sum(n) > 0
"""  # noqa: S608 - constants, and keys checked against SHARED_KEYS
REWEIGH_BILLED = tuple(("att_gpu_cost", VIEWS["att_gpu_cost"]) if isinstance(step, tuple) and step[0] == "att_gpu_cost"
                       else step for step in REWEIGH if step is not sql.HOUR_COST_UNBILLED)
REWEIGH_KEPT_DAILY = tuple(("att_daily", _DAILY_KEYED) if step is sql.DAILY else step for step in REWEIGH_BILLED)
# Priced GPUs: no key changes them in a window where every GPU-day sits on a resource billed that
# day (priced from the resource's own cost, never from its group's).
PRICED = frozenset({"att_gpu_cost", "att_gpu_hours"})
GROUP_PRICED = f"SELECT EXISTS (SELECT 1 FROM attr_gpu g WHERE g.day >= ? AND g.day < ? AND NOT {_BILLED})"  # noqa: S608 - constants

# The store's policy, and its cost per day and billing currency in a window (migration 0013; summed
# in Python: a GROUP BY costs more than the few rows it would save).
_STATE = """
SELECT s.shared_cost_key, s.complete, s.idle_threshold, d.billing_currency, d.cost_effective, d.cost_billed
FROM attr_state s
LEFT JOIN attr_day d ON d.day >= ? AND d.day < ? WHERE s.id = 1
"""

# The att_* relations attribution left on a cursor: "TABLE" (computed on the fly), or the names of
# the views set up. A view cannot replace a table nor the reverse, and a view left from another
# window must not be read. Kept here because asking the catalog costs a report ~1.5 ms.
_LEFT: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, str | frozenset[str]] = weakref.WeakKeyDictionary()
# What a cursor's reweighed tables (the temp tables REWEIGH's stages make) hold: (shared-cost key,
# cost basis, idle threshold, start, end, whether a GPU-day in them is priced from its group).
# Attribution is day by day, so a later set-up under the same policy over days they hold reads them
# (its views take its own days) instead of weighing again.
_HELD: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, tuple[str, str, float, date, date, bool]] = \
    weakref.WeakKeyDictionary()


def _date(d: date) -> str:
    return f"DATE '{date.fromordinal(d.toordinal()).isoformat()}'"  # a real date, so no quote can get in


def _drop(cur: duckdb.DuckDBPyConnection, kind: str) -> None:
    """Drop the att_* relations of `kind` left on the cursor."""
    table = "duckdb_views()" if kind == "VIEW" else "duckdb_tables()"
    column = "view_name" if kind == "VIEW" else "table_name"
    for (name,) in cur.execute(f"SELECT {column} FROM {table} WHERE temporary "  # noqa: S608 - constants
                               f"AND {column} LIKE 'att\\_%' ESCAPE '\\'").fetchall():
        cur.execute(f'DROP {kind} "{name}"')


def _views(reads: Collection[str] | None, hourly: bool, daily_stored: bool = True, keyed: bool = False) -> dict[str, str]:
    """The views to create, in an order where each comes after those it reads. `daily_stored`: the
    report's idle threshold is the stored one, so att_daily reads attr_daily; `keyed`: under another
    shared-cost key than the stored one, with that key's shared amounts."""
    selects, needs = {**VIEWS, **HOURS}, dict(_NEEDS)
    # Under another key at another idle threshold att_daily is summed from the reweighed pieces
    # (REWEIGH): _answers never sends that here.
    if keyed:
        selects["att_daily"] = _DAILY_KEYED
    elif not daily_stored:
        selects["att_daily"] = _DAILY_SUMMED
        needs["att_daily"] = ("att_alloc", "att_tok", "att_gpu_cost")
    wanted = set(VIEWS if reads is None else reads) | ({"att_gpu_hours"} if hourly else set())
    wanted |= {n for name in list(wanted) for n in needs.get(name, ())}
    return {name: select for name, select in selects.items() if name in wanted}


def _answers(cur: duckdb.DuckDBPyConnection, key: str, params: Query, reads: Collection[str] | None,
             hourly: bool, daily_stored: bool) -> bool:
    """Whether the stored tables, kept under shared-cost key `key`, give what `params` asks of `reads`.
    Under another key: what no key changes; and, where no GPU-day of the window is priced from its
    group, priced GPUs and (at the stored idle threshold) attribution per group and day."""
    if key == params.shared_cost_key:
        return True
    if reads is None:
        return False
    wanted = set(reads) | ({"att_gpu_hours"} if hourly else set())
    if wanted <= KEY_FREE:
        return True
    answerable = KEY_FREE | PRICED | ({"att_daily"} if daily_stored else set())
    return wanted <= answerable and not cur.execute(GROUP_PRICED, [params.start, params.end]).fetchall()[0][0]


def _switch(cur: duckdb.DuckDBPyConnection, now: str | frozenset[str], stale: Collection[str] = ()) -> None:
    """Drop what the cursor holds of an earlier set-up that the one about to be made (`now`: the
    view names, "REWEIGHED" or "TABLE") would not replace; `stale`: temp tables of the same kind of
    set-up that it does not make again."""
    before = _LEFT.get(cur)
    if now != "REWEIGHED":
        _HELD.pop(cur, None)
    if isinstance(before, frozenset) and isinstance(now, frozenset):
        for name in sorted(before - now):
            cur.execute(f"DROP VIEW {name}")
    elif before == now:
        for name in stale:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
    elif before is not None:  # a view cannot replace a table nor the reverse
        _drop(cur, "TABLE")
        _drop(cur, "VIEW")
    _LEFT[cur] = now


def _reweigh(cur: duckdb.DuckDBPyConnection, params: Query, fill: dict[str, str], daily_stored: bool) -> None:
    """What another shared-cost key weighs, from the stored tables (REWEIGH), over the window of
    `fill`; over days the cursor weighed before under the same policy, only views of them."""
    log.debug("shared-cost key %s weighed again for %s..%s", params.shared_cost_key, params.start, params.end)
    policy = (params.shared_cost_key, params.cost_basis, float(params.idle_threshold))
    held = _HELD.get(cur)
    # A window inside one weighed before needs none of the stages that weigh: attribution is day by
    # day. Nor, inside one without GPU-days priced from their group, the query for them.
    reuse = held is not None and held[:3] == policy and held[3] <= params.start and params.end <= held[4]
    if reuse and held is not None and not held[5]:
        group_priced = False
    else:
        group_priced = bool(cur.execute(GROUP_PRICED, [params.start, params.end]).fetchall()[0][0])
    steps = REWEIGH if group_priced else REWEIGH_KEPT_DAILY if daily_stored else REWEIGH_BILLED
    binds = {"basis": params.cost_basis, "shared_key": params.shared_cost_key, "idle": params.idle_threshold,
             "start": params.start, "end": params.end}
    for step in (*steps, *HOURS.items()):
        if isinstance(step, tuple):
            cur.execute(f"CREATE OR REPLACE TEMP VIEW {step[0]} AS {step[1].format(**fill)}")
        elif not reuse:
            run_stages(cur, (step,), binds)
    if not reuse:
        _HELD[cur] = (*policy, params.start, params.end, group_priced)


def attribute_stored(cur: duckdb.DuckDBPyConnection, params: Query, settings: Settings,
                     hourly: bool | None = None, reads: Collection[str] | None = None) -> Attribution:
    """The att_* relations for `params` on `cur`, read from the stored tables when they can answer.

    `reads` names the att_* relations the caller reads (all when None): only those are set up from
    the stored tables, which answer any shared-cost key when the caller reads nothing the key
    changes (KEY_FREE, and PRICED where no GPU-day is priced from its group); else what the key
    weighs is computed again from the stored lines, tokens and GPU-days (REWEIGH). `hourly` adds
    GPU-hours (att_gpu_hours); by default, when `reads` names them (or is None)."""
    if hourly is None:
        hourly = reads is None or "att_gpu_hours" in reads
    rows = cur.execute(_STATE, [params.start, params.end]).fetchall()
    key, complete, idle = rows[0][:3]
    totals: dict[str, Decimal] = {}
    for *_, c, eff, billed in rows:
        if c is not None:
            # Exact: a window's sum of amounts under 10^18 can need more than the default 28 digits.
            totals[c] = CONTEXT.add(totals.get(c, Decimal(0)), billed if params.cost_basis == "billed" else eff)
    if complete and params.cost_basis in BASES:
        currency, rates = resolve_rates(sorted(totals), params, settings)
        if all(r == Decimal(1) for r in rates.values()):
            fill = {"b": params.cost_basis, "ws": _date(params.start), "we": _date(params.end),
                    "idle": repr(float(params.idle_threshold))}
            fill["w"] = f"day >= {fill['ws']} AND day < {fill['we']}"
            daily_stored = float(params.idle_threshold) == idle
            if key not in SHARED_KEYS or params.shared_cost_key not in SHARED_KEYS:
                raise ValueError(f"unknown shared-cost key: {key!r} or {params.shared_cost_key!r}")
            fill.update(stored_key=key, key=params.shared_cost_key)
            if _answers(cur, key, params, reads, hourly, daily_stored):
                views = _views(reads, hourly, daily_stored, keyed=key != params.shared_cost_key)
                _switch(cur, frozenset(views))
            else:
                views = _REWEIGH_VIEWS
                _switch(cur, "REWEIGHED")
            cur.execute(";\n".join(f"CREATE OR REPLACE TEMP VIEW {name} AS {select.format(**fill)}"
                                    for name, select in views.items()))
            if views is _REWEIGH_VIEWS:
                _reweigh(cur, params, fill, daily_stored)
            return Attribution(currency, reduce(CONTEXT.add, totals.values(), Decimal(0)))
    # A rebuild under way, or amounts to convert: attribution from the facts.
    log.debug("attribution computed on the fly for %s..%s", params.start, params.end)
    lines = reads is None or "att_line" in reads
    # Another window's hours and lines must not be read.
    _switch(cur, "TABLE", [name for name, kept in (("att_gpu_hours", hourly), ("att_line", lines)) if not kept])
    # A lake replica's rollups are views, without row ids to number the lines by.
    table = cur.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'cost_daily' AND NOT temporary").fetchall()
    return attribute(cur, params, settings, hourly=hourly, lines=lines, by_rowid=bool(table))
