"""The source-run ledger: one row per collection or ingest, whatever its outcome.

This module is the only reader and writer of `source_runs`. Its one definition of how far a
source's data reaches (`watermark`) serves the scheduler's catch-up, the API and the alerts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from finops.store.db import Store
from finops.timeutil import Window


@dataclass(frozen=True)
class Run:
    run_id: int
    source: str
    scope: str
    window_start: datetime | None
    window_end: datetime | None
    status: str
    rows: int
    quarantined: int
    requests: int
    error: str | None
    started_at: datetime
    finished_at: datetime | None


RUN_COLUMNS = ", ".join(Run.__dataclass_fields__)


def start_run(store: Store, source: str, scope: str, window: Window | None) -> int:
    """Record a run as `running` (committed at once, so a crash leaves a trace)."""
    with store.transaction() as cur:
        row = cur.execute(
            "INSERT INTO source_runs (source, scope, window_start, window_end, status, started_at) "
            "VALUES (?, ?, ?, ?, 'running', ?) RETURNING run_id",
            [source, scope, window.start if window else None, window.end if window else None, store.clock()],
        ).fetchall()
    return int(row[0][0])


def succeed_run(cur: duckdb.DuckDBPyConnection, run_id: int, rows: int, quarantined: int, requests: int,
                details: dict[str, Any] | None, now: datetime) -> None:
    """Mark a run succeeded inside the transaction that lands its facts."""
    cur.execute(
        "UPDATE source_runs SET status = 'succeeded', rows = ?, quarantined = ?, requests = ?, "
        "details = ?, finished_at = ? WHERE run_id = ?",
        [rows, quarantined, requests, json.dumps(details or {}, default=str), now, run_id],
    )


def fail_run(store: Store, run_id: int, error: str, requests: int = 0,
             details: dict[str, Any] | None = None) -> None:
    with store.transaction() as cur:
        cur.execute(
            "UPDATE source_runs SET status = 'failed', error = ?, requests = ?, details = ?, finished_at = ? "
            "WHERE run_id = ?",
            [error[:4000], requests, json.dumps(details or {}, default=str), store.clock(), run_id],
        )


def fail_interrupted_runs(store: Store) -> int:
    """Runs still `running` when the single writer opens the file were interrupted (crash, kill)."""
    with store.transaction() as cur:
        rows = cur.execute(
            "UPDATE source_runs SET status = 'failed', error = 'interrupted: the process stopped before "
            "the run finished; nothing of it was stored', finished_at = ? WHERE status = 'running' "
            "RETURNING run_id",
            [store.clock()],
        ).fetchall()
    return len(rows)


def runs(store: Store, source: str | None = None, limit: int = 100) -> list[Run]:
    sql = f"SELECT {RUN_COLUMNS} FROM source_runs"  # noqa: S608 - column list is a constant
    params: list[Any] = []
    if source is not None:
        sql += " WHERE source = ?"
        params.append(source)
    sql += " ORDER BY run_id DESC LIMIT ?"
    params.append(limit)
    return [Run(*r) for r in store.query(sql, params)]


def is_running(store: Store, source: str) -> bool:
    return bool(store.query("SELECT count(*) FROM source_runs WHERE source = ? AND status = 'running'",
                            [source])[0][0])


# A run's window that reaches past the time it ran (e.g. a manual collect up to tomorrow) only holds
# data up to then: a success counts up to the earlier of its window's end and its start.
_REACH = "least(window_end, started_at)"


def watermark(store: Store, source: str) -> datetime | None:
    """How far `source`'s collected data reaches: the newest successful window's end (capped at the
    time that run started)."""
    row = store.query(f"SELECT max({_REACH}) FROM source_runs "  # noqa: S608 - a constant
                      "WHERE source = ? AND status = 'succeeded' AND window_end IS NOT NULL", [source])
    return row[0][0] if row else None


def open_failure(store: Store, source: str, since: datetime) -> datetime | None:
    """The start of the oldest failed window (from `since` on) that no later success of the same scope
    covers. A planning failure is recorded under the source's own id as scope; any later run covers it."""
    return store.query("""
        SELECT min(f.window_start) FROM source_runs f
        WHERE f.source = $source AND f.status = 'failed' AND f.window_start >= $floor
          AND NOT EXISTS (
              SELECT 1 FROM source_runs s
              WHERE s.source = f.source AND s.status = 'succeeded' AND s.run_id > f.run_id
                AND (s.scope = f.scope OR f.scope = f.source)
                AND s.window_start <= f.window_start AND s.window_end >= f.window_end)
        """, {"source": source, "floor": since})[0][0]


def latest_details(store: Store, source: str) -> dict[str, str | None]:
    """Scope -> the details (JSON) of the newest run of each scope of `source`."""
    return dict(store.query("SELECT scope, details FROM source_runs WHERE source = ? "
                            "QUALIFY row_number() OVER (PARTITION BY scope ORDER BY run_id DESC) = 1", [source]))


def scopes(store: Store) -> list[tuple[str, str]]:
    """(source, scope) of every run recorded."""
    return [(r[0], r[1]) for r in store.query("SELECT DISTINCT source, scope FROM source_runs")]


def data_version(store: Store) -> int:
    """A number that grows whenever a run lands data or a budget changes: the count of succeeded
    runs plus the count of budget changes (both tables only grow).

    Not the newest run id: a run that started earlier can land after a later one, and the data
    changes all the same.
    """
    return int(store.query("SELECT (SELECT count(*) FROM source_runs WHERE status = 'succeeded') + "
                           "(SELECT count(*) FROM budget_changes)")[0][0])


@dataclass(frozen=True)
class SourceState:
    """The ledger seen from one source: its newest run, newest success, last error and reach."""

    source: str
    last_run: Run | None
    running: bool
    watermark: datetime | None
    last_success_at: datetime | None
    rows: int | None
    first_run_at: datetime | None
    last_error: str | None  # the newest failure's error while no success came after it

    @property
    def failing(self) -> bool:
        return self.last_error is not None


_STATES = f"""
WITH agg AS (
    SELECT source, max(run_id) AS last_id,
           max(run_id) FILTER (WHERE status = 'succeeded') AS ok_id,
           max(run_id) FILTER (WHERE status = 'failed') AS failed_id,
           max({_REACH}) FILTER (WHERE status = 'succeeded') AS watermark,
           min(started_at) AS first_run,
           bool_or(status = 'running') AS running
    FROM source_runs GROUP BY source
)
SELECT a.source, a.running, a.watermark, o.finished_at, o.rows, a.first_run,
       CASE WHEN a.failed_id > coalesce(a.ok_id, 0) THEN f.error END,
       {", ".join("l." + c for c in Run.__dataclass_fields__)}
FROM agg a JOIN source_runs l ON l.run_id = a.last_id LEFT JOIN source_runs o ON o.run_id = a.ok_id
LEFT JOIN source_runs f ON f.run_id = a.failed_id
"""  # noqa: S608 - column names are constants


def source_states(store: Store, sources: list[str] | None = None) -> list[SourceState]:
    """One state per source in `sources` (in that order, including sources that never ran); every
    source in the ledger when None."""
    found: dict[str, Any] = {r[0]: r for r in store.query(_STATES)}
    out = []
    for s in (sorted(found) if sources is None else sources):
        r = found.get(s)
        if r is None:
            out.append(SourceState(s, None, False, None, None, None, None, None))
        else:
            out.append(SourceState(s, Run(*r[7:]), bool(r[1]), r[2], r[3], r[4], r[5], r[6]))
    return out
