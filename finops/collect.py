"""Where sources meet the store: run a source's tasks and land each batch atomically.

`run_task` records the run, calls the task's fetch, then either lands the whole batch, re-attributes
the days it touched and marks the run succeeded in one transaction, or marks it failed and leaves
every fact (and every attributed day) as it was.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

from finops.attribution import materialize
from finops.batch import Batch, Progress, SourceFailed, Task
from finops.settings import Settings
from finops.sources.focus import SOURCE as FOCUS
from finops.sources.focus import file_task
from finops.store import Store
from finops.store.ledger import fail_run, start_run, succeed_run
from finops.store.load import insert_quarantine, replace_window
from finops.tags import TagRules
from finops.timeutil import Window

log = logging.getLogger(__name__)

# Source id -> module. Each module provides `tasks(settings, window, progress=None, *, now) -> list[Task]`.
# The id is also the stored `source` value and the settings section's name where it has one.
SOURCES: dict[str, str] = {
    "prometheus": "finops.sources.prometheus.collect",
    "aws_ce": "finops.sources.aws.ce",
    "aws_exports": "finops.sources.aws.exports",
    "aws_inventory": "finops.sources.aws.inventory",
    "azure": "finops.sources.azure.cost",
}
# Names accepted by `finops collect NAME` and `POST /v1/sources/{name}/runs`.
GROUPS: dict[str, list[str]] = {
    "prometheus": ["prometheus"],
    "aws": ["aws_inventory", "aws_ce", "aws_exports"],
    "azure": ["azure"],
    "all": ["aws_inventory", "aws_ce", "aws_exports", "azure", "prometheus"],
}


class SourceModule(Protocol):
    def tasks(self, settings: Settings, window: Window, progress: Progress | None = None, *,
              now: datetime) -> list[Task]: ...


@dataclass(frozen=True)
class RunResult:
    run_id: int
    source: str
    status: str
    rows: int = 0
    quarantined: int = 0
    requests: int = 0
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class AlreadyRunning(RuntimeError):
    """A collection of this source is already in progress in this process."""


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _source_lock(source: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(source, threading.Lock())


def run_task(store: Store, source: str, task: Task) -> RunResult:
    """Run one task of `source` and land its batch, or record the failure and change nothing."""
    run_id = start_run(store, source, task.scope, task.window)
    requests = 0
    batch: Batch | None = None
    try:
        batch = task.fetch()
        requests = batch.requests
        with store.transaction() as cur:
            if "inventory" in batch.facts:
                materialize.inventory_before(cur)
            rows, days = 0, set[date]()
            for table, data in batch.facts.items():
                landed = replace_window(cur, table, run_id=run_id, source=source, scope=task.scope,
                                        window=task.window, data=data, by_content=batch.by_content)
                rows, days = rows + landed.rows, days | landed.days
            if "inventory" in batch.facts:
                days |= materialize.inventory_days(cur)
            # Attribution of the days this landing touched, in its transaction (finops/attribution/materialize.py).
            materialize.attribute_days(cur, days)
            quarantined = insert_quarantine(cur, run_id, source, batch.quarantine)
            succeed_run(cur, run_id, rows, quarantined, batch.requests, batch.details, store.clock())
    except Exception as caught:  # every failure is recorded in the ledger and returned as a result
        exc: Exception = caught
        if batch is not None and batch.stream_errors:
            # Rows that stream failed to read while they landed: the source's failure, as a failed
            # fetch is, with what the batch says of itself (e.g. the file's signature).
            exc = SourceFailed(str(batch.stream_errors[0]), batch.requests, batch.details)
        requests = getattr(exc, "requests", requests)
        message = str(exc) if isinstance(exc, SourceFailed) else f"{type(exc).__name__}: {exc}"
        log.warning("run %s of %s failed: %s", run_id, source, message)
        fail_run(store, run_id, message, requests, exc.details if isinstance(exc, SourceFailed) else None)
        return RunResult(run_id, source, "failed", requests=requests, error=message)
    return RunResult(run_id, source, "succeeded", rows, quarantined, batch.requests, None, batch.details)


def run_tasks(store: Store, source: str, tasks: list[Task]) -> list[RunResult]:
    """Run tasks of one source in order. Two collections of one source never overlap in a process."""
    lock = _source_lock(source)
    if not lock.acquire(blocking=False):
        raise AlreadyRunning(f"a collection of {source!r} is already running")
    try:
        return [run_task(store, source, t) for t in tasks]
    finally:
        lock.release()


def source_module(source: str) -> SourceModule:
    if source not in SOURCES:
        raise KeyError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    return importlib.import_module(SOURCES[source])


def collect(store: Store, settings: Settings, source: str, window: Window,
            progress: Progress | None = None) -> list[RunResult]:
    """Plan and run one source over `window`. Planning errors are recorded as a failed run too."""
    try:
        tasks = source_module(source).tasks(settings, window, progress, now=store.clock())
    except Exception as exc:
        failed = Task(scope=source, window=window, fetch=_raiser(exc))
        return [run_task(store, source, failed)]
    return run_tasks(store, source, tasks)


def _raiser(exc: Exception) -> Any:
    def fetch() -> Batch:
        raise exc
    return fetch


def ingest_focus(store: Store, rules: TagRules, paths: Iterable[Path]) -> list[RunResult]:
    """FOCUS files into the store: one run per file, each file's rows replaced as a whole."""
    return run_tasks(store, FOCUS, [file_task(rules, p) for p in paths])
