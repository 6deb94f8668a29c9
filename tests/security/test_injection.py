"""Text from a cloud bill (tag values, ResourceId, ServiceName) never acts in finance's spreadsheet.

A hostile bill lands through the real FOCUS ingest next to worked example A; every report is then
exported. XLSX read back with openpyxl holds no formula cell and shows each text as JSON has it;
CSV prefixes text starting with a formula character with `'` (OWASP) and leaves numbers alone;
JSON keeps the text as it is. A control character in a tag is removed at ingest, and one stored
where nothing removes it (a ResourceId) breaks neither an XLSX export nor the weekly job.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
import zipfile
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from openpyxl.utils.exceptions import IllegalCharacterError

from finops.collect import ingest_focus
from finops.reports import get
from finops.reports.export import render
from finops.reports.model import Report
from finops.reports.params import build_params
from finops.scheduler import weekly_files
from finops.scheduler.weekly_files import SOURCE, failures, run
from finops.settings import Settings
from finops.settings.schedule import WeeklySettings
from finops.store import Store
from finops.store.ledger import runs
from finops.tags import DIMS, TagRules
from tests.api.conftest import WEEK, Api, Keys
from tests.support import example_a

HYPERLINK = '=HYPERLINK("http://x","y")'
# (provider, service, resource_id, tags, cost), on example A's day.
HOSTILE_BILL = [
    # Every dim hostile: the chargeback, unit economics and weekly rows carry them.
    ("AWS", "Amazon Elastic Compute Cloud", "i-evil",
     {"Project": HYPERLINK, "Team": "+1", "Environment": "-2+3", "ModelID": "@SUM(A1)"}, "10.00"),
    # A project that trimming used to turn into a formula.
    ("AWS", "Amazon Elastic Compute Cloud", "i-evil2",
     {"Project": "\t=5+5", "Team": "+1", "Environment": "-2+3", "ModelID": "@SUM(A1)"}, "6.00"),
    # Untagged: ResourceId and ServiceName (stored as billed, never normalised) show in untagged spend.
    ("AWS", "@SUM(A1)", HYPERLINK, None, "7.00"),
    ("AWS", "=1+1", "\t=5+5", None, "3.00"),
    # A credit: a negative amount is a number, never a formula and never prefixed.
    ("AWS", "Amazon Elastic Compute Cloud", "-2+3", None, "-5.00"),
]
# A bell in a tag value, and one in a ResourceId (kept as billed: the export must cope).
BELL_BILL = [("AWS", "Amazon Elastic Compute Cloud", "i-bell\u0007", {"Team": "core\u0007ai", "Project": "x"}, "4.00")]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
DAY = {"start": "2026-11-02", "end": "2026-11-03"}
TAGS = {'=hyperlink("http://x","y")', "+1", "-2+3", "@sum(a1)", "=5+5"}  # as normalised: lower case
BILLED = {HYPERLINK, "@SUM(A1)", "=1+1", "\t=5+5", "-2+3"}  # ResourceId and ServiceName as billed
# Which planted texts each report shows (the weekly report's untagged table holds its top resources).
PLANTED = {"weekly": TAGS, "unit-economics": TAGS, "untagged-spend": BILLED}
REPORTS = [("weekly", {"week": WEEK}), ("unit-economics", DAY), ("untagged-spend", DAY), ("idle-gpus", DAY),
           ("recommendations", DAY)]


def land(store: Store, rules: TagRules, tmp_path: Path, bill: list[Any]) -> None:
    """Example A, then `bill` as a second FOCUS file of the same day, through the real ingest."""
    example_a.load(store, rules, tmp_path)
    path = tmp_path / "hostile.csv"
    path.write_text(example_a.focus_csv(bill=bill))
    [r] = ingest_focus(store, rules, [path])
    assert r.status == "succeeded", r.error


def json_tables(report: Report) -> dict[str, list[dict[str, Any]]]:
    """The JSON export's tables, keyed like `all_tables` (the XLSX sheets and CSV files)."""
    data = json.loads(render(report, "json")[0], parse_float=Decimal)
    return {name: data["rows"] if rows is report.rows else data[name] for name, rows in report.all_tables().items()}


def xlsx_tables(content: bytes) -> dict[str, list[dict[str, Any]]]:
    """Every sheet as header -> value rows, after asserting that no cell of any sheet is a formula."""
    wb = load_workbook(io.BytesIO(content))
    out = {}
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
        header = [c.value for c in ws[1]]
        out[ws.title] = [dict(zip(header, [c.value for c in r], strict=True)) for r in ws.iter_rows(min_row=2)]
    return out


def csv_tables(report: Report) -> dict[str, list[dict[str, str]]]:
    content, kind = render(report, "csv")
    if kind == "csv":
        return {report.name.replace("-", "_"): list(csv.DictReader(io.StringIO(content.decode())))}
    with zipfile.ZipFile(io.BytesIO(content)) as z:
        return {n.removesuffix(".csv"): list(csv.DictReader(io.StringIO(z.read(n).decode()))) for n in z.namelist()}


@pytest.mark.parametrize("name,params", REPORTS, ids=[n for n, _ in REPORTS])
def test_bill_text_is_never_a_formula_in_any_export(store: Store, settings: Settings, rules: TagRules,
                                                    tmp_path: Path, name: str, params: dict[str, str]) -> None:
    land(store, rules, tmp_path, HOSTILE_BILL)
    report = get(name)(store, settings, build_params(**params))
    as_json = json_tables(report)
    sheets = xlsx_tables(render(report, "xlsx")[0])  # asserts: no formula cell anywhere
    files = csv_tables(report)
    seen: set[str] = set()
    for table, rows in report.all_tables().items():
        sheet = sheets["Reconciliation" if table == "reconciliation" else table]
        assert len(sheet) == len(rows) == len(as_json[table]), table
        for r, j, x in zip(rows, as_json[table], sheet, strict=True):
            for k, v in r.items():
                if isinstance(v, str):
                    # The original text, in a string cell (openpyxl writes no cell for empty text).
                    assert j[k] == v and x[k] == (v or None), (table, k)
                    if v.startswith(FORMULA_START):
                        seen.add(v)
        if table not in files:  # untagged spend's top_resources and trend are JSON and XLSX only
            continue
        assert len(files[table]) == len(rows), table
        for r, c in zip(rows, files[table], strict=True):
            for k, v in r.items():
                if isinstance(v, str):
                    assert c[k] == ("'" + v if v.startswith(FORMULA_START) else v), (table, k)
                elif isinstance(v, Decimal | int) and not isinstance(v, bool):
                    assert Decimal(c[k]) == v, (table, k)  # a number, with its sign, unprefixed
    assert seen >= PLANTED.get(name, set())  # the checks above met the planted text
    if name == "untagged-spend":
        credit = next(r for r in files["untagged_spend"] if r["resource_id"] == "'-2+3")
        assert credit["cost"] == "-5.00"


def test_tag_values_are_stored_without_control_characters_and_trimming_makes_no_formula_cell(
        store: Store, settings: Settings, rules: TagRules, tmp_path: Path) -> None:
    land(store, rules, tmp_path, HOSTILE_BILL + BELL_BILL)
    dims = store.query(f"SELECT {', '.join(DIMS)} FROM cost_lines WHERE resource_id LIKE 'i-bell%'")
    assert dims == [("x", "coreai", None, None)]
    for value in (v for row in store.query(f"SELECT {', '.join(DIMS)} FROM cost_lines") for v in row if v):
        assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in value), repr(value)
    [(project,)] = store.query("SELECT project FROM cost_lines WHERE resource_id = 'i-evil2'")
    assert project == "=5+5"  # tab removed, then trimmed: text that must stay text in every export
    ue = get("unit-economics")(store, settings, build_params(**DAY))
    assert "=5+5" in [r["project"] for r in xlsx_tables(render(ue, "xlsx")[0])["unit_economics"]]


def test_a_stored_control_character_does_not_break_the_xlsx_export(
        store: Store, settings: Settings, rules: TagRules, tmp_path: Path) -> None:
    land(store, rules, tmp_path, BELL_BILL)
    [(rid,)] = store.query("SELECT resource_id FROM cost_lines WHERE resource_id LIKE 'i-bell%'")
    assert rid == "i-bell\u0007"  # ResourceIds are kept as billed
    report = get("untagged-spend")(store, settings, build_params(**DAY))
    assert "i-bell\u0007" in {r["resource_id"] for r in report.rows}
    sheets = xlsx_tables(render(report, "xlsx")[0])  # openpyxl used to raise IllegalCharacterError here
    assert "i-bell" in {r["resource_id"] for r in sheets["untagged_spend"]}


def test_the_weekly_job_writes_every_format_despite_a_control_character(
        store: Store, settings: Settings, rules: TagRules, tmp_path: Path) -> None:
    land(store, rules, tmp_path, HOSTILE_BILL + BELL_BILL)
    s = settings.model_copy(update={"reports_dir": tmp_path / "reports"})
    files = run(store, s, WeeklySettings(formats=["xlsx", "csv"]), datetime(2026, 11, 9, 7))
    assert sorted(f.format for f in files) == ["csv", "xlsx"]
    sheets = xlsx_tables((tmp_path / "reports" / f"weekly-{WEEK}.xlsx").read_bytes())
    assert "i-bell" in {r["resource_id"] for r in sheets["untagged_spend"]}
    with zipfile.ZipFile(tmp_path / "reports" / f"weekly-{WEEK}-csv.zip") as z:
        teams = {r["team"] for r in csv.DictReader(io.StringIO(z.read("chargeback_team.csv").decode()))}
    assert {"coreai", "'+1"} <= teams


@pytest.mark.parametrize("step", ["write", "render"])
def test_one_failing_weekly_format_never_stops_the_others(
        store: Store, settings: Settings, rules: TagRules, tmp_path: Path, step: str,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A format that fails is logged and recorded once in the ledger; the others are written; the
    failed one is written at a later check once the cause is gone."""
    land(store, rules, tmp_path, HOSTILE_BILL)
    s = settings.model_copy(update={"reports_dir": tmp_path / "reports"})
    cfg, now = WeeklySettings(formats=["xlsx", "csv"]), datetime(2026, 11, 9, 7)
    xlsx = tmp_path / "reports" / f"weekly-{WEEK}.xlsx"
    if step == "write":  # a real OSError: a directory stands where the file goes
        xlsx.mkdir(parents=True)
    else:  # the writer refusing text, as openpyxl did before the XLSX writer removed illegal characters
        real = weekly_files.render

        def refuse_xlsx(report: Report, fmt: str) -> tuple[bytes, str]:
            if fmt == "xlsx":
                raise IllegalCharacterError("i-bell\u0007 cannot be used in worksheets.")
            return real(report, fmt)

        monkeypatch.setattr(weekly_files, "render", refuse_xlsx)
    with caplog.at_level(logging.ERROR, logger=weekly_files.__name__):
        assert [f.format for f in run(store, s, cfg, now)] == ["csv"]
        assert run(store, s, cfg, now) == []  # checked again: still failing, csv not written twice
    assert (tmp_path / "reports" / f"weekly-{WEEK}-csv.zip").is_file()
    logged = [r for r in caplog.records if r.levelno == logging.ERROR and "xlsx failed" in r.getMessage()]
    assert len(logged) == 2 and all(r.exc_info for r in logged)  # every attempt, with its traceback
    error = {"write": "write: IsADirectoryError", "render": "render: IllegalCharacterError"}[step]
    assert failures(store, WEEK)["xlsx"].startswith(error)
    [recorded] = runs(store, SOURCE)  # once per week, format and error, not once per check
    assert (recorded.scope, recorded.status, recorded.window_start, recorded.window_end) == (
        "xlsx", "failed", datetime(2026, 11, 2), datetime(2026, 11, 9))

    shutil.rmtree(xlsx, ignore_errors=True)
    monkeypatch.undo()
    assert [f.format for f in run(store, s, cfg, now)] == ["xlsx"]
    assert "weekly" in load_workbook(xlsx).sheetnames
    assert store.query("SELECT format FROM report_files WHERE period = ? ORDER BY format", [WEEK]) == [
        ("csv",), ("xlsx",)]


def test_the_api_serves_the_hostile_week_as_xlsx(store: Store, rules: TagRules, tmp_path: Path,
                                                 start_api: Any, keys: Keys) -> None:
    """Over HTTP: the XLSX of a week with a bell in a ResourceId is a 200, and holds no formula."""
    path = tmp_path / "hostile.csv"  # example A is the API fixture's own data
    path.write_text(example_a.focus_csv(bill=HOSTILE_BILL + BELL_BILL))
    assert ingest_focus(store, rules, [path])[0].status == "succeeded"
    api: Api = start_api()
    r = api.get("/v1/reports/weekly", keys.finance, params={"week": WEEK, "format": "xlsx"})
    assert r.status_code == 200, r.text
    sheets = xlsx_tables(r.content)
    assert '=hyperlink("http://x","y")' in {row["project"] for row in sheets["chargeback_project"]}
