"""The source-run ledger: one row per collection or ingest, whatever its outcome."""

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


def watermark(store: Store, source: str) -> datetime | None:
    """The end of the newest successful window of a source: collected data runs up to here."""
    row = store.query(
        "SELECT max(window_end) FROM source_runs WHERE source = ? AND status = 'succeeded'", [source]
    )
    return row[0][0] if row else None
