"""The report cache sees every landing, in whatever order runs finish: a run that started before
another and lands after it still invalidates the cached report (issue: a stale $1 for a $1001 store)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from finops.batch import Batch, Task
from finops.collect import RunResult, run_task
from finops.sources.focus import SOURCE, file_task
from finops.tags import TagRules
from tests.api.conftest import Api, Keys
from tests.support import example_a

WINDOW = {"start": "2026-11-02", "end": "2026-11-05"}


def _held(task: Task, release: threading.Event, started: threading.Event) -> Task:
    def fetch() -> Batch:
        started.set()
        assert release.wait(30), "never released"
        return task.fetch()

    return Task(task.scope, task.window, fetch)


def test_a_run_landing_after_a_later_one_invalidates_the_cache(start_api: Callable[..., Api], keys: Keys,
                                                              rules: TagRules, tmp_path: Path) -> None:
    api = start_api()
    day = Decimal("534.00")  # example A's bill, one day

    def total() -> Decimal:
        r = api.get("/v1/reports/unit-economics", keys.viewer, params=WINDOW)
        assert r.status_code == 200, r.text
        return Decimal(str(r.json()["totals"]["cost"]))

    assert total() == day
    early, late = tmp_path / "day4.csv", tmp_path / "day3.csv"
    early.write_text(example_a.focus_csv(example_a.DAY + timedelta(days=2)))
    late.write_text(example_a.focus_csv(example_a.DAY + timedelta(days=1)))

    release, started = threading.Event(), threading.Event()
    landed: list[RunResult] = []
    held = _held(file_task(rules, early), release, started)
    first = threading.Thread(target=lambda: landed.append(run_task(api.store, SOURCE, held)))
    first.start()  # the earlier run: recorded first, lands last
    assert started.wait(10)
    later = run_task(api.store, SOURCE, file_task(rules, late))
    assert later.status == "succeeded"
    assert total() == 2 * day  # cached now, at the version the later run made
    release.set()
    first.join(30)
    [earlier] = landed
    assert earlier.status == "succeeded" and earlier.run_id < later.run_id  # the lower run id landed last
    assert total() == 3 * day
