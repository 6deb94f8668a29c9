"""`finops db upgrade` and `finops ingest focus` through the real CLI: what they leave in the store
and what they tell the user."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finops.cli import app
from finops.settings import Settings
from finops.store import Store, open_store
from finops.store.ledger import runs, start_run
from finops.timeutil import Window
from tests.support import example_a


@pytest.fixture
def db(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FINOPS_DB", str(settings.db))
    return settings.db


def test_db_upgrade_marks_a_run_a_killed_process_left_running(db: Path) -> None:
    store = open_store(db)
    day = example_a.DAY.date()
    start_run(store, "prometheus", "prometheus", Window.from_dates(day, day.replace(day=day.day + 1)))
    store.close()  # the process stops here, as if killed: the run stays `running`
    with _read(db) as check:
        assert [r.status for r in runs(check)] == ["running"]

    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "1 run(s) left running by a stopped process marked failed" in result.output
    with _read(db) as check:
        [run] = runs(check)
    assert run.status == "failed" and "interrupted" in (run.error or "")


def test_a_file_whose_every_row_is_quarantined_is_not_a_success(db: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    good = example_a.focus_csv().splitlines()
    header = good[0]
    rows = [row.replace("USD", "XYZ") for row in good[1:]]  # an unknown currency on every row
    bad.write_text("\n".join([header, *rows]) + "\n")

    result = CliRunner().invoke(app, ["ingest", "focus", str(bad)])
    assert result.exit_code == 1
    assert f"every row quarantined ({len(rows)}); nothing stored" in result.output
    with _read(db) as check:
        assert check.query("SELECT count(*) FROM cost_lines")[0][0] == 0
        assert check.query("SELECT count(*) FROM quarantine")[0][0] == len(rows)


@contextmanager
def _read(db: Path) -> Iterator[Store]:
    """The store opened read-only for a check, closed afterwards."""
    store = open_store(db, read_only=True)
    try:
        yield store
    finally:
        store.close()
