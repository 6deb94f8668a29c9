"""Shared fixtures: a real DuckDB file per test, settings built explicitly (never from the environment)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from finops.settings import Settings
from finops.store.db import Store, open_store
from finops.tags import TagRules

SHARED = Path(__file__).resolve().parents[2] / "shared"
FOCUS_SAMPLE = SHARED / "data" / "focus-1.0-sample.csv"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db=tmp_path / "finops.duckdb")


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = open_store(settings.db, settings.duckdb)
    yield s
    s.close()


@pytest.fixture
def rules(settings: Settings) -> TagRules:
    return TagRules.from_settings(settings)
