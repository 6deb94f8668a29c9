"""Run attribution for a report window on one cursor, leaving temp tables the reports read.

Temp tables live on the caller's cursor (a private DuckDB connection), so concurrent reports do
not see each other's, and one read transaction gives every report a consistent snapshot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from finops import money
from finops.attribution import sql
from finops.attribution.query import ParamError, Query
from finops.settings import Settings

STEPS = ("own_tags", "telemetry", "shared", "unallocated")


@dataclass(frozen=True)
class Attribution:
    """The outcome the reports build on: the report currency and the per-currency ingested totals."""

    currency: str
    ingested_total: Decimal


def report_rates(cur: duckdb.DuckDBPyConnection, params: Query, settings: Settings) -> tuple[str, dict[str, Decimal]]:
    """The report currency of `params` and the rate into it of each currency its window's lines use."""
    found = [r[0] for r in cur.execute(
        "SELECT DISTINCT billing_currency FROM cost_daily WHERE charge_date >= ? AND charge_date < ? ORDER BY 1",
        [params.start, params.end]).fetchall()]
    return resolve_rates(found, params, settings)


def resolve_rates(found: list[str], params: Query, settings: Settings) -> tuple[str, dict[str, Decimal]]:
    """The report currency and the rates into it, for the sorted currencies `found` in the window."""
    target = params.currency or settings.report_currency
    if not found:
        return target or "USD", {target or "USD": Decimal(1)}
    if target is None and len(found) == 1:
        return found[0], {found[0]: Decimal(1)}
    target = target or found[0]
    rates = {c: Decimal(1) if c == target else settings.currency_rates.get(c) for c in found}
    missing = sorted(c for c, r in rates.items() if r is None)
    if missing:
        if not settings.currency_rates:
            raise ParamError("currency", f"the window mixes currencies ({', '.join(found)}); report one "
                             "currency with `currency`, or configure currency_rates into report_currency")
        raise ParamError("currency", f"no rate into {target} configured for {', '.join(missing)}")
    return target, {c: r for c, r in rates.items() if r is not None}


def stages(hourly: bool = True, lines: bool = True, by_rowid: bool = False) -> tuple[str, ...]:
    """The SQL stages in order. Attribution reads the daily rollups and prices GPU-days (att_gpu_cost,
    one row per GPU and day, `hours` and `idle_hours` counted in them); `hourly` also lays out their
    hours (att_gpu_hours, one row per GPU-hour, for idle streaks and peaks); `lines` the cost lines
    with what rules recover of each (att_line, for untagged spend). `by_rowid` numbers the lines by
    the rollup's row id (a parallel scan) where `cost_daily` is a table, not a view without row ids."""
    picked = tuple(sql.COST_BY_ROWID if stage is sql.COST and by_rowid else stage
                   for stage in sql.STAGES if lines or stage is not sql.LINES)
    return picked + ((sql.GPU_HOURS,) if hourly else ())


def run_stages(cur: duckdb.DuckDBPyConnection, stages: tuple[str, ...], binds: dict[str, Any]) -> None:
    """Run SQL stages in order, each statement with the binds it names."""
    for stage in stages:
        # Statements end with ";" at the end of a line (comments may hold semicolons).
        for statement in filter(str.strip, re.split(r";\s*\n", stage)):
            names = [n for n in binds if f"${n}" in statement]
            cur.execute(statement, {n: binds[n] for n in names})


def attribute(cur: duckdb.DuckDBPyConnection, params: Query, settings: Settings,
              hourly: bool = True, lines: bool = True, by_rowid: bool = False) -> Attribution:
    """Build the att_* temp tables for `params` on `cur` (inside the caller's read transaction).

    `hourly=False` lays out no GPU-hours (unit economics and untagged spend need none);
    `lines=False` no att_line (only untagged spend, anomalies and the FOCUS export read it);
    `by_rowid`: `cost_daily` is a DuckDB table (see `stages`).
    """
    currency, rates = report_rates(cur, params, settings)
    cur.register("att_rates_arrow", pa.table({"currency": list(rates), "rate": pa.array(list(rates.values()), money.ARROW_MONEY)}))
    cur.execute("CREATE OR REPLACE TEMP TABLE att_rates AS SELECT * FROM att_rates_arrow")
    cur.unregister("att_rates_arrow")
    binds: dict[str, Any] = {
        "start": params.start, "end": params.end, "basis": params.cost_basis,
        "shared_key": params.shared_cost_key, "idle": params.idle_threshold,
    }
    run_stages(cur, stages(hourly, lines, by_rowid), binds)
    [(total,)] = cur.execute("SELECT coalesce(sum(cost), 0) FROM att_cost").fetchall()
    return Attribution(currency, Decimal(total))
