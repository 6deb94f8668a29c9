"""`finops db upgrade` and `finops ingest focus` through the real CLI: what they leave in the store
and what they tell the user."""

from __future__ import annotations

import subprocess
import sys
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


def test_a_command_on_a_store_another_process_writes_says_what_to_do(db: Path, tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import sys, duckdb; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); sys.stdin.read()", str(db)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for args in (["keys", "create", "--role", "admin"], ["ingest", "focus", str(tmp_path / "x.csv")],
                     ["report", "idle-gpus"], ["serve", "--port", "0"]):
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 1, (args, result.output)
            assert f"is in use by process {holder.pid}" in result.output, (args, result.output)
            assert "Traceback" not in result.output and "IOException" not in result.output
    finally:
        holder.communicate("", timeout=10)
