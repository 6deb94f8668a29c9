"""Shared fixtures: a real DuckDB file per test, settings built explicitly (never from the environment)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session")
def example_a_store(tmp_path_factory: pytest.TempPathFactory, migrated: Path) -> Path:
    """Worked example A landed once per test process (~0.5 s a time): the store of a test that asks
    for it (`example_a_data`, through tests/api's `data`) starts as a copy."""
    from tests.support.example_a import load

    folder = tmp_path_factory.mktemp("example-a")
    path = folder / "finops.duckdb"
    shutil.copyfile(migrated, path)
    s = Settings(db=path)
    store = open_store(path, s.duckdb, clock=FixedClock())
    try:
        load(store, TagRules.from_settings(s), folder)
    finally:
        store.close()
    return path


@pytest.fixture
def example_a_data() -> None:
    """Asks for worked example A's data: the `store` fixture then starts from a copy of it."""


@pytest.fixture
def store(settings: Settings, clock: FixedClock, migrated: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    if not settings.db.exists():
        example = "example_a_data" in request.fixturenames
        shutil.copyfile(request.getfixturevalue("example_a_store") if example else migrated, settings.db)
    s = open_store(settings.db, settings.duckdb, clock=clock)
    yield s
    s.close()


@pytest.fixture
def rules(settings: Settings) -> TagRules:
    return TagRules.from_settings(settings)


# The slowest files (a JVM for Spark, property tests, live stacks, the demo), first: with
# `pytest -n 2 --dist loadfile` each file goes whole to the next free worker, so starting the long
# ones early keeps the two workers busy to the end instead of one finishing a long file alone.
# (`--no-loadscope-reorder` in pyproject.toml keeps xdist from putting the files with most tests first.)
SLOW_FIRST = ("lake/test_spark.py", "reports/test_stored_attribution_property.py", "simulate/test_end_to_end.py",
              "reports/test_reconciliation_property.py", "demo/test_demo.py", "demo/test_reader.py",
              "demo/test_notebooks.py", "simulate/test_deploy_walkthrough.py", "test_install.py")


# Folders whose files share a session fixture that is costly to build (the demo's database and
# service): under `--dist loadfile` they go to one worker together, so it is built once, not per worker.
TOGETHER = ("tests/demo/",)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile`, with the files of each TOGETHER folder as one unit of work."""
    if config.getvalue("dist") != "loadfile":
        return None  # xdist's own scheduler for the mode asked for
    from xdist.scheduler import LoadFileScheduling

    class FilesAndFolders(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return next((folder for folder in TOGETHER if path.startswith(folder)), path)

    return FilesAndFolders(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0].removeprefix("tests/")
        return SLOW_FIRST.index(path) if path in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the order within a file, and of the other files, is kept
