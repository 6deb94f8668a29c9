"""Schema is created and upgraded only by migrations; a failing migration changes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from finops.settings import Settings
from finops.store import migrate, open_store


def _tables(path: Path) -> set[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    finally:
        con.close()


def test_upgrade_creates_schema_and_second_upgrade_is_a_no_op(settings: Settings) -> None:
    store = open_store(settings.db, settings.duckdb, migrate=False)
    before, after = migrate.upgrade(store)
    assert before is None and after == migrate.head_revision()
    again = migrate.upgrade(store)
    assert again == (after, after)
    assert migrate.is_current(store)
    store.close()
    assert {"cost_lines", "gpu_hours", "token_hours", "inventory", "source_runs", "quarantine",
            "cost_daily", "alembic_version"} <= _tables(settings.db)


def test_failed_migration_leaves_database_as_it_was(settings: Settings, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(settings.db, settings.duckdb)
    store.close()
    tables_before = _tables(settings.db)
    head = migrate.head_revision()

    broken = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS, broken)
    (broken / "versions" / "0999_broken.py").write_text(
        '"""A revision that fails halfway."""\n'
        "from alembic import op\n"
        "revision = '0999'\n"
        f"down_revision = {migrate.head_revision()!r}\n"
        "branch_labels = None\ndepends_on = None\n\n"
        "def upgrade():\n"
        "    op.execute('CREATE TABLE half_done (a INTEGER)')\n"
        "    op.execute('ALTER TABLE cost_lines ADD COLUMN extra INTEGER')\n"
        "    op.execute('SELECT * FROM no_such_table')\n\n"
        "def downgrade():\n    pass\n"
    )
    monkeypatch.setattr(migrate, "MIGRATIONS", broken)
    store = open_store(settings.db, settings.duckdb, migrate=False)
    with pytest.raises(Exception, match="no_such_table"):
        migrate.upgrade(store)
    assert migrate.current_revision(store) == head
    cols = [r[0] for r in store.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'cost_lines'")]
    store.close()
    assert "extra" not in cols
    assert _tables(settings.db) == tables_before
