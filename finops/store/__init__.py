"""The DuckDB store: connections, migrations, the run ledger, window replacement, rollups, retention.

`open_store` is the one way in: it opens the file and, for the writer, upgrades the schema and marks
runs an earlier process left `running` as interrupted.
"""

from __future__ import annotations

from pathlib import Path

from finops.settings import DuckDBSettings
from finops.store.db import Store, connect
from finops.store.ledger import fail_interrupted_runs
from finops.store.migrate import upgrade
from finops.timeutil import Clock, utcnow

__all__ = ["Store", "open_store"]


def open_store(path: Path | str, limits: DuckDBSettings | None = None, *, read_only: bool = False,
               migrate: bool = True, clock: Clock = utcnow) -> Store:
    """Open (creating if needed) and, unless read-only, upgrade the database to the newest schema."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = connect(path, limits or DuckDBSettings(), read_only=read_only)
    store = Store(path, con, read_only=read_only, clock=clock)
    if migrate and not read_only:
        upgrade(store)
        fail_interrupted_runs(store)
    return store
