"""The DuckDB store: connections, migrations, the run ledger and atomic window replacement."""

from finops.store.db import Store, open_store

__all__ = ["Store", "open_store"]
