"""Report exports: JSON, CSV (a zip of one file per table for multi-table reports) and XLSX.

Text in a report can come from anyone who can tag a cloud resource (tag values, resource ids,
service names), so the CSV and XLSX writers never let text become a formula: XLSX text cells are
string cells, and CSV text starting with a formula character carries a leading `'` (OWASP's
CSV-injection guidance). JSON keeps every value as it is.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import simplejson
from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from finops.reports.model import MONEY_FIELDS, Report, Row

MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "zip": "application/zip",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
RATIO_FIELDS = frozenset({"untagged_share", "idle_fraction", "avg_gpu_busy", "avg_busy", "change_pct"})

# A spreadsheet opening a CSV evaluates a cell that starts with one of these (tab and CR because
# spreadsheets skip them and then read the formula behind).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# What XML 1.0, and so a workbook, cannot hold: C0 controls other than tab, LF and CR, lone
# surrogates, U+FFFE and U+FFFF. openpyxl refuses such text (IllegalCharacterError) and the whole
# workbook with it, so the writer drops them: stored data can never break an export.
NOT_IN_XLSX = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def csv_text(text: str) -> str:
    """`text` as a CSV cell: prefixed with `'` when it starts with a formula character."""
    return "'" + text if text.startswith(FORMULA_START) else text


def xlsx_text(text: str) -> str:
    """`text` without the characters a workbook cannot hold."""
    return NOT_IN_XLSX.sub("", text)


def tidy(value: Any) -> Any:
    """Decimals without trailing noise: 240.000000000000 -> 240.00, 0.013333333333 stays."""
    if isinstance(value, Decimal):
        exp = value.normalize().as_tuple().exponent
        places = max(2, -exp) if isinstance(exp, int) else 2
        return value.quantize(Decimal(1).scaleb(-places))
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: tidy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [tidy(v) for v in value]
    return value


def to_json(report: Report) -> str:
    """Money as exact JSON numbers (parse with Decimal to keep every digit)."""
    return str(simplejson.dumps(tidy(report.as_dict()), use_decimal=True, indent=2))


def _columns(rows: list[Row]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    return cols


def _csv_line(values: list[Any]) -> str:
    """One CSV row ending in LF, with every field that holds a CR or LF quoted."""
    buf = io.StringIO()
    # The writer quotes fields holding a character of its line terminator, so it is given CRLF:
    # with LF alone, a bare CR stays unquoted and a spreadsheet starts a new row there, whose
    # first cell (the text after the CR) escapes the formula prefix.
    csv.writer(buf, lineterminator="\r\n").writerow(values)
    return buf.getvalue()[:-2] + "\n"


def _csv_table(rows: list[Row]) -> str:
    cols = _columns(rows)
    return _csv_line(cols) + "".join(_csv_line([_csv_cell(r.get(c)) for c in cols]) for r in rows)


def _csv_cell(value: Any) -> Any:
    """Numbers as numbers (a negative amount is not text and keeps its sign); text made inert."""
    if value is None:
        return ""
    out = _nested(value) if isinstance(value, list | dict) else tidy(value)
    return csv_text(out) if isinstance(out, str) else out


def to_csv(report: Report) -> tuple[bytes, str]:
    """(content, kind): the rows as CSV, or a zip of one CSV per table when there are several."""
    if not report.tables or report.name != "weekly":
        return _csv_table(report.rows).encode(), "csv"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, rows in report.all_tables().items():
            z.writestr(f"{name}.csv", _csv_table(rows))
    return buf.getvalue(), "zip"


def _money_format(currency: str) -> str:
    symbols = {"USD": "$", "EUR": "€", "GBP": "£"}
    sym = symbols.get(currency)
    return f'"{sym}"#,##0.00' if sym else f'#,##0.00 "{currency}"'


def _nested(value: Any) -> str:
    """A list or dict inside a cell (e.g. evidence) as compact JSON."""
    return str(simplejson.dumps(tidy(value), use_decimal=True, separators=(",", ":")))


def _cell(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)  # spreadsheets hold binary floats; the JSON export keeps every digit
    if isinstance(value, list | dict):
        return _nested(value)
    if isinstance(value, str):
        return xlsx_text(value)
    return value


def _text_cell(ws: Worksheet, text: str) -> Cell:
    """A string cell holding `text`, whatever it starts with: never a formula, never an error value."""
    cell = Cell(ws, value=text)  # openpyxl makes text starting with `=` a formula, `#N/A` an error...
    cell.data_type = "s"  # ...so the type is set after the value
    if text.startswith(FORMULA_START):
        cell.quotePrefix = True  # Excel keeps it text even when someone edits the cell
    return cell


def _append(ws: Worksheet, values: list[Any]) -> None:
    ws.append([_text_cell(ws, v) if isinstance(v, str) else v for v in map(_cell, values)])


def _sheet(wb: Workbook, title: str, rows: list[Row], currency: str) -> None:
    ws = wb.create_sheet(title[:31])
    cols = _columns(rows) or ["(no rows)"]
    _append(ws, list(cols))
    for r in rows:
        _append(ws, [r.get(c) for c in cols])
    money = _money_format(currency)
    for j, col in enumerate(cols, start=1):
        fmt = None
        if col in MONEY_FIELDS or col.endswith("_cost"):
            fmt = "#,##0.000000" if col.startswith("cost_per") else money
        elif col in RATIO_FIELDS or col.endswith("_share"):
            fmt = "0.00%"
        elif col.endswith("_tokens") or col in ("requests", "gpu_hours", "hours_observed", "idle_hours"):
            fmt = "#,##0"
        width = max([len(col)] + [len(str(_cell(r.get(col)))) for r in rows[:200]]) + 2
        ws.column_dimensions[get_column_letter(j)].width = min(max(width, 10), 60)
        if fmt:
            for (cell,) in ws.iter_rows(min_row=2, min_col=j, max_col=j):
                cell.number_format = fmt
    ws.freeze_panes = "A2"


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


def to_xlsx(report: Report) -> bytes:
    """One sheet per table, then Reconciliation and Parameters; every text cell is a string cell."""
    wb = Workbook()
    assert wb.active is not None
    wb.remove(wb.active)
    for name, rows in report.all_tables().items():
        if name != "reconciliation":
            _sheet(wb, name, rows, report.currency)
    _sheet(wb, "Reconciliation", reconciliation(report), report.currency)
    params = [{"parameter": k, "value": str(v)} for k, v in report.params.items()]
    _sheet(wb, "Parameters", params, report.currency)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def render(report: Report, fmt: str) -> tuple[bytes, str]:
    """(content, media kind) for `fmt` in json, csv, xlsx."""
    if fmt == "json":
        return to_json(report).encode(), "json"
    if fmt == "csv":
        return to_csv(report)
    if fmt == "xlsx":
        return to_xlsx(report), "xlsx"
    raise ValueError(f"format: {fmt!r} is not one of json, csv, xlsx")
