"""Alembic environment: runs hand-written revisions on a connection handed in by finops.store."""

from __future__ import annotations

from alembic import context

import finops.store.migrate  # noqa: F401 - registers Alembic's DuckDB implementation

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `finops db upgrade` and tests run migrations
    raise RuntimeError("run migrations through `finops db upgrade` (finops.store.migrate)")

context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
