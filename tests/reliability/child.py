"""A process for the SIGKILL tests to kill: it runs one ingest or collection on a database file and
prints markers (flushed) at the moments the parent waits for.

    python -m tests.reliability.child focus DB FILE         # RUNNING <run> <status>, then FETCHED
    python -m tests.reliability.child prometheus DB URL     # RUNNING <run> <status> after two queries
    python -m tests.reliability.child stream DB             # LANDING: mid-INSERT, inside the transaction

Each marker that names a run also prints the run's status as read from the database at that moment.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa

from finops.batch import Batch, Task
from finops.collect import collect, run_tasks
from finops.settings import PrometheusSettings, Settings
from finops.sources.focus import file_task
from finops.sources.prometheus.gpu import GPU_SCHEMA
from finops.store import Store, open_store
from finops.tags import TagRules
from finops.timeutil import Window

STREAM_DAY = datetime(2026, 11, 3)
STREAM_BATCHES, STREAM_ROWS = 8, 2000


def say(text: str) -> None:
    print(text, flush=True)


def running(store: Store) -> str:
    [(run_id, status)] = store.query("SELECT run_id, status FROM source_runs ORDER BY run_id DESC LIMIT 1")
    return f"RUNNING {run_id} {status}"


def focus(store: Store, path: Path) -> None:
    inner = file_task(TagRules.build(["project", "team", "environment", "model_id"]), path)

    def fetch() -> Batch:
        say(running(store))
        batch = inner.fetch()
        say("FETCHED")
        return batch

    run_tasks(store, "focus", [Task(inner.scope, None, fetch)])


def prometheus(store: Store, db: Path, url: str) -> None:
    settings = Settings(db=db, prometheus=PrometheusSettings(url=url, token_source="vllm", max_retries=0))

    def progress(done: int, total: int) -> None:
        if done == 2:
            say(running(store))

    collect(store, settings, "prometheus", Window(datetime(2026, 11, 2), datetime(2026, 11, 3)), progress)


def stream(store: Store) -> None:
    def batches() -> Iterator[pa.RecordBatch]:
        for b in range(STREAM_BATCHES):
            rows = [{"hour_start": STREAM_DAY + timedelta(hours=i % 24), "gpu_uuid": f"GPU-{b}-{i}",
                     "busy": 0.5, "samples": 60} for i in range(STREAM_ROWS)]
            yield pa.RecordBatch.from_pylist(rows, schema=GPU_SCHEMA)
            if b == 2:
                say("LANDING")  # DuckDB is inserting this batch: the transaction is open
                time.sleep(120)

    def fetch() -> Batch:
        return Batch(facts={"gpu_hours": pa.RecordBatchReader.from_batches(GPU_SCHEMA, batches())})

    run_tasks(store, "prometheus", [Task("stream", Window(STREAM_DAY, STREAM_DAY + timedelta(days=1)), fetch)])


def main(argv: list[str]) -> None:
    mode, db = argv[0], Path(argv[1])
    store = open_store(db)
    if mode == "focus":
        focus(store, Path(argv[2]))
    elif mode == "prometheus":
        prometheus(store, db, argv[2])
    elif mode == "stream":
        stream(store)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    say("DONE")


if __name__ == "__main__":
    main(sys.argv[1:])
