"""`finops serve` stops within 10 s of SIGTERM, whatever it is doing, and leaves the store as it was
before the job it interrupted: a real service process, a slow real Prometheus behind a fault proxy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from finops.store.local_access import access_file
from tests.reliability.helpers import snapshot
from tests.reliability.test_kill import check_restart, prepared  # noqa: F401 - the fixture
from tests.support import moto as doubles
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.prometheus import PrometheusServer, free_port

STOP_WITHIN = 10.0
moto_server, moto = doubles.moto_server, doubles.moto  # fixtures


def _serve(db: Path, prom_url: str, tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    return _start(db, f"""
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
""", tmp_path)


def _start(db: Path, config: str, tmp_path: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """`finops serve` on a free port with `config` as its settings file; its output in serve.log."""
    path = tmp_path / "finops.toml"
    path.write_text(config)
    port = free_port()
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "finops", "serve", "--port", str(port)],
                                env={**os.environ, **(env or {}), "FINOPS_DB": str(db), "FINOPS_CONFIG": str(path)},
                                stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


def _stop_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str, log: Path) -> tuple[int, float]:
    """Wait (60 s at most) until `ready()`, send SIGTERM; the exit code and the seconds it took.
    The process is killed if it is still running when this returns or fails."""
    try:
        deadline = time.monotonic() + 60
        while not ready():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"{what} never happened"
            time.sleep(0.2)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(STOP_WITHIN + 5)
        return code, time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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
        asked: list[int] = []

        def collecting() -> bool:
            asked[:] = [len(slow.seen)]  # the queries asked up to the stop
            return _collecting(url, prepared["db"])

        code, took = _stop_when(proc, collecting, "the scheduled collection", tmp_path / "serve.log")
        assert took < STOP_WITHIN, f"stopped after {took:.1f} s"
        assert code == 0
        assert len(slow.seen) < asked[0] + 10  # the collection did not run on to its end
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


def test_sigterm_during_the_weekly_report_job_stops_in_time_and_keeps_the_files_whole(
        prepared: dict[str, Any], moto: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The weekly job writes each format locally, records it, then uploads it; S3 hangs on the upload.
    The stop comes mid-job: the process still exits within 10 s; what the job recorded is whole (the
    file exists with the recorded size, no temporary file is left), nothing else changed, and the
    next run uploads what is missing without writing anything twice."""
    import boto3

    from finops.scheduler import weekly_files
    from finops.settings import Settings
    from finops.settings.schedule import WeeklySettings
    from finops.store import open_store

    s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1",
                      aws_access_key_id="AKIATESTINGFAKEKEY01", aws_secret_access_key="unused")
    s3.create_bucket(Bucket="finance")
    reports = tmp_path / "reports"
    with FaultProxy(moto, lambda s: Fault(delay=60.0)) as hanging:
        env = {"AWS_ACCESS_KEY_ID": "AKIATESTINGFAKEKEY01", "AWS_SECRET_ACCESS_KEY": "unused",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
               "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
        proc, _ = _start(prepared["db"], f"""
reports_dir = "{reports}"

[aws]
endpoint_urls = {{ s3 = "{hanging.url}" }}

[schedule]
run_on_start = true

[schedule.weekly]
formats = ["csv", "xlsx"]
s3_location = "s3://finance/weekly"

[schedule.sources.prometheus]
enabled = false
[schedule.sources.aws_ce]
enabled = false
[schedule.sources.aws_exports]
enabled = false
[schedule.sources.aws_inventory]
enabled = false
[schedule.sources.azure]
enabled = false
""", tmp_path, env)
        # The job has written the CSV and is uploading it.
        code, took = _stop_when(proc, lambda: bool(hanging.seen), "the weekly job's upload", tmp_path / "serve.log")
    assert took < STOP_WITHIN, f"stopped after {took:.1f} s"
    assert code == 0

    settings = Settings(db=prepared["db"], reports_dir=reports,
                        aws={"endpoint_urls": {"s3": moto}})  # type: ignore[arg-type]
    store = open_store(prepared["db"])
    try:
        recorded = store.query("SELECT period, format, location, bytes FROM report_files")
        assert [(fmt, loc.startswith("s3://")) for _, fmt, loc, _ in recorded] == [("csv", False)]
        [(week, _, location, size)] = recorded
        assert Path(location).stat().st_size == size
        assert sorted(p.name for p in reports.iterdir()) == [Path(location).name]  # no temporary file
        assert snapshot(store) == prepared["before"]
        cfg = WeeklySettings(formats=["csv", "xlsx"], s3_location="s3://finance/weekly")
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE",
                  "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED"):
            monkeypatch.setenv(k, env[k])
        written = weekly_files.write_week(store, settings, cfg, week, datetime(2026, 11, 9, 7))
        assert sorted((f.format, f.location.startswith("s3://")) for f in written) == [
            ("csv", True), ("xlsx", False), ("xlsx", True)]
        assert store.query("SELECT count(*) FROM report_files") == [(4,)]
    finally:
        store.close()
