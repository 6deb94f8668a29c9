"""Shared fixtures: a real DuckDB file per test, settings built explicitly (never from the environment)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from finops.settings import Settings
from finops.store import Store, open_store
from finops.tags import TagRules
from tests.support.clock import FixedClock

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FOCUS_SAMPLE = FIXTURES / "focus" / "focus-1.0-sample.csv"  # the FinOps Foundation's, CC BY 4.0
SCRAPES = FIXTURES / "scrapes"  # real dcgm-exporter and vLLM /metrics captures


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db=tmp_path / "finops.duckdb")


@pytest.fixture
def clock() -> FixedClock:
    """The injected clock of the store, the scheduler and the API: fixed at TEST_NOW, never the calendar."""
    return FixedClock()


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty store at the head revision, built once per test process: each test's store starts as a
    copy of it (running every migration takes ~0.2 s; opening a current store ~0.06 s)."""
    path = tmp_path_factory.mktemp("template") / "finops.duckdb"
    open_store(path).close()
    return path


@pytest.fixture
def store(settings: Settings, clock: FixedClock, migrated: Path) -> Iterator[Store]:
    if not settings.db.exists():
        shutil.copyfile(migrated, settings.db)
    s = open_store(settings.db, settings.duckdb, clock=clock)
    yield s
    s.close()


@pytest.fixture
def rules(settings: Settings) -> TagRules:
    return TagRules.from_settings(settings)
