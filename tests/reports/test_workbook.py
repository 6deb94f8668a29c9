"""The XLSX workbook: each number cell has the format of what it holds (money, price, count, share,
date), money and counts equal the JSON report's decimals exactly, nulls are empty cells, parameters
are plain text, an About sheet comes first and the weekly report has a chart of cost per team."""

from __future__ import annotations

import io
import json
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from finops.reports import NAMES, get
from finops.reports.export import render
from finops.reports.model import Report
from finops.reports.params import build_params
from finops.settings import Settings
from finops.store import Store
from finops.tags import TagRules
from tests.support import example_a

MONEY, PRICE, COUNT, SHARE = '"$"#,##0.00', '"$"#,##0.000000', "#,##0", "0.0%"
DATE, DATETIME, SCORE = "yyyy-mm-dd", "yyyy-mm-dd hh:mm:ss", "0.00"
# The format every number field of the five reports must carry, written out here by hand (not
# derived from the writer's table), so a field the writer misclassifies fails.
EXPECTED = {
    **dict.fromkeys(("cost", "previous_cost", "change", "usage_cost", "idle_cost", "previous_idle_cost",
                     "untagged_cost", "recoverable_cost", "total_cost", "attributed_cost", "unallocated_cost",
                     "amount", "monthly_saving", "deviation_cost", "actual_cost", "forecast_cost",
                     "forecast_cost_low", "forecast_cost_high", "burn_rate_per_day", "cost_low", "cost_high",
                     "prompt_cost", "generation_cost", "cache_savings", "api_cost", "saving"), MONEY),
    **dict.fromkeys(("cost_per_1k_generated_tokens", "previous_cost_per_1k_generated_tokens",
                     "cost_per_1k_generated_tokens_change", "cost_per_1k_tokens", "cost_per_request",
                     "hour_cost", "value", "baseline", "expected_low", "expected_high", "deviation",
                     "forecast_cost_per_1k_generated_tokens", "max_cost_per_1k_generated_tokens",
                     "cost_per_1k_prompt_tokens", "cost_per_1k_generation_tokens", "cost_per_1m_prompt_tokens",
                     "cost_per_1m_generation_tokens"), PRICE),
    **dict.fromkeys(("prompt_tokens", "generation_tokens", "previous_generation_tokens", "generation_tokens_change",
                     "total_tokens", "requests", "gpu_hours", "hours_observed", "idle_hours",
                     "longest_idle_streak_hours", "anomalies", "groups", "forecast_generation_tokens",
                     "generation_tokens_low", "generation_tokens_high", "actual_generation_tokens",
                     "days_to_period_end", "budgets", "cached_prompt_tokens", "priced_days", "models",
                     "offerings", "lines", "correction_lines", "billed_hours", "observed_hours", "gap_hours"), COUNT),
    **dict.fromkeys(("corrections_cost", "unused_commitment_cost", "gap_cost"), MONEY),
    **dict.fromkeys(("change_pct", "generation_tokens_change_pct", "cost_per_1k_generated_tokens_change_pct",
                     "avg_gpu_busy", "avg_busy", "idle_fraction", "untagged_share", "actual_share", "forecast_share", "cache_hit_rate", "break_even_busy"),
                    SHARE),
    **dict.fromkeys(("period_start", "period_end", "day"), DATE), "last_busy_at": DATETIME, "score": SCORE, "actual_through": DATE,
    **dict.fromkeys(("days_left", "actual_threshold_crossed", "forecast_threshold_crossed"), SCORE),
}
# In the weekly summary the rows are measures: this_week, previous_week and change take the format
# of the row's metric; change_pct stays a percentage.
SUMMARY_COLUMNS = ("this_week", "previous_week", "change")


@pytest.fixture
def example(store: Store, rules: TagRules, tmp_path: Path) -> Store:
    example_a.load(store, rules, tmp_path)
    return store


def _both(report: Report) -> tuple[dict[str, Any], Workbook]:
    data = json.loads(render(report, "json")[0], parse_float=Decimal)
    return data, load_workbook(io.BytesIO(render(report, "xlsx")[0]))


def _exact(kind: str, value: Decimal | int) -> Decimal:
    """What a cell must hold for a JSON number: money to the cent, prices to 6 places, half-even."""
    places = {MONEY: "0.01", PRICE: "0.000001"}.get(kind)
    return Decimal(value).quantize(Decimal(places), rounding=ROUND_HALF_EVEN) if places else Decimal(value)


def check_sheet(ws: Worksheet, rows: list[dict[str, Any]], measure: str | None = None) -> int:
    """Assert each cell of `ws` against the JSON `rows`; returns how many number cells were checked."""
    header = [c.value for c in ws[1]]
    assert ws.max_row - 1 == len(rows), ws.title
    checked = 0
    for cells, j in zip(ws.iter_rows(min_row=2), rows, strict=True):
        got = dict(zip(header, cells, strict=True))
        for field, value in j.items():
            cell = got[field]
            if value is None:
                assert cell.value is None, (ws.title, field, cell.value)  # empty, never 0
                continue
            fmt = EXPECTED.get(j[measure] if measure and field in SUMMARY_COLUMNS else field)
            if fmt is None or isinstance(value, bool) or not isinstance(value, int | Decimal | str):
                # Every number must be classified here; text, flags and nested evidence are not numbers.
                assert isinstance(value, bool) or not isinstance(value, int | Decimal), (ws.title, field)
                continue
            assert cell.number_format == fmt, (ws.title, field, j.get(measure), cell.number_format)
            checked += 1
            if fmt in (MONEY, PRICE, COUNT):
                assert isinstance(cell.value, int | float) and not isinstance(cell.value, bool), (ws.title, field)
                assert Decimal(str(cell.value)) == _exact(fmt, value), (ws.title, field, cell.value, value)
            elif fmt in (SHARE, SCORE):
                assert cell.value == pytest.approx(float(value), abs=1e-12), (ws.title, field)
            else:  # dates and times are date cells, read back as datetimes
                assert isinstance(cell.value, datetime), (ws.title, field)
                shown = cell.value.date().isoformat() if fmt == DATE else cell.value.isoformat()
                assert shown == value, (ws.title, field)
    return checked


def _tables(report: Report, data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Sheet title -> the JSON rows it shows."""
    out = {}
    for name, rows in report.all_tables().items():
        out["Reconciliation" if name == "reconciliation" else name] = data["rows"] if rows is report.rows else data[name]
    return out


@pytest.mark.parametrize("week", ["2026-W45", "2026-W46"])  # W46: the example's week is the previous one
def test_weekly_cells_have_the_format_of_their_kind_and_the_json_values(
        example: Store, settings: Settings, week: str) -> None:
    report = get("weekly")(example, settings, build_params(week=week))
    data, wb = _both(report)
    checked = {title: check_sheet(wb[title], rows, "metric" if title == "summary" else None)
               for title, rows in _tables(report, data).items()}
    assert all(checked[t] > 0 for t in ("weekly", "summary", "unit_economics_by_model", "Reconciliation"))
    assert (checked["idle_gpus"] > 0) == (week == "2026-W45")  # W46 has no data of its own: no idle GPU
    summary = {r[0].value: r for r in wb["summary"].iter_rows(min_row=2)}
    this_week = [c.value for c in wb["summary"][1]].index("this_week")
    formats = {m: summary[m][this_week].number_format for m in summary if summary[m][this_week].value is not None}
    if week == "2026-W45":  # the user's report: tokens, the share and cost per 1k were all dollars to the cent
        assert formats == {"total_cost": MONEY, "attributed_cost": MONEY, "unallocated_cost": MONEY,
                           "untagged_share": SHARE, "idle_cost": MONEY, "prompt_tokens": COUNT,
                           "generation_tokens": COUNT, "cost_per_1k_generated_tokens": PRICE}
        assert summary["cost_per_1k_generated_tokens"][this_week].value == pytest.approx(0.065122, abs=0)


def test_weekly_nulls_are_empty_cells(example: Store, settings: Settings) -> None:
    """A week without a previous week: every previous_* unit cost is null in JSON and empty in XLSX."""
    report = get("weekly")(example, settings, build_params(week="2026-W45"))
    data, wb = _both(report)
    ws = wb["unit_economics_by_model"]
    header = [c.value for c in ws[1]]
    col = header.index("previous_cost_per_1k_generated_tokens")
    assert [r["previous_cost_per_1k_generated_tokens"] for r in data["unit_economics_by_model"]] == [None] * 4
    assert [r[col].value for r in ws.iter_rows(min_row=2)] == [None] * 4
    assert {r[col].number_format for r in ws.iter_rows(min_row=2)} == {"General"}  # not a formatted 0


def test_money_is_written_from_exact_decimals_rounded_half_even() -> None:
    rows: list[dict[str, object]] = [
        {"resource_id": "a", "cost": Decimal("215.999999999996"), "cost_per_request": Decimal("0.0000655")},
        {"resource_id": "b", "cost": Decimal("1234567.125000000000"), "cost_per_request": Decimal("0.0000645")},
        {"resource_id": "c", "cost": Decimal("0.1") + Decimal("0.2"), "cost_per_request": None},
    ]
    for currency, money, cents in [("USD", MONEY, ("216", "1234567.12", "0.3")),
                                   ("JPY", '"¥"#,##0', ("216", "1234567", "0")),
                                   ("CHF", '#,##0.00 "CHF"', ("216", "1234567.12", "0.3"))]:
        report = Report("untagged-spend", {"start": "2026-11-02", "end": "2026-11-09"}, rows, {}, currency=currency)
        wb = load_workbook(io.BytesIO(render(report, "xlsx")[0]))
        got = list(wb["untagged_spend"].iter_rows(min_row=2, min_col=2, max_col=3))
        assert [Decimal(str(c.value)) for c, _ in got] == [Decimal(x) for x in cents], currency
        assert {c.number_format for c, _ in got} == {money}
        assert [None if p.value is None else Decimal(str(p.value)) for _, p in got] == [
            Decimal("0.000066"), Decimal("0.000064"), None]  # half-even: 65.5 -> 66, 64.5 -> 64
        assert "0.000000" in got[0][1].number_format


def test_parameters_are_plain_text(example: Store, settings: Settings) -> None:
    report = get("weekly")(example, settings, build_params(week="2026-W45", group_by="team,model_id"))
    params = {k: v for k, v in load_workbook(io.BytesIO(render(report, "xlsx")[0]))["Parameters"]
              .iter_rows(min_row=2, values_only=True)}
    assert params["group_by"] == "team, model_id"
    assert params["required_tags"] == "project, team, environment, model_id"
    assert params["start"] == "2026-11-02" and params["currency"] == "USD"
    assert params["filters"] is None  # no filter: an empty cell, not "{}"
    assert not [v for v in params.values() if v and any(ch in str(v) for ch in "[]{}'\"")]
    recs = get("recommendations")(example, settings, build_params(week="2026-W45"))
    nested = {k: v for k, v in load_workbook(io.BytesIO(render(recs, "xlsx")[0]))["Parameters"]
              .iter_rows(min_row=2, values_only=True)}
    assert nested["recommendations.non_production_environments"] == "dev, test, staging"
    assert not [v for v in nested.values() if v and any(ch in str(v) for ch in "[]{}'\"")]


def test_about_comes_first_with_currency_window_definitions_and_reconciliation(
        example: Store, settings: Settings) -> None:
    report = get("weekly")(example, settings, build_params(week="2026-W45"))
    wb = load_workbook(io.BytesIO(render(report, "xlsx")[0]))
    assert wb.sheetnames[0] == "About" and wb.active is not None and wb.active.title == "About"
    about = {k: v for k, v in wb["About"].iter_rows(min_row=2, values_only=True)}
    assert about["currency"].startswith("USD")
    assert "2026-W45" in about["window"] and "2026-11-02 to 2026-11-09" in about["window"]
    assert about["cost basis"] == "effective"
    assert "docs/definitions.md" in about["definitions"]
    assert about["reconciliation"] == "reconciled: the rows add up to the ingested bill exactly, 534.00 USD"
    off = Report("unit-economics", {"start": "2026-11-02", "end": "2026-11-03"}, [{"cost": Decimal("5.00")}],
                 {"ingested_total": Decimal("6.00")}, currency="EUR")
    about = {k: v for k, v in load_workbook(io.BytesIO(render(off, "xlsx")[0]))["About"]
             .iter_rows(min_row=2, values_only=True)}
    assert about["reconciliation"] == "NOT reconciled: the rows add up to 5.00 EUR, the ingested bill is 6.00 EUR"
    assert about["currency"].startswith("EUR")


def test_weekly_has_a_chart_of_cost_per_team_this_week_and_the_week_before(
        example: Store, settings: Settings) -> None:
    report = get("weekly")(example, settings, build_params(week="2026-W45"))
    wb = load_workbook(io.BytesIO(render(report, "xlsx")[0]))
    assert wb.sheetnames[1] == "chart_chargeback_team"
    [chart] = wb["chart_chargeback_team"]._charts
    refs = [(s.tx.strRef.f, s.val.numRef.f) for s in chart.series]
    assert refs == [("'chargeback_team'!B1", "'chargeback_team'!$B$2:$B$5"),
                    ("'chargeback_team'!C1", "'chargeback_team'!$C$2:$C$5")]
    header = [c.value for c in wb["chargeback_team"][1]]
    assert header[1:3] == ["cost", "previous_cost"]  # what the two series name
    assert chart.y_axis.delete is False and chart.x_axis.delete is False  # Excel draws the scale


REPORT_PARAMS = {"unit-economics": {"start": "2026-11-02", "end": "2026-11-04", "granularity": "day"},
                 "idle-gpus": {"start": "2026-11-02", "end": "2026-11-03"},
                 "untagged-spend": {"start": "2026-11-02", "end": "2026-11-03"},
                 "weekly": {"week": "2026-W45"},
                 "recommendations": {"start": "2026-11-02", "end": "2026-11-03"},
                 "forecast": {"start": "2026-11-03", "end": "2026-11-05"},
                 "build-vs-buy": {"start": "2026-11-02", "end": "2026-11-03"},
                 "bill-check": {"start": "2026-11-02", "end": "2026-11-03"}}


# Example A's one day has no history to find anomalies in and no budgets: tests/reports/test_anomalies.py
# and tests/reports/test_budgets.py check those workbooks on data that has them.
@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("anomalies", "budgets")])
def test_every_report_uses_the_same_formats(example: Store, settings: Settings, name: str) -> None:
    report = get(name)(example, settings, build_params(**REPORT_PARAMS[name]))
    data, wb = _both(report)
    checked = 0
    for title, rows in _tables(report, data).items():
        checked += check_sheet(wb[title], rows, "metric" if title == "summary" else None)
    assert checked > 0
    assert wb.sheetnames[0] == "About" and wb.sheetnames[-2:] == ["Reconciliation", "Parameters"]
    if name == "untagged-spend":  # a daily trend: a line chart
        assert wb["chart_trend"]._charts
