"""Exports: the weekly report as XLSX opens with the expected sheets and equals the JSON output; text
never becomes a formula (CSV prefix, XLSX string cells) and characters a workbook cannot hold are dropped."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from finops.reports import get
from finops.reports.export import render
from finops.reports.model import Report
from finops.reports.params import build_params
from finops.settings import Settings
from finops.store import Store
from finops.tags import TagRules
from tests.support import example_a


@pytest.fixture
def weekly_report(store: Store, rules: TagRules, settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    example_a.load(store, rules, tmp_path)
    return get("weekly")(store, settings, build_params(week="2026-W45"))


def test_weekly_xlsx_has_the_sheets_and_equals_json(weekly_report) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(render(weekly_report, "json")[0], parse_float=Decimal)
    wb = load_workbook(io.BytesIO(render(weekly_report, "xlsx")[0]))
    assert wb.sheetnames == ["About", "chart_chargeback_team", "weekly", "summary", "chargeback_team", "chargeback_project", "unit_economics_by_model",
                             "idle_gpus", "untagged_spend", "savings", "models", "budgets", "anomalies", "Reconciliation",
                             "Parameters"]
    for sheet, key in [("weekly", "rows"), ("summary", "summary"), ("chargeback_team", "chargeback_team"),
                       ("idle_gpus", "idle_gpus"), ("untagged_spend", "untagged_spend")]:
        ws = wb[sheet]
        assert ws.freeze_panes == "A2"
        header = [c.value for c in ws[1]]
        rows = [dict(zip(header, [c.value for c in r], strict=True)) for r in ws.iter_rows(min_row=2)]
        assert len(rows) == len(data[key])
        for x, j in zip(rows, data[key], strict=True):
            for k, v in j.items():
                if isinstance(v, Decimal):
                    # Prices are written to 6 decimals (tests/reports/test_workbook.py checks each kind exactly).
                    assert x[k] == pytest.approx(float(v), abs=1e-6), (sheet, k)
                    assert isinstance(x[k], int | float)  # numbers, not text
                elif v is not None:
                    got = x[k].isoformat() if hasattr(x[k], "isoformat") else x[k]
                    assert str(got) == str(v), (sheet, k)
    team = wb["chargeback_team"]
    cost_col = [c.value for c in team[1]].index("cost") + 1
    assert "$" in team.cell(row=2, column=cost_col).number_format
    recon = {r[0].value: r[1].value for r in wb["Reconciliation"].iter_rows(min_row=2)}
    assert recon["control total (sum of rows)"] == recon["ingested total"] == 534
    assert data["totals"]["control_total_matches"] is True
    assert data["totals"]["week"] == "2026-W45"
    summary = {r["metric"]: r for r in data["summary"]}
    assert summary["total_cost"]["this_week"] == Decimal("534.00")
    assert summary["unallocated_cost"]["this_week"] == Decimal("78.00")


def test_weekly_csv_is_a_zip_of_tables_and_other_reports_are_plain_csv(
        weekly_report, store: Store, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    content, kind = render(weekly_report, "csv")
    assert kind == "zip"
    with zipfile.ZipFile(io.BytesIO(content)) as z:
        assert "chargeback_team.csv" in z.namelist()
        rows = list(csv.DictReader(io.StringIO(z.read("weekly.csv").decode())))
    assert sum(Decimal(r["cost"]) for r in rows) == Decimal("534")
    ue = get("unit-economics")(store, settings, build_params(start="2026-11-02", end="2026-11-03"))
    content, kind = render(ue, "csv")
    assert kind == "csv"
    rows = list(csv.DictReader(io.StringIO(content.decode())))
    assert sum(Decimal(r["cost"]) for r in rows) == Decimal("534")
    assert {r["note"] for r in rows if r["project"] == "__unallocated__"} == {"no_tokens"}


# Text a spreadsheet would evaluate (OWASP's list: = + - @ tab CR), and text it would not.
FORMULA_TEXT = ['=HYPERLINK("http://x","y")', "+1", "-2+3", "@SUM(A1)", "\t=5+5", "\r=1+1"]
PLAIN_TEXT = ["chatbot", "a=b", " =1", "'quoted", "#N/A", "{}", "a\r=1+1", "b\n@SUM(A1)", 'c,"d"']


def _report(rows: list[dict[str, object]], **params: object) -> Report:
    return Report("untagged-spend", dict(params), rows, {})


def test_csv_prefixes_text_starting_a_formula_and_never_a_number() -> None:
    rows: list[dict[str, object]] = [{"resource_id": t, "cost": Decimal("-5.00"), "n": -3, "day": date(2026, 11, 2)}
                                     for t in FORMULA_TEXT + PLAIN_TEXT]
    content, kind = render(_report(rows), "csv")
    assert kind == "csv"
    got = list(csv.DictReader(io.StringIO(content.decode(), newline="")))
    # One row per row: a CR or LF inside a value is quoted, so it never starts a row of its own.
    assert [r["resource_id"] for r in got] == ["'" + t for t in FORMULA_TEXT] + PLAIN_TEXT
    assert content.decode().count("\n") == len(rows) + 1 + 1  # header, rows and the LF inside one value
    assert '\n"a\r=1+1",' in content.decode() and '\n"b\n@SUM(A1)",' in content.decode()
    assert {(r["cost"], r["n"], r["day"]) for r in got} == {("-5.00", "-3", "2026-11-02")}  # numbers as numbers


def test_weekly_csv_zip_prefixes_formula_text_in_every_table() -> None:
    report = Report("weekly", {}, [{"team": "+1", "cost": Decimal("-1.50")}], {},
                    tables={"chargeback_team": [{"team": "=1+1", "cost": Decimal("2")}]})
    content, kind = render(report, "csv")
    assert kind == "zip"
    with zipfile.ZipFile(io.BytesIO(content)) as z:
        assert z.read("weekly.csv").decode().splitlines() == ["team,cost", "'+1,-1.50"]
        assert z.read("chargeback_team.csv").decode().splitlines() == ["team,cost", "'=1+1,2.00"]


def test_xlsx_text_is_always_a_string_cell_and_numbers_stay_numbers() -> None:
    rows: list[dict[str, object]] = [{"resource_id": t, "cost": Decimal("-5.00")} for t in FORMULA_TEXT + PLAIN_TEXT]
    wb = load_workbook(io.BytesIO(render(_report(rows, filter='=cmd|" /C calc"!A0'), "xlsx")[0]))
    cells = [(r[0], r[1]) for r in wb["untagged_spend"].iter_rows(min_row=2)]
    # CR is a line end to XML: a workbook gives it back as LF (it stays text all the same).
    assert [t.value for t, _ in cells] == [t.replace("\r", "\n") for t in FORMULA_TEXT + PLAIN_TEXT]
    assert {t.data_type for t, _ in cells} == {"s"}  # never "f" (formula), nor "e" for #N/A
    # Excel's quote prefix keeps formula-like text text even when someone edits the cell.
    assert [t.quotePrefix for t, _ in cells] == [True] * len(FORMULA_TEXT) + [False] * len(PLAIN_TEXT)
    assert {(c.value, c.data_type) for _, c in cells} == {(-5.0, "n")}
    params = {r[0].value: r[1] for r in wb["Parameters"].iter_rows(min_row=2)}
    assert (params["filter"].value, params["filter"].data_type) == ('=cmd|" /C calc"!A0', "s")


def test_xlsx_drops_characters_a_workbook_cannot_hold() -> None:
    """Text already stored with a control character (or a lone surrogate) still exports."""
    rows: list[dict[str, object]] = [
        {"resource_id": "i-bell\u0007", "service": "\x00EC2\x1f", "note": "a\ud800b\uffff", "ok": "tab\tand\nline"}]
    wb = load_workbook(io.BytesIO(render(_report(rows, team="core\u0007ai"), "xlsx")[0]))
    [row] = wb["untagged_spend"].iter_rows(min_row=2, values_only=True)
    assert row == ("i-bell", "EC2", "ab", "tab\tand\nline")  # tab and LF are legal and kept
    params = {k: v for k, v in wb["Parameters"].iter_rows(min_row=2, values_only=True)}
    assert params["team"] == "coreai"
    # JSON and CSV can carry the character, and keep the text as it is.
    assert json.loads(render(_report(rows), "json")[0])["rows"][0]["resource_id"] == "i-bell\u0007"
