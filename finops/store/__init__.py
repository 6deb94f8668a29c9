"""The DuckDB store: connections, migrations, the run ledger, window replacement, rollups, retention.

`open_store` is the one way in: it opens the file and, for the writer, upgrades the schema and marks
runs an earlier process left `running` as interrupted.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from finops.settings import DuckDBSettings
from finops.store.db import Store, connect
from finops.store.ledger import fail_interrupted_runs
from finops.store.migrate import upgrade
from finops.timeutil import Clock, utcnow

__all__ = ["Store", "StoreBusy", "open_store"]

_HELD_BY = re.compile(r"\(PID (\d+)\)")


class StoreBusy(RuntimeError):
    """The file is held for writing by another process (DuckDB allows one writer per file)."""

    def __init__(self, path: Path, pid: str | None):
        holder = f"process {pid}" if pid else "another process"
        super().__init__(
            f"{path} is in use by {holder} (the store has one writer, usually `finops serve`): stop it first, "
            "or do this through its HTTP API (keys: POST /v1/keys; collections: POST /v1/sources/{name}/runs; "
            "reports: GET /v1/reports/...)")
        self.pid = pid


def open_store(path: Path | str, limits: DuckDBSettings | None = None, *, read_only: bool = False,
               migrate: bool = True, clock: Clock = utcnow) -> Store:
    """Open (creating if needed) and, unless read-only, upgrade the database to the newest schema."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = connect(path, limits or DuckDBSettings(), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        held = _HELD_BY.search(str(exc))
        raise StoreBusy(path, held.group(1) if held else None) from None
    store = Store(path, con, read_only=read_only, clock=clock)
    if migrate and not read_only:
        upgrade(store)
        fail_interrupted_runs(store)
    return store
