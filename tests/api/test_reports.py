"""The four reports over HTTP: same output as the CLI, downloads, roles, validation and the cache."""

from __future__ import annotations

import csv
import io
import json
import traceback
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from finops import reports
from finops.cli import app as cli_app
from finops.collect import run_task
from finops.reports.export import MEDIA_TYPES, to_json
from finops.reports.params import ParamError, build_params
from finops.sources.focus import SOURCE as FOCUS
from finops.sources.focus import file_task
from finops.tags import TagRules
from tests.api.conftest import WEEK, Api, Keys
from tests.support.example_a import BILL, DAY, focus_csv

REPORTS = ("unit-economics", "idle-gpus", "untagged-spend", "weekly")
BILL_TOTAL = sum(Decimal(line[4]) for line in BILL)


def exact(resp_text: str) -> Any:
    return json.loads(resp_text, parse_float=Decimal)


@pytest.mark.parametrize("name", REPORTS)
def test_json_is_the_cli_report(api: Api, keys: Keys, name: str) -> None:
    r = api.get(f"/v1/reports/{name}", keys.finance, params={"week": WEEK, "group_by": "team,project"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    params = build_params(week=WEEK, group_by="team,project", default_required=api.settings.required_tags,
                          shared_cost_key=api.settings.shared_cost_key, idle_threshold=api.settings.idle_threshold)
    direct = to_json(reports.get(name)(api.store, api.settings, params))
    assert exact(r.text) == exact(direct)


def test_unit_economics_numbers_of_example_a(api: Api, keys: Keys) -> None:
    body = exact(api.get("/v1/reports/unit-economics", keys.viewer).text)  # default window: the week before NOW
    assert body["params"]["start"] == "2026-11-02" and body["params"]["end"] == "2026-11-09"
    assert body["totals"]["cost"] == BILL_TOTAL == sum(row["cost"] for row in body["rows"])
    llama = [row for row in body["rows"] if row["model_id"] == "llama-70b"]
    assert [row["cost"] for row in llama] == [Decimal(BILL[0][4])]
    # docs/definitions.md 6.1: cost / (generation tokens / 1000), here 240 / 4,000 = 0.06
    assert llama[0]["cost_per_1k_generated_tokens"] == Decimal(BILL[0][4]) / 4000


def test_csv_download(api: Api, keys: Keys) -> None:
    r = api.get("/v1/reports/unit-economics", keys.viewer, params={"week": WEEK, "format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"] == MEDIA_TYPES["csv"]
    assert r.headers["content-disposition"] == 'attachment; filename="unit-economics_2026-11-02_2026-11-09.csv"'
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert sum(Decimal(row["cost"]) for row in rows) == BILL_TOTAL


def test_weekly_csv_is_a_zip_of_tables(api: Api, keys: Keys) -> None:
    r = api.get("/v1/reports/weekly", keys.finance, params={"week": WEEK, "format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"].endswith('.zip"')
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert {"weekly.csv", "summary.csv", "chargeback_team.csv", "reconciliation.csv"} <= set(names)


def test_xlsx_for_finance(api: Api, keys: Keys) -> None:
    r = api.get("/v1/reports/weekly", keys.finance, params={"week": WEEK, "format": "xlsx"})
    assert r.status_code == 200
    assert r.headers["content-type"] == MEDIA_TYPES["xlsx"]
    assert r.headers["content-disposition"] == 'attachment; filename="weekly_2026-11-02_2026-11-09.xlsx"'
    wb = load_workbook(io.BytesIO(r.content))
    assert {"weekly", "summary", "Reconciliation", "Parameters"} <= set(wb.sheetnames)
    ws = wb["weekly"]
    header = [c.value for c in ws[1]]
    costs = [row[header.index("cost")] for row in ws.iter_rows(min_row=2, values_only=True)]
    assert sum(Decimal(str(c)) for c in costs) == BILL_TOTAL


@pytest.mark.parametrize(("role", "path", "params", "status"), [
    ("viewer", "/v1/reports/unit-economics", {}, 200),
    ("viewer", "/v1/reports/idle-gpus", {}, 200),
    ("viewer", "/v1/reports/untagged-spend", {"format": "csv"}, 200),
    ("viewer", "/v1/reports/unit-economics", {"format": "xlsx"}, 403),
    ("viewer", "/v1/reports/weekly", {}, 403),
    ("finance", "/v1/reports/weekly", {}, 200),
    ("finance", "/v1/reports/idle-gpus", {"format": "xlsx"}, 200),
    ("admin", "/v1/reports/weekly", {"format": "xlsx"}, 200),
    ("admin", "/v1/reports/untagged-spend", {}, 200),
])
def test_roles(api: Api, keys: Keys, role: str, path: str, params: dict[str, str], status: int) -> None:
    r = api.get(path, getattr(keys, role), params={"week": WEEK, **params})
    assert r.status_code == status, r.text
    if status == 403:
        assert r.json()["error"]["message"]


@pytest.mark.parametrize(("params", "param"), [
    ({"granularity": "hourly"}, "granularity"),
    ({"start": "2026-13-01"}, "start"),
    ({"start": "2026-11-05", "end": "2026-11-02"}, "end"),
    ({"group_by": "team,colour"}, "group_by"),
    ({"week": WEEK, "start": "2026-11-02"}, "week"),
    ({"week": "2026-W60"}, "week"),
    ({"idle_threshold": "2"}, "idle_threshold"),
    ({"currency": "dollars"}, "currency"),
    ({"team": "n/a"}, "team"),
    ({"colour": "blue"}, "colour"),
    ({"start": "1900-01-01", "end": "1900-01-05"}, "start"),
])
def test_bad_parameters_answer_422_naming_them(api: Api, keys: Keys, params: dict[str, str], param: str) -> None:
    r = api.get("/v1/reports/unit-economics", keys.viewer, params=params)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["param"] == param
    assert error["message"].startswith(f"{param}: ")


def _message_of_bad_group_by() -> str:
    try:
        build_params(group_by="team,colour")
    except ParamError as exc:
        # build_params's pydantic error keeps the frames above alive (a cycle gc cannot break): clear them.
        traceback.clear_frames(exc.__traceback__)
        return exc.message
    raise AssertionError("build_params accepted an unknown dim")


def test_api_names_the_parameter_as_build_params_does(api: Api, keys: Keys) -> None:
    r = api.get("/v1/reports/unit-economics", keys.viewer, params={"group_by": "team,colour"})
    assert r.json()["error"] == {"param": "group_by", "message": f"group_by: {_message_of_bad_group_by()}"}


def test_cli_gives_the_same_message(tmp_path: Path) -> None:
    """With the test above: API and CLI answer a bad parameter with build_params's message."""
    cli = CliRunner().invoke(cli_app, ["report", "unit-economics", "--group-by", "team,colour"],
                             env={"FINOPS_DB": str(tmp_path / "cli.duckdb"), "COLUMNS": "300"})
    assert cli.exit_code != 0
    assert _message_of_bad_group_by() in " ".join(cli.output.split())


def test_cache_hits_and_invalidation_when_data_lands(api: Api, keys: Keys, tmp_path: Path) -> None:
    path, params = "/v1/reports/unit-economics", {"week": WEEK}
    first = exact(api.get(path, keys.viewer, params=params).text)
    hits = api.state.cache.hits
    again = exact(api.get(path, keys.viewer, params=params).text)
    assert again == first and api.state.cache.hits == hits + 1
    # A second day of example A lands: the next answer must include it.
    from datetime import timedelta

    day2 = DAY + timedelta(days=1)
    f = tmp_path / "day2.csv"
    f.write_text(focus_csv(day2))
    result = run_task(api.store, FOCUS, file_task(TagRules.from_settings(api.settings), f))
    assert result.status == "succeeded"
    after = exact(api.get(path, keys.viewer, params=params).text)
    assert after["totals"]["cost"] == 2 * BILL_TOTAL


def test_report_files_and_download(api: Api, keys: Keys) -> None:
    reports_dir = api.settings.reports_dir
    reports_dir.mkdir(parents=True)
    (reports_dir / "weekly_2026-W45.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    outside = reports_dir.parent / "secret.txt"
    outside.write_text("outside the reports directory")
    with api.store.transaction() as cur:
        cur.execute("INSERT INTO report_files (report, period, format, location, bytes, created_at) VALUES "
                    "('weekly', '2026-W45', 'xlsx', ?, 31, '2026-11-09 06:00:00'), "
                    "('weekly', '2026-W44', 'csv', ?, 29, '2026-11-02 06:00:00')",
                    [str(reports_dir / "weekly_2026-W45.xlsx"), str(outside)]).fetchall()
    listing = api.get("/v1/reports/weekly/files", keys.finance)
    assert listing.status_code == 200
    files = listing.json()
    assert [f["period"] for f in files] == ["2026-W45", "2026-W44"]
    got = api.get(files[0]["download_url"], keys.finance)
    assert got.status_code == 200 and got.content == b"PK\x03\x04 not really a workbook"
    assert got.headers["content-type"] == MEDIA_TYPES["xlsx"]
    assert "weekly_2026-W45.xlsx" in got.headers["content-disposition"]
    assert api.get(files[1]["download_url"], keys.finance).status_code == 404  # not under reports_dir
    assert api.get("/v1/reports/weekly/files/999", keys.finance).status_code == 404
    assert api.get("/v1/reports/weekly/files", keys.viewer).status_code == 403
    assert api.get("/v1/reports/weekly/files", keys.platform).status_code == 403  # spans every team
