"""The XLSX workbook of a report: an About sheet, a chart where one reads better, one sheet per table,
then Reconciliation and Parameters.

Every number cell carries the format of its kind (`KINDS`: money, price, count, share, date), decided
by field name in one place. Money and prices are written from the report's exact decimals, rounded
half-even to the currency's minor unit (money) or to `PRICE_PLACES` (prices), so a cell read back
holds that decimal and no binary noise. A null stays an empty cell. Text is always a string cell:
text from a bill can never become a formula (see finops/reports/export.py).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import Enum
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from finops.reports import CATALOG
from finops.reports.model import Report, Row

# A spreadsheet evaluates a cell that starts with one of these (tab and CR because spreadsheets
# skip them and then read the formula behind).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# What XML 1.0, and so a workbook, cannot hold: C0 controls other than tab, LF and CR, lone
# surrogates, U+FFFE and U+FFFF. openpyxl refuses such text (IllegalCharacterError) and the whole
# workbook with it, so the writer drops them: stored data can never break an export.
NOT_IN_XLSX = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class Kind(Enum):
    """What a field holds, and so how its cells are written and formatted."""

    MONEY = "money"  # an amount in the report currency
    PRICE = "price"  # money per unit (per 1k tokens, per request, per hour): more decimals
    COUNT = "count"  # tokens, requests, hours, GPUs
    SHARE = "share"  # a fraction of 1, shown as a percentage
    SCORE = "score"  # a plain number without a unit (an anomaly's robust score)
    DATE = "date"
    DATETIME = "datetime"
    TEXT = "text"


# The kind of each field, by exact name first, then by prefix or suffix; `previous_X` and
# `X_change` have the kind of `X` (see `kind`). A field matching nothing is text.
KINDS: dict[str, Kind] = {
    "cost": Kind.MONEY, "amount": Kind.MONEY, "change": Kind.MONEY, "monthly_saving": Kind.MONEY,
    "ingested_total": Kind.MONEY, "control_total": Kind.MONEY,
    "hour_cost": Kind.PRICE, "cost_per_request": Kind.PRICE,
    "requests": Kind.COUNT, "hours_observed": Kind.COUNT, "gpus": Kind.COUNT, "gpus_without_tokens": Kind.COUNT, "recommendations": Kind.COUNT,
    # An anomaly's value is money or a price per 1k tokens, by its metric: price places fit both.
    "value": Kind.PRICE, "baseline": Kind.PRICE, "expected_low": Kind.PRICE, "expected_high": Kind.PRICE,
    "deviation": Kind.PRICE, "anomalies": Kind.COUNT, "groups": Kind.COUNT, "score": Kind.SCORE,
    "avg_gpu_busy": Kind.SHARE, "avg_busy": Kind.SHARE,
    "period_start": Kind.DATE, "period_end": Kind.DATE, "day": Kind.DATE, "last_busy_at": Kind.DATETIME,
    # Forecasts and budgets: interval ends have the kind of what they bound; thresholds are percentages
    # of a budget as its owner wrote them (80 is 80 %), and days left is a number of days to a tenth.
    "cost_low": Kind.MONEY, "cost_high": Kind.MONEY, "forecast_cost_low": Kind.MONEY,
    "forecast_cost_high": Kind.MONEY, "burn_rate_per_day": Kind.MONEY,
    "forecast_cost_per_1k_generated_tokens": Kind.PRICE, "max_cost_per_1k_generated_tokens": Kind.PRICE,
    "generation_tokens_low": Kind.COUNT, "generation_tokens_high": Kind.COUNT, "days_to_period_end": Kind.COUNT,
    "budgets": Kind.COUNT, "days_left": Kind.SCORE, "actual_threshold_crossed": Kind.SCORE,
    "forecast_threshold_crossed": Kind.SCORE, "cache_hit_rate": Kind.SHARE, "cache_savings": Kind.MONEY,
    "actual_through": Kind.DATE, "saving": Kind.MONEY, "break_even_busy": Kind.SHARE, "priced_days": Kind.COUNT, "models": Kind.COUNT,
    "offerings": Kind.COUNT, "lines": Kind.COUNT, "correction_lines": Kind.COUNT,
    "delivered_in": Kind.DATE,
}
PREFIXES = (("cost_per_", Kind.PRICE),)  # before suffixes: cost_per_1k_tokens is a price, not tokens
SUFFIXES = (("_pct", Kind.SHARE), ("_share", Kind.SHARE), ("_fraction", Kind.SHARE), ("_tokens", Kind.COUNT),
            ("_hours", Kind.COUNT), ("_cost", Kind.MONEY))
# Tables whose rows are measures: the kind of a row's numbers is the kind of the measure this column
# names (the weekly summary: one row per metric, this week and the previous week side by side).
MEASURE_COLUMN = {"summary": "metric"}

PRICE_PLACES = 6  # a price of 0.000065 per token must not read 0.00
# ISO 4217 minor units where they are not 2.
MINOR_UNITS = {**dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX",
                                "VND", "VUV", "XAF", "XOF", "XPF"), 0),
               **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3)}
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
FORMATS = {Kind.COUNT: "#,##0", Kind.SHARE: "0.0%", Kind.SCORE: "0.00", Kind.DATE: "yyyy-mm-dd", Kind.DATETIME: "yyyy-mm-dd hh:mm:ss"}

# Charts, per table: (category column, value columns, title, chart type). Only tables whose
# comparison reads better as bars or a line than as numbers.
CHARTS: dict[str, tuple[str, tuple[str, ...], str, type[BarChart] | type[LineChart]]] = {
    "chargeback_team": ("team", ("cost", "previous_cost"), "Cost per team: this week and the week before", BarChart),
    "trend": ("day", ("total_cost", "untagged_cost"), "Daily cost and untagged cost", LineChart),
}


def kind(field: str) -> Kind:
    """The kind of the values of `field` (see `KINDS`)."""
    if field in KINDS:
        return KINDS[field]
    for prefix, k in PREFIXES:
        if field.startswith(prefix):
            return k
    if field.endswith("_pct"):
        return Kind.SHARE  # a change in percent, whatever it is a change of
    if field.startswith("previous_"):
        return kind(field.removeprefix("previous_"))
    if field.endswith("_change"):
        return kind(field.removesuffix("_change"))
    for suffix, k in SUFFIXES:
        if field.endswith(suffix):
            return k
    return Kind.TEXT


def money_places(currency: str) -> int:
    """Decimals of the currency's minor unit (2 unless ISO 4217 says otherwise)."""
    return MINOR_UNITS.get(currency, 2)


def number_format(k: Kind, currency: str) -> str | None:
    """The number format of cells of kind `k`; None for text."""
    if k in (Kind.MONEY, Kind.PRICE):
        places = money_places(currency) if k is Kind.MONEY else PRICE_PLACES
        digits = "#,##0" + ("." + "0" * places if places else "")
        sym = SYMBOLS.get(currency)
        return f'"{sym}"{digits}' if sym else f'{digits} "{currency}"'
    return FORMATS.get(k)


def exact(value: Any, k: Kind, currency: str) -> Any:
    """The number a cell of kind `k` holds for `value`: money and prices rounded half-even to their
    places (a Decimal: the cell reads back as exactly it, up to 15 significant digits, with no binary
    noise from arithmetic in floats); shares as floats; anything else unchanged."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return value
    if k in (Kind.MONEY, Kind.PRICE):
        places = money_places(currency) if k is Kind.MONEY else PRICE_PLACES
        # Through str: a float amount is taken as the decimal it prints as, not its binary expansion.
        return Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    if k in (Kind.SHARE, Kind.SCORE):
        return float(value)
    return value


def xlsx_text(text: str) -> str:
    """`text` without the characters a workbook cannot hold."""
    return NOT_IN_XLSX.sub("", text)


def text_cell(ws: Worksheet, text: str) -> Cell:
    """A string cell holding `text`, whatever it starts with: never a formula, never an error value."""
    cell = Cell(ws, value=xlsx_text(text))  # openpyxl makes text starting with `=` a formula...
    cell.data_type = "s"  # ...and `#N/A` an error, so the type is set after the value
    if cell.value.startswith(FORMULA_START):
        cell.quotePrefix = True  # Excel keeps it text even when someone edits the cell
    return cell


def _value(ws: Worksheet, value: Any, k: Kind, currency: str, nested: Callable[[Any], str]) -> Any:
    if isinstance(value, list | dict):
        value = nested(value)
    if isinstance(value, str):
        return text_cell(ws, value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)  # a workbook holds no time zone
    return exact(value, k, currency)


def columns(rows: list[Row]) -> list[str]:
    """Every field of `rows`, in order of first appearance."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    return cols


def _sheet(wb: Workbook, title: str, rows: list[Row], currency: str, nested: Callable[[Any], str]) -> Worksheet:
    """A sheet of `rows` with a frozen header, each number cell formatted by its kind."""
    ws = wb.create_sheet(title[:31])
    cols = columns(rows) or ["(no rows)"]
    measure = MEASURE_COLUMN.get(title)
    ws.append([text_cell(ws, c) for c in cols])
    for r in rows:
        # In a table of measures a number takes its row's kind; a change in percent stays a share.
        measure_kind = kind(r[measure]) if measure and isinstance(r.get(measure), str) else Kind.TEXT
        kinds = [measure_kind if measure_kind is not Kind.TEXT and kind(c) is not Kind.SHARE else kind(c)
                 for c in cols]
        ws.append([_value(ws, r.get(c), k, currency, nested) for c, k in zip(cols, kinds, strict=True)])
        for cell, k in zip(ws[ws.max_row], kinds, strict=True):
            fmt = number_format(k, currency)
            if fmt and cell.value is not None and cell.data_type != "s":
                cell.number_format = fmt
    # Widths from the first 200 rows (iter_rows would create the cells of rows that do not exist).
    for j, col in enumerate(cols, start=1):
        shown = ws.iter_rows(min_row=2, max_row=min(ws.max_row, 201), min_col=j, max_col=j, values_only=True)
        width = max([len(col)] + [len(str(v)) for (v,) in shown if v is not None]) + 2
        ws.column_dimensions[get_column_letter(j)].width = min(max(width, 10), 60)
    ws.freeze_panes = "A2"
    return ws


def reconciliation(report: Report) -> list[Row]:
    """The rows behind the Reconciliation sheet: sum of rows against the ingested total."""
    if "reconciliation" in report.tables:
        return report.tables["reconciliation"]
    total = report.totals.get("ingested_total", report.totals.get("total_cost"))
    rows_sum = sum((r.get("cost", Decimal(0)) or Decimal(0) for r in report.rows), Decimal(0))
    out: list[Row] = [{"item": "sum of rows (cost)", "amount": rows_sum}]
    if total is not None:
        out += [{"item": "ingested total", "amount": total}, {"item": "difference", "amount": rows_sum - total}]
    return out


def reconciliation_status(report: Report) -> str:
    """Whether the report's rows add up to the ingested bill, in words."""
    total = report.totals.get("ingested_total", report.totals.get("total_cost"))
    if total is None:
        return "not applicable: this report does not split the whole bill (see the Reconciliation sheet)"
    rows_sum = sum((r.get("cost", Decimal(0)) or Decimal(0) for r in report.rows), Decimal(0))
    if rows_sum == total:
        return f"reconciled: the rows add up to the ingested bill exactly, {_amount(total, report.currency)}"
    return (f"NOT reconciled: the rows add up to {_amount(rows_sum, report.currency)}, "
            f"the ingested bill is {_amount(total, report.currency)}")


def _amount(value: Decimal, currency: str) -> str:
    """Money as text, e.g. `1,234.50 USD`."""
    return f"{exact(value, Kind.MONEY, currency):,f} {currency}"


def _about(report: Report, sheets: list[str]) -> list[Row]:
    p = report.params
    window = f"{p.get('start')} to {p.get('end')} (end excluded)"
    if report.totals.get("week"):
        window = f"ISO week {report.totals['week']}: {window}"
    return [
        {"item": "workbook", "value": CATALOG[report.name].summary if report.name in CATALOG else report.name},
        {"item": "report", "value": report.name},
        {"item": "window", "value": window},
        {"item": "currency", "value": f"{report.currency}; money with {money_places(report.currency)} decimals, "
                                      f"prices (per 1k tokens, per request, per hour) with {PRICE_PLACES}"},
        {"item": "cost basis", "value": str(p.get("cost_basis", ""))},
        {"item": "grouped by", "value": ", ".join(map(str, p.get("group_by", ())))},
        {"item": "definitions", "value": "every field is defined in docs/definitions.md (numbers: section 5.3, "
                                         "this report: section 6)"},
        {"item": "reconciliation", "value": reconciliation_status(report)},
        {"item": "sheets", "value": ", ".join(sheets)},
    ]


def _parameters(params: dict[str, Any], prefix: str = "") -> list[Row]:
    """One row per parameter, nested settings as `parent.name`; lists as comma-joined text."""
    rows: list[Row] = []
    for k, v in params.items():
        if isinstance(v, dict) and v:
            rows += _parameters(v, f"{prefix}{k}.")
        elif isinstance(v, list | tuple | dict):
            rows.append({"parameter": prefix + k, "value": ", ".join(map(str, v))})
        else:
            rows.append({"parameter": prefix + k, "value": "" if v is None else str(v)})
    return rows


def _chart(wb: Workbook, ws: Worksheet, table: str, currency: str) -> None:
    """A chart sheet of `table`'s series, when `CHARTS` names that table and it has rows."""
    category, series, title, chart_type = CHARTS[table]
    header = [c.value for c in ws[1]]
    if ws.max_row < 2 or category not in header or not all(s in header for s in series):
        return
    chart = chart_type()
    chart.title = title
    chart.y_axis.title = "cost"
    # openpyxl 3.1 marks axes deleted by default, and Excel then draws the bars without any scale.
    chart.x_axis.delete = chart.y_axis.delete = False
    chart.y_axis.number_format = number_format(Kind.MONEY, currency)
    for s in series:
        col = header.index(s) + 1
        chart.add_data(Reference(ws, min_col=col, min_row=1, max_row=ws.max_row), titles_from_data=True)
    col = header.index(category) + 1
    chart.set_categories(Reference(ws, min_col=col, min_row=2, max_row=ws.max_row))
    wb.create_chartsheet(f"chart_{table}"[:31]).add_chart(chart)


def to_xlsx(report: Report, nested: Callable[[Any], str]) -> bytes:
    """The workbook: About, charts, one sheet per table, Reconciliation and Parameters.

    `nested` writes a list or dict held in a cell (a recommendation's evidence) as text.
    """
    wb = Workbook()
    assert wb.active is not None
    wb.remove(wb.active)
    for name, rows in report.all_tables().items():
        if name != "reconciliation":
            ws = _sheet(wb, name, rows, report.currency, nested)
            if name in CHARTS:
                _chart(wb, ws, name, report.currency)
    _sheet(wb, "Reconciliation", reconciliation(report), report.currency, nested)
    _sheet(wb, "Parameters", _parameters(report.params), report.currency, nested)
    sheets = [s.title for s in wb.chartsheets] + [s.title for s in wb.worksheets]
    about = _sheet(wb, "About", _about(report, sheets), report.currency, nested)
    # About first, then the charts: what a reader sees before the tables.
    for i, title in enumerate([about.title, *(c.title for c in wb.chartsheets)]):
        wb.move_sheet(title, i - wb.sheetnames.index(title))
    wb.active = 0
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
