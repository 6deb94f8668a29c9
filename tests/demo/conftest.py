"""One demo database per test session, built through the real `finops demo --no-serve` command line,
and the demo's service (`finops serve`, API only) on it under real uvicorn."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finops.cli import app
from finops.demo.cli import demo_key, service
from finops.demo.prometheus import free_port
from finops.settings import Settings
from finops.timeutil import utcnow

SEED = 11
DAYS = 28  # four weeks: enough for a weekly report with its previous week, quicker than the default five


@dataclass(frozen=True)
class Demo:
    db: Path
    end: date
    output: str
    summary: dict[str, Any]  # summary.json, numbers as Decimal
    snapshot: Path  # a copy of the database, for read-only use while the service holds `db`


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    root = tmp_path_factory.mktemp("demo")
    db = root / "demo.duckdb"
    end = utcnow().date()
    result = CliRunner().invoke(app, ["demo", "--no-serve", "--seed", str(SEED), "--db", str(db), "--days",
                                      str(DAYS), "--end", end.isoformat()], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads((root / "demo-files" / "summary.json").read_text(), parse_float=Decimal)
    snapshot = root / "snapshot" / "demo.duckdb"
    snapshot.parent.mkdir()
    shutil.copy(db, snapshot)
    return Demo(db, end, result.output, summary, snapshot)


@dataclass(frozen=True)
class Served:
    url: str
    key: str


@pytest.fixture(scope="session")
def served(demo: Demo) -> Iterator[Served]:
    settings = Settings(db=demo.db)
    key = demo_key(settings)
    port = free_port()
    svc = service(settings, "127.0.0.1", port)
    svc.start()
    try:
        yield Served(f"http://127.0.0.1:{port}", key)
    finally:
        svc.stop()


def monday_before(end: date) -> date:
    """Monday of the last complete ISO week before `end`, computed here independently."""
    d = end - timedelta(days=7)
    while d.weekday() != 0:
        d -= timedelta(days=1)
    return d
