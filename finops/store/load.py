"""Land a collected batch: replace one source's window of each fact table, atomically.

This is the one primitive every collector goes through, so re-running any collection over the
same window replaces what it wrote before: totals never double and never half-update.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa

from finops.batch import FactData
from finops.store.db import Store
from finops.tags import DIMS
from finops.timeutil import Window

# The time column that places a fact row in a window, per fact table.
TIME_COLUMN = {
    "cost_lines": "charge_period_start",
    "gpu_hours": "hour_start",
    "token_hours": "hour_start",
    "inventory": "observed_at",
}
# The UTC day of a row, per table kept in a daily rollup.
DAY_COLUMN = {
    "cost_lines": "charge_date",
    "gpu_hours": "CAST(hour_start AS DATE)",
    "token_hours": "CAST(hour_start AS DATE)",
}
# Hourly table -> (daily rollup, key columns, measures named as the rollup's columns; migrations 0003,
# 0006, 0011, 0012): rows are inserted by name, so a column added later may sit anywhere in the table.
# A time-sliced workload's hours of one `time_share` are one rollup row (migration 0011).
GPU_KEYS = ("source", "scope", "host", "resource_id", "resource_key", "gpu_uuid", "gpu_index", "gpu_model",
            "mig_profile", "mig_instance", "namespace", "pod", "container", *DIMS, "time_share")
TOKEN_KEYS = ("source", "scope", "instance", "resource_id", "resource_key", "namespace", "pod", "model_name",
              *DIMS)
ROLLUPS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "gpu_hours": ("gpu_daily", GPU_KEYS,
                  "count(*) AS hours, sum(busy) AS busy_sum, list(busy ORDER BY hour_start) AS busy_hourly, "
                  "list(CAST(hour(hour_start) AS TINYINT) ORDER BY hour_start) AS hour_of_day, "
                  "sum(samples) AS samples, max(memory_used_mib) AS memory_used_mib_max, sum(energy_kwh) AS energy_kwh"),
    "token_hours": ("token_daily", TOKEN_KEYS,
                    "count(*) AS hours, sum(prompt_tokens) AS prompt_tokens, sum(generation_tokens) AS generation_tokens, "
                    "sum(requests) AS requests, sum(cached_prompt_tokens) AS cached_prompt_tokens, "
                    "sum(prefill_ms) AS prefill_ms, sum(decode_ms) AS decode_ms, sum(asleep_hours) AS asleep_hours"),
}


@dataclass(frozen=True)
class Landed:
    """What one replacement did: rows inserted, and the UTC days whose facts it changed."""

    rows: int
    days: frozenset[date]


class BatchOutsideWindow(ValueError):
    """A source returned rows outside the window it was asked for (they would escape replacement)."""


def _scalar(cur: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    rows = cur.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def replace_window(cur: duckdb.DuckDBPyConnection, table: str, *, run_id: int, source: str, scope: str,
                   window: Window | None, data: FactData, by_content: bool = False) -> Landed:
    """Delete `source`/`scope` rows of `table` in `window` (all of the scope if None), insert `data`.

    `by_content` (scopes by content, whole: no window): the rows keep the `scope` column `data`
    carries, and the earlier rows of every scope they carry go too. Those scopes are known once
    the rows are in (a stream is read once), so the earlier rows go after the insert.

    Must run inside a transaction (Store.transaction). Returns the rows inserted and the days whose
    daily rollup it changed (none for the inventory, which has no day): the days to attribute again.
    """
    tcol = TIME_COLUMN[table]
    where = "source = ? AND scope = ?"
    params: list[Any] = [source, scope]
    if by_content and window is not None:
        raise ValueError("scopes by content replace whole scopes, never a window of them")
    if window is not None:
        where += f" AND {tcol} >= ? AND {tcol} < ?"
        params += [window.start, window.end]
    affected = set() if by_content else _delete(cur, table, where, params)

    cur.register("_batch", data)
    try:
        cols = [c for c in data.schema.names if c not in ("run_id", "source", "scope")]
        select = ", ".join(f'"{c}"' for c in cols)
        n = _scalar(cur, "SELECT count(*) FROM _batch") if isinstance(data, pa.Table) else None
        own = by_content and "scope" in data.schema.names  # the rows' own scope, else the run's
        cur.execute(
            f"INSERT INTO {table} (run_id, source, scope, {select}) "  # noqa: S608
            f"SELECT ?, ?, {'scope' if own else '?'}, {select} FROM _batch",
            [run_id, source] if own else [run_id, source, scope],
        )
    except BaseException:
        # A failed insert aborts the transaction, which then refuses the unregister: its error
        # would hide the insert's.
        with suppress(duckdb.Error):
            cur.unregister("_batch")
        raise
    cur.unregister("_batch")
    if by_content:
        carried = [r[0] for r in cur.execute(f"SELECT DISTINCT scope FROM {table} WHERE run_id = ?",  # noqa: S608
                                             [run_id]).fetchall()]
        affected = _delete(cur, table, "source = ? AND run_id <> ? AND (scope = ? OR scope IN (SELECT unnest(?::VARCHAR[])))",
                           [source, run_id, scope, carried])
    inserted = int(_scalar(cur, f"SELECT count(*) FROM {table} WHERE run_id = ?", [run_id]))  # noqa: S608
    if n is not None and inserted != n:  # pragma: no cover - defensive
        raise RuntimeError(f"{table}: inserted {inserted} of {n} rows")
    if window is not None:
        outside = _scalar(
            cur,
            f"SELECT count(*) FROM {table} WHERE run_id = ? AND NOT ({tcol} >= ? AND {tcol} < ?)",  # noqa: S608
            [run_id, window.start, window.end],
        )
        if outside:
            raise BatchOutsideWindow(f"{table}: {outside} rows fall outside the collected window {window}")
    if table in DAY_COLUMN:
        affected |= _affected_days(cur, table, "run_id = ?", [run_id])
    days = sorted(affected)
    if table == "cost_lines":
        with _changes(cur, "cost_daily", "charge_date", days) as changed:
            refresh_cost_daily(cur, days)
    elif table in ROLLUPS:
        with _changes(cur, ROLLUPS[table][0], "day", days, source, scope) as changed:
            refresh_rollup(cur, table, source, scope, days)
    else:
        changed = set()
    return Landed(inserted, frozenset(d.date() if isinstance(d, datetime) else d for d in changed))


@contextmanager
def _changes(cur: duckdb.DuckDBPyConnection, rollup: str, day: str, days: list[Any], source: str | None = None,
             scope: str | None = None) -> Iterator[set[Any]]:
    """The days among `days` whose rollup rows differ after the block from before it (filled on exit).

    A restated bill or a re-collected window is mostly what was there: only the days it really
    changed need attributing again."""
    changed: set[Any] = set()
    if not days:
        yield changed
        return
    where = f"{day} IN (SELECT unnest($days::DATE[]))" + (" AND source = $source AND scope = $scope" if source is not None else "")
    binds: dict[str, Any] = {"days": days, **({"source": source, "scope": scope} if source is not None else {})}
    cur.execute(f"CREATE OR REPLACE TEMP TABLE _rollup_before AS SELECT * FROM {rollup} WHERE {where}", binds)  # noqa: S608
    before = {r[0] for r in cur.execute(f"SELECT DISTINCT {day} FROM _rollup_before").fetchall()}  # noqa: S608
    yield changed
    after = {r[0] for r in cur.execute(f"SELECT DISTINCT {day} FROM {rollup} WHERE {where}", binds).fetchall()}  # noqa: S608
    # A day held on one side only (new, or emptied) changed; only days held on both sides are
    # compared row by row, so a file of new days costs no comparison.
    changed.update(before ^ after)
    if before & after:
        binds["days"] = sorted(before & after)
        # Rows counted +1 after and -1 before: a row whose count is not 0 changed. A hash aggregate,
        # where EXCEPT ALL numbers every row with a window (3x slower).
        rows = cur.execute(
            f"SELECT DISTINCT {day} FROM (SELECT * EXCLUDE (_side), sum(_side) AS _n FROM ("  # noqa: S608
            f"SELECT *, 1 AS _side FROM {rollup} WHERE {where} UNION ALL "
            f"SELECT *, -1 FROM _rollup_before WHERE {where}) GROUP BY ALL) WHERE _n <> 0",
            binds).fetchall()
        changed.update(r[0] for r in rows)
    cur.execute("DROP TABLE _rollup_before")


def _delete(cur: duckdb.DuckDBPyConnection, table: str, where: str, params: list[Any]) -> set[datetime]:
    """Delete the rows of `table` matching `where`; returns the days they were on."""
    affected = _affected_days(cur, table, where, params)
    cur.execute(f"DELETE FROM {table} WHERE {where}", params)  # noqa: S608 - table/column from constants
    return affected


def _affected_days(cur: duckdb.DuckDBPyConnection, table: str, where: str, params: list[Any]) -> set[datetime]:
    if table not in DAY_COLUMN:
        return set()
    rows = cur.execute(f"SELECT DISTINCT {DAY_COLUMN[table]} FROM {table} WHERE {where}", params).fetchall()  # noqa: S608
    return {r[0] for r in rows}


def refresh_cost_daily(cur: duckdb.DuckDBPyConnection, days: list[Any]) -> None:
    """Rebuild the daily cost rollup for the given days from the cost lines (same transaction)."""
    if not days:
        return
    cur.execute("DELETE FROM cost_daily WHERE charge_date IN (SELECT unnest(?::DATE[]))", [days])
    cur.execute(
        """
        INSERT INTO cost_daily
        SELECT charge_date, source, scope, provider_name, billing_account_id, sub_account_id, service_name,
               service_category, region_id, resource_id, resource_key, resource_type, charge_category,
               pricing_category, billing_currency, project, team, environment, model_id,
               sum(billed_cost), sum(effective_cost), sum(list_cost),
               coalesce(sum(effective_cost) FILTER (WHERE commitment_discount_id IS NOT NULL), 0),
               bool_or(estimated), count(*)
        FROM cost_lines
        -- A split origin's dollars are its allocated rows' (FOCUS split cost allocation): counted there.
        WHERE charge_date IN (SELECT unnest(?::DATE[])) AND split_origin IS NOT TRUE
        GROUP BY ALL
        """,
        [days],
    )


def rollup_select(table: str, where: str) -> str:
    """SELECT building rollup rows of hourly `table` from its rows matching `where` (constants only)."""
    _, keys, measures = ROLLUPS[table]
    return (f"SELECT CAST(hour_start AS DATE) AS day, {', '.join(keys)}, {measures} "  # noqa: S608
            f"FROM {table} WHERE {where} GROUP BY ALL")


def refresh_rollup(cur: duckdb.DuckDBPyConnection, table: str, source: str, scope: str, days: list[Any]) -> None:
    """Rebuild one source/scope's daily rollup of hourly `table` for the given days (same transaction).

    Only that source and scope are touched, so a day that retention has already trimmed elsewhere
    keeps the other sources' rollup rows.
    """
    if not days:
        return
    rollup = ROLLUPS[table][0]
    cur.execute(f"DELETE FROM {rollup} WHERE source = ? AND scope = ? AND day IN (SELECT unnest(?::DATE[]))",  # noqa: S608
                [source, scope, days])
    where = "source = ? AND scope = ? AND CAST(hour_start AS DATE) IN (SELECT unnest(?::DATE[]))"
    cur.execute(f"INSERT INTO {rollup} BY NAME {rollup_select(table, where)}", [source, scope, days])  # noqa: S608


def insert_quarantine(cur: duckdb.DuckDBPyConnection, run_id: int, source: str,
                      rows: Sequence[Mapping[str, Any]]) -> int:
    if not rows:
        return 0
    cur.executemany(
        "INSERT INTO quarantine (run_id, source, origin, line, reason, raw) VALUES (?, ?, ?, ?, ?, ?)",
        [[run_id, source, r["origin"], r.get("line"), r["reason"], (r.get("raw") or "")[:2000]] for r in rows],
    )
    return len(rows)


# The daily tables that say which days hold which facts, with their day column.
COVERAGE = {"cost": ("cost_daily", "charge_date"), "GPU-hours": ("gpu_daily", "day"), "tokens": ("token_daily", "day")}


def coverage(store: Store) -> dict[str, tuple[date, date] | None]:
    """Per fact, the first and the last day the store holds (None: no rows)."""
    out: dict[str, tuple[date, date] | None] = {}
    for fact, (table, day) in COVERAGE.items():
        first, last = store.query(f"SELECT min({day}), max({day}) FROM {table}")[0]  # noqa: S608 - constants
        out[fact] = (first, last) if first is not None else None
    return out
