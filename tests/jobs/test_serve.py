"""`finops serve`: API and scheduler in one process over one store, started and stopped cleanly;
and the real command, stopped with SIGTERM, leaving its runs and weekly files in the database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from finops.collect import SOURCES
from finops.service import Service
from finops.settings import Settings
from finops.settings.schedule import ScheduleSettings, SourceSchedule
from finops.store import Store, open_store
from finops.store.ledger import runs
from tests.support import fake_source


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def stub_app(settings: Settings, store: Store | None = None, clock: Any = None) -> FastAPI:
    """A stand-in for finops.api.create_app: one route that reads the shared store."""
    app = FastAPI()

    @app.get("/runs")
    def count_runs() -> dict[str, int]:
        assert store is not None
        return {"runs": store.query("SELECT count(*) FROM source_runs")[0][0]}

    return app


def test_service_serves_api_and_scheduler_from_one_store(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SOURCES, "prometheus", "tests.support.fake_source")
    fake = fake_source.reset()
    schedule = ScheduleSettings()
    schedule.weekly.enabled = False
    schedule.sources = {"prometheus": SourceSchedule(enabled=True, align="hour", initial_days=1)}
    port = free_port()
    service = Service(settings, port=port, schedule=schedule, app_factory=stub_app, log_level="warning")
    service.start()
    try:
        assert service.jobs is not None and service.jobs.scheduler.running
        wait_for(lambda: len(fake.fetched) == 1)  # the collection ran at start
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/runs").json() == {"runs": 1})
    finally:
        service.stop()
    assert service.jobs is None and service.store is None  # scheduler shut down, store closed
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/runs", timeout=1)
    reopened = open_store(settings.db)  # the single-writer lock was released
    try:
        assert [r.status for r in runs(reopened, "prometheus")] == ["succeeded"]
    finally:
        reopened.close()


def test_no_scheduler_serves_the_api_only(settings: Settings) -> None:
    service = Service(settings, port=free_port(), scheduler=False, app_factory=stub_app, log_level="warning")
    service.start()
    try:
        assert service.jobs is None
        assert httpx.get(f"http://127.0.0.1:{service.port}/runs").json() == {"runs": 0}
    finally:
        service.stop()


def test_finops_serve_command_runs_api_and_scheduler_until_sigterm(tmp_path: Path) -> None:
    pytest.importorskip("finops.api")
    port, closed = free_port(), free_port()
    db = tmp_path / "finops.duckdb"
    env = {**os.environ, "FINOPS_DB": str(db), "FINOPS_PROMETHEUS_URL": f"http://127.0.0.1:{closed}",
           "FINOPS_PROMETHEUS_MAX_RETRIES": "0", "FINOPS_REPORTS_DIR": str(tmp_path / "reports"),
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "FINOPS_CONFIG"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "finops", "serve", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _healthy(port), timeout=30)
        wait_for(lambda: any((tmp_path / "reports").glob("weekly-*.xlsx")), timeout=20)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    log = out.decode(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    assert "scheduler stopped" in log and "finops serve stopped (signal 15)" in log
    assert not db.with_name(db.name + ".wal").exists()  # the store was closed, not abandoned
    store = open_store(db)
    try:
        # Prometheus did not answer: the failed run is in the ledger; AWS/Azure are not configured.
        assert {r.source: r.status for r in runs(store)} == {"prometheus": "failed"}
        assert {f for (f,) in store.query("SELECT format FROM report_files")} == {"xlsx", "csv"}
    finally:
        store.close()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
