"""`finops report` in a terminal-less run: an empty window says what the store holds, and the table
keeps every column whole when piped."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from finops.cli import app
from finops.settings import Settings
from finops.store import Store
from finops.tags import TagRules
from tests.support import example_a


@pytest.fixture
def loaded(store: Store, rules: TagRules, settings: Settings, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Path:
    example_a.load(store, rules, tmp_path)
    store.close()
    monkeypatch.setenv("FINOPS_DB", str(settings.db))
    return settings.db


def test_a_window_without_data_names_what_the_store_holds(loaded: Path) -> None:
    result = CliRunner().invoke(app, ["report", "unit-economics", "--start", "2025-01-01", "--end", "2025-01-08",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    day = example_a.DAY.date()
    assert (f"no data in [2025-01-01, 2025-01-08): the store holds cost {day} to {day}; "
            f"GPU-hours {day} to {day}; tokens {day} to {day}") in result.output


def test_the_piped_table_keeps_every_column(loaded: Path) -> None:
    day = example_a.DAY.date()
    result = CliRunner().invoke(app, ["report", "unit-economics", "--start", str(day), "--end",
                                      str(day.replace(day=day.day + 1))])
    assert result.exit_code == 0, result.output
    assert "no data" not in result.output
    header = next(line for line in result.output.splitlines() if "period_start" in line)
    for column in ("project", "team", "environment", "model_id", "cost_per_1k_generated_tokens", "avg_gpu_busy",
                   "idle_cost"):
        assert f" {column} " in header, header
