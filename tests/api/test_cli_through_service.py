"""While `finops serve` owns the store, the CLI's ingest, keys and report commands go through it:
a real service process, the real CLI, one store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from finops.cli import app
from finops.collect import ingest_focus
from finops.settings import Settings
from finops.store import open_store
from finops.store.local_access import access_file
from finops.tags import TagRules
from tests.api.conftest import Api, Keys
from tests.support import example_a
from tests.support.prometheus import free_port


@pytest.fixture
def service(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "FINOPS_DB": str(settings.db)}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "finops", "serve", "--port", str(port), "--no-scheduler"],
                            env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not access_file(settings.db).exists() or not _up(url):
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "finops serve did not start"
            time.sleep(0.1)
        monkeypatch.setenv("FINOPS_DB", str(settings.db))
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    assert not access_file(settings.db).exists()  # withdrawn when the service stopped


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _bill(tmp_path: Path) -> Path:
    """Example A's bill with one row in an unknown currency (quarantined)."""
    lines = example_a.focus_csv().splitlines()
    path = tmp_path / "bill.csv"
    path.write_text("\n".join([*lines, lines[1].replace("USD", "XYZ")]) + "\n")
    return path


def test_ingest_keys_and_reports_go_through_the_running_service(service: str, settings: Settings,
                                                                tmp_path: Path) -> None:
    cli = CliRunner()
    bill = _bill(tmp_path)
    ingested = cli.invoke(app, ["ingest", "focus", str(bill)])
    assert ingested.exit_code == 0, ingested.output
    rows = len(example_a.BILL)
    assert f"{rows} accepted, 1 quarantined" in ingested.output and "through the running service" in ingested.output

    created = cli.invoke(app, ["keys", "create", "--role", "viewer", "--team", "ML Platform"])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    day = example_a.DAY.date()
    assert httpx.get(f"{service}/v1/reports/unit-economics", params={"start": str(day), "end": "2026-11-03"},
                     headers={"Authorization": f"Bearer {key}"}).status_code == 200  # a working key

    report = cli.invoke(app, ["report", "unit-economics", "--start", str(day), "--end", "2026-11-03",
                              "--format", "json"])
    assert report.exit_code == 0, report.output
    assert Decimal(str(json.loads(report.output)["totals"]["cost"])) == sum(Decimal(c) for *_, c in example_a.BILL)
    table = cli.invoke(app, ["report", "unit-economics", "--start", str(day), "--end", "2026-11-03",
                             "--group-by", "team"])
    assert table.exit_code == 0, table.output
    assert "coreai" in table.output and "totals: cost=534" in table.output

    listed = cli.invoke(app, ["keys", "list"])
    assert listed.exit_code == 0 and "ml platform" in listed.output


def test_the_upload_quarantines_exactly_as_the_cli_does(service: str, settings: Settings, rules: TagRules,
                                                        tmp_path: Path) -> None:
    bill = _bill(tmp_path)
    assert CliRunner().invoke(app, ["ingest", "focus", str(bill)]).exit_code == 0
    direct = open_store(tmp_path / "direct.duckdb")
    try:
        [run] = ingest_focus(direct, rules, [bill])
        expected = direct.query("SELECT line, reason FROM quarantine WHERE run_id = ?", [run.run_id])
    finally:
        direct.close()
    with httpx.Client(base_url=service) as http:
        key = json.loads(access_file(settings.db).read_text())["key"]
        uploaded = http.post("/v1/sources/focus/files", params={"name": "bill.csv"}, content=bill.read_bytes(),
                             headers={"Authorization": f"Bearer {key}"}).json()
    assert [(q["line"], q["reason"]) for q in uploaded["quarantine"]] == expected != []


def test_uploads_need_an_admin_a_length_and_fit_the_limit(start_api: Callable[..., Api], keys: Keys) -> None:
    api = start_api(max_upload_bytes=64)
    url = "/v1/sources/focus/files"
    with api.client(keys.admin) as admin, api.client(keys.finance) as finance:
        assert finance.post(url, params={"name": "a.csv"}, content=b"x" * 10).status_code == 403
        big = admin.post(url, params={"name": "a.csv"}, content=b"x" * 65)
        assert big.status_code == 413 and "max_upload_bytes" in big.json()["error"]["message"]
        chunked = admin.post(url, params={"name": "a.csv"}, content=iter([b"x" * 10]))
        assert chunked.status_code == 411
        bad_name = admin.post(url, params={"name": "../../etc/passwd.csv"}, content=b"x" * 10)
        assert bad_name.status_code == 422 and bad_name.json()["error"]["param"] == "name"
        broken = admin.post(url, params={"name": "a.csv"}, content=b"x" * 10)  # not a FOCUS file: a failed run
        assert broken.status_code == 201 and broken.json()["status"] == "failed"
        assert "a.csv" in broken.json()["error"] and "uploads" not in broken.json()["error"]
