"""DuckDB connections: one writable connection per process, a cursor per thread.

DuckDB lets one process hold a file read-write; other processes use the HTTP API or open the
file read-only while no writer runs (see docs/architecture.md).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from finops.settings import DuckDBSettings
from finops.timeutil import Clock, utcnow


@dataclass
class Store:
    """An open DuckDB database. `cursor()` gives a connection safe for the calling thread."""

    path: Path
    con: duckdb.DuckDBPyConnection
    read_only: bool = False
    clock: Clock = utcnow  # stamps the ledger and tells sources what "now" is; tests inject their own
    _write_lock: threading.RLock = field(default_factory=threading.RLock)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        cur = self.con.cursor()
        # Every session works in UTC: TIMESTAMPTZ casts of zone-less text would otherwise use local time.
        cur.execute("SET TimeZone = 'UTC'")
        return cur

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write transaction on its own cursor; rolled back on any exception.

        Writers in this process are serialised: DuckDB's optimistic concurrency would make a
        second concurrent writer fail with a conflict instead of waiting.
        """
        with self._write_lock:
            cur = self.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
            finally:
                cur.close()

    def query(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        cur = self.cursor()
        try:
            return cur.execute(sql, params or []).fetchall()
        finally:
            cur.close()

    def close(self) -> None:
        self.con.close()


def connect(path: Path | str, limits: DuckDBSettings, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    config: dict[str, Any] = {"memory_limit": limits.memory_limit, "threads": limits.threads}
    if limits.temp_directory:
        config["temp_directory"] = limits.temp_directory
    return duckdb.connect(str(path), read_only=read_only, config=config)
