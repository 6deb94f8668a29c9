"""While `finops serve` owns the store, the CLI's ingest, keys and report commands go through it:
a real service process, the real CLI, one store."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def running_service(db: Path, tmp_path: Path) -> Iterator[str]:
    """`finops serve` on `db` in its own process, until the block ends."""
    port = free_port()
    env = {**os.environ, "FINOPS_DB": str(db)}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "finops", "serve", "--port", str(port), "--no-scheduler"],
                            env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not access_file(db).exists() or not _up(url):
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "finops serve did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    assert not access_file(db).exists()  # withdrawn when the service stopped


@pytest.fixture
def service(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("FINOPS_DB", str(settings.db))
    with running_service(settings.db, tmp_path) as url:
        yield url


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

    budget = cli.invoke(app, ["budgets", "set", "core ai", "--team", "ML Platform", "--amount", "1000", "--forecast", "90"])
    assert budget.exit_code == 0, budget.output
    assert [(b["name"], b["filters"], b["forecast_thresholds"]) for b in httpx.get(
        f"{service}/v1/budgets", headers={"Authorization": f"Bearer {key}"}).json()] == [
        ("core ai", {"team": "ml platform"}, [90])]  # the team key reads its team's budget
    assert "core ai" in cli.invoke(app, ["budgets", "list"]).output
    assert cli.invoke(app, ["budgets", "delete", "core ai"]).exit_code == 0
    gone = cli.invoke(app, ["budgets", "delete", "core ai"])
    assert gone.exit_code == 1 and "404" in gone.output


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


def test_a_file_ingested_with_and_without_the_service_replaces_itself(settings: Settings, rules: TagRules,
                                                                      tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_DB", str(settings.db))
    aws, azure = tmp_path / "aws", tmp_path / "azure"
    aws.mkdir(), azure.mkdir()
    (aws / "export.csv").write_text(example_a.focus_csv())
    (azure / "export.csv").write_text(example_a.focus_csv(example_a.DAY.replace(day=3)))  # same name, other bill
    assert CliRunner().invoke(app, ["ingest", "focus", str(aws / "export.csv")]).exit_code == 0  # no service
    day = sum(Decimal(c) for *_, c in example_a.BILL)
    with running_service(settings.db, tmp_path):
        for path in (aws / "export.csv", azure / "export.csv"):
            result = CliRunner().invoke(app, ["ingest", "focus", str(path)])
            assert result.exit_code == 0 and "through the running service" in result.output, result.output
    store = open_store(settings.db)
    try:
        total = store.query("SELECT sum(billed_cost) FROM cost_lines")[0][0]
        scopes = sorted(r[0] for r in store.query("SELECT DISTINCT scope FROM cost_lines"))
    finally:
        store.close()
    assert total == 2 * day  # each bill once: the AWS file replaced itself, the Azure one is its own
    assert scopes == sorted(str(p.resolve()) for p in (aws / "export.csv", azure / "export.csv"))


def test_a_weekly_csv_through_the_service_is_a_zip_written_to_a_file(service: str, tmp_path: Path) -> None:
    cli = CliRunner()
    assert cli.invoke(app, ["ingest", "focus", str(_bill(tmp_path))]).exit_code == 0
    to_stdout = cli.invoke(app, ["report", "weekly", "--week", "2026-W45", "--format", "csv"])
    assert to_stdout.exit_code == 2 and "zip output is binary: give --out FILE" in to_stdout.output
    out = tmp_path / "weekly.zip"
    written = cli.invoke(app, ["report", "weekly", "--week", "2026-W45", "--format", "csv", "--out", str(out)])
    assert written.exit_code == 0, written.output
    assert zipfile.is_zipfile(out) and "summary.csv" in zipfile.ZipFile(out).namelist()


def test_an_upload_cannot_send_more_than_it_declared(start_api: Callable[..., Api], keys: Keys) -> None:
    api = start_api(max_upload_bytes=64)
    host, port = api.url.removeprefix("http://").split(":")
    chunk = b"x" * 1000
    request = (f"POST /v1/sources/focus/files?name=a.csv HTTP/1.1\r\nHost: {host}\r\n"
               f"Authorization: Bearer {keys.admin}\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n"
               ).encode() + b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(100)) + b"0\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = sock.recv(4096).decode(errors="replace")
    assert answer.split()[1] in ("400", "411"), answer  # refused, never written
    assert list((api.store.path.parent / "uploads").glob("*")) == []  # nothing of it kept

