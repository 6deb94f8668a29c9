"""`finops serve` stops within 10 s of SIGTERM, whatever it is doing, and leaves the store as it was
before the job it interrupted: a real service process, a slow real Prometheus behind a fault proxy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from finops.store.local_access import access_file
from tests.reliability.test_kill import check_restart, prepared  # noqa: F401 - the fixture
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.prometheus import PrometheusServer, free_port

STOP_WITHIN = 10.0


def _serve(db: Path, prom_url: str, tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    config = tmp_path / "finops.toml"
    config.write_text(f"""
[prometheus]
url = "{prom_url}"
max_points_per_query = 4
max_retries = 0

[schedule]
run_on_start = true

[schedule.weekly]
enabled = false

[schedule.sources.prometheus]
enabled = true
every_minutes = 600
initial_days = 2
""")
    port = free_port()
    env = {**os.environ, "FINOPS_DB": str(db), "FINOPS_CONFIG": str(config)}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "finops", "serve", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return proc, f"http://127.0.0.1:{port}"


def _collecting(url: str, db: Path) -> bool:
    try:
        key = json.loads(access_file(db).read_text())["key"]
        sources = httpx.get(f"{url}/v1/sources", headers={"Authorization": f"Bearer {key}"}, timeout=2).json()
    except (OSError, ValueError, KeyError, httpx.HTTPError):
        return False
    return any(s["source"] == "prometheus" and s["running"] for s in sources)


def test_sigterm_during_a_scheduled_collection_stops_in_time_and_stores_nothing_of_it(
        prepared: dict[str, Any], prom: PrometheusServer, tmp_path: Path) -> None:  # noqa: F811
    with FaultProxy(prom.url, lambda s: Fault(delay=1.0)) as slow:  # every query takes a second
        proc, url = _serve(prepared["db"], slow.url, tmp_path)
        try:
            deadline = time.monotonic() + 60
            while not _collecting(url, prepared["db"]):
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "the scheduled collection never started"
                time.sleep(0.2)
            asked = len(slow.seen)
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(STOP_WITHIN + 5)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert took < STOP_WITHIN, f"stopped after {took:.1f} s"
        assert code == 0
        assert len(slow.seen) < asked + 10  # the collection did not run on to its end
    killed = _running_run(prepared["db"])
    check_restart(prepared, killed, tmp_path)


def _running_run(db: Path) -> int:
    """The run the stop interrupted: still `running` in the ledger, as a crash would leave it."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        [(run_id,)] = con.execute("SELECT run_id FROM source_runs WHERE status = 'running'").fetchall()
    finally:
        con.close()
    return int(run_id)
