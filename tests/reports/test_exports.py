"""Exports: the weekly report as XLSX opens with the expected sheets and equals the JSON output."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from finops.reports import get
from finops.reports.export import render
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
    assert wb.sheetnames == ["weekly", "summary", "chargeback_team", "chargeback_project", "unit_economics_by_model",
                             "idle_gpus", "untagged_spend", "savings", "Reconciliation", "Parameters"]
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
                    assert x[k] == pytest.approx(float(v), abs=1e-9), (sheet, k)
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
