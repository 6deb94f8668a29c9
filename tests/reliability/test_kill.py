"""A process killed with SIGKILL in the middle of a FOCUS ingest or a collection, then restarted.

A child process (tests/reliability/child.py) owns the database file and runs the work; the parent
kills it with `kill -9` at a marker the child prints once its run row reads `running` (or, for the
transaction test, from inside DuckDB's INSERT). The parent then reopens the file as the restarted
service would: it opens, every fact table is exactly as before the run, nothing of the killed run is
stored, and the ledger shows that run as failed (interrupted). A new run then succeeds.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from finops.collect import ingest_focus
from finops.settings import Settings
from finops.store import StoreBusy, open_store
from finops.tags import TagRules
from tests.reliability.helpers import FACT_TABLES, snapshot
from tests.support import example_a
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.prometheus import PrometheusServer

ROOT = Path(__file__).resolve().parents[2]
BIG_ROWS = 100_000


class Child:
    """The child process and its stdout lines (read on a thread, so waits can time out)."""

    def __init__(self, *args: str):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "tests.reliability.child", *args], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("EOF")

    def wait_for(self, prefix: str, timeout: float = 60) -> str:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                self.kill()
                raise AssertionError(f"no {prefix!r} from the child in {timeout} s") from None
            if line == "EOF":
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise AssertionError(f"the child ended before {prefix!r}: {err[-2000:]}")
            if line.startswith(prefix):
                return line

    def kill(self) -> int:
        os.kill(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait(timeout=30)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()
        return code


@pytest.fixture
def prepared(settings: Settings, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A database with worked example A in it, closed, and its snapshot."""
    store = open_store(settings.db, settings.duckdb)
    example_a.load(store, TagRules.from_settings(settings), tmp_path)
    before = snapshot(store)
    runs = store.query("SELECT count(*) FROM source_runs")[0][0]
    store.close()
    yield {"db": settings.db, "before": before, "runs": runs}


@pytest.fixture(scope="module")
def big_focus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated FOCUS file of BIG_ROWS rows (about 12 MB), written by DuckDB in a fraction of a second."""
    path = tmp_path_factory.mktemp("big") / "big-focus.csv"
    duckdb.sql(f"""
        COPY (SELECT (i % 1000) / 100 AS BilledCost, (i % 1000) / 100 AS EffectiveCost, 'USD' AS BillingCurrency,
                     strftime(TIMESTAMP '2026-10-01' + to_hours(i % 720), '%Y-%m-%dT%H:%M:%SZ') AS ChargePeriodStart,
                     strftime(TIMESTAMP '2026-10-01' + to_hours(i % 720 + 1), '%Y-%m-%dT%H:%M:%SZ') AS ChargePeriodEnd,
                     'Usage' AS ChargeCategory, 'EC2' AS ServiceName, 'acct' AS BillingAccountId,
                     'AWS' AS ProviderName, 'i-' || (i % 5000) AS ResourceId,
                     '{{"Project": "p' || (i % 50) || '", "Team": "t' || (i % 7) || '"}}' AS Tags
              FROM range({BIG_ROWS}) t(i)) TO '{path}' (HEADER, DELIMITER ',')""")
    return path


def check_restart(prepared: dict[str, Any], killed_run: int, tmp_path: Path) -> None:
    """Reopen as a restarted service would and check that nothing of the killed run remains."""
    store = open_store(prepared["db"])  # migrations, then interrupted runs are marked failed
    try:
        assert snapshot(store) == prepared["before"]
        for table in FACT_TABLES:
            if table not in ("cost_daily", "gpu_daily", "token_daily"):  # rollups carry no run id
                assert store.query(f"SELECT count(*) FROM {table} WHERE run_id = ?", [killed_run]) == [(0,)], table
        [(status, error, finished)] = store.query(
            "SELECT status, error, finished_at FROM source_runs WHERE run_id = ?", [killed_run])
        assert status == "failed" and error.startswith("interrupted") and finished is not None
        assert store.query("SELECT count(*) FROM source_runs WHERE status = 'running'") == [(0,)]
        assert store.query("SELECT count(*) FROM source_runs")[0][0] == prepared["runs"] + 1
        # The file is writable and whole: a new run lands and the rollup agrees with the lines.
        path = tmp_path / "after-restart.csv"
        path.write_text(example_a.focus_csv(day=example_a.DAY.replace(day=9)))
        [r] = ingest_focus(store, TagRules.build(["project", "team", "environment", "model_id"]), [path])
        assert r.status == "succeeded" and r.rows == 5
        assert store.query("SELECT sum(billed_cost) FROM cost_lines") == store.query(
            "SELECT sum(billed_cost) FROM cost_daily")
    finally:
        store.close()


@pytest.mark.parametrize("phase", ["parsing", "landing"])
def test_sigkill_during_a_focus_ingest(prepared: dict[str, Any], big_focus: Path, tmp_path: Path,
                                       phase: str) -> None:
    child = Child("focus", str(prepared["db"]), str(big_focus))
    marker = child.wait_for("RUNNING")
    _, run_id, status = marker.split()
    assert status == "running"  # the ledger said so, in the database, before the kill
    if phase == "landing":
        child.wait_for("FETCHED")  # the file is parsed: the child now writes 100,000 rows in one transaction
    assert child.kill() == -signal.SIGKILL
    check_restart(prepared, int(run_id), tmp_path)


def test_sigkill_mid_transaction_keeps_nothing_of_the_batch(prepared: dict[str, Any], tmp_path: Path) -> None:
    child = Child("stream", str(prepared["db"]))
    child.wait_for("LANDING")  # printed by the batch stream DuckDB is inserting from
    assert child.kill() == -signal.SIGKILL
    store = open_store(prepared["db"])
    try:
        [(run_id,)] = store.query("SELECT max(run_id) FROM source_runs")
        assert store.query("SELECT count(*) FROM gpu_hours WHERE scope = 'stream'") == [(0,)]
    finally:
        store.close()
    check_restart(prepared, run_id, tmp_path)


def test_sigkill_during_a_collection(prepared: dict[str, Any], prom: PrometheusServer, tmp_path: Path) -> None:
    with FaultProxy(prom.url, lambda s: Fault(delay=0.2)) as slow:  # a slow Prometheus keeps the run going
        child = Child("prometheus", str(prepared["db"]), slow.url)
        _, run_id, status = child.wait_for("RUNNING").split()
        assert status == "running"
        # Another process asking for a collection meanwhile cannot even open the file: rejected, never both.
        with pytest.raises(StoreBusy, match=f"in use by process {child.proc.pid}"):
            open_store(prepared["db"])
        assert child.kill() == -signal.SIGKILL
    check_restart(prepared, int(run_id), tmp_path)
