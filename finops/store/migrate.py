"""Schema upgrades through Alembic and the hand-written revisions in `finops/store/migrations/`
(shipped as package data, so an installed wheel upgrades a database as a checkout does)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.ddl.impl import DefaultImpl
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from duckdb_engine import ConnectionWrapper
from sqlalchemy.pool import StaticPool

from finops.store.db import Store


class AlembicDuckDBImpl(DefaultImpl):
    """Alembic has no DuckDB implementation (KeyError: 'duckdb'); DuckDB DDL is transactional.

    Without `transactional_ddl` a migration that fails halfway would leave partial DDL behind.
    """

    __dialect__ = "duckdb"
    transactional_ddl = True


MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _engine(store: Store) -> sa.Engine:
    # SQLAlchemy runs on a cursor of the store's own connection: opening the file a second time
    # with another configuration is refused by DuckDB.
    return sa.create_engine("duckdb://", creator=lambda: ConnectionWrapper(store.cursor()), poolclass=StaticPool)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(store: Store) -> str | None:
    engine = _engine(store)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(store: Store, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade to `revision` in one transaction; a failure leaves the database as it was.

    Returns (revision before, revision after); equal when the database was already current.
    """
    before = current_revision(store)
    if before == head_revision() and revision == "head":
        return before, before
    cfg = _config()
    engine = _engine(store)
    try:
        with store._write_lock, engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()
    return before, current_revision(store)


def is_current(store: Store) -> bool:
    return current_revision(store) == head_revision()
