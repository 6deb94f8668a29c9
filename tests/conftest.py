"""Shared fixtures: a real DuckDB file per test, settings built explicitly (never from the environment)."""

from __future__ import annotations

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


@pytest.fixture
def store(settings: Settings, clock: FixedClock) -> Iterator[Store]:
    s = open_store(settings.db, settings.duckdb, clock=clock)
    yield s
    s.close()


@pytest.fixture
def rules(settings: Settings) -> TagRules:
    return TagRules.from_settings(settings)
