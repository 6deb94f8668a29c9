"""Report exports: JSON, CSV (a zip of one file per table for multi-table reports) and XLSX (the workbook,
finops/reports/workbook.py).

Text in a report can come from anyone who can tag a cloud resource (tag values, resource ids,
service names), so the CSV and XLSX writers never let text become a formula: XLSX text cells are
string cells, and CSV text starting with a formula character carries a leading `'` (OWASP's
CSV-injection guidance). JSON keeps every value as it is.
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import simplejson

from finops.reports import workbook
from finops.reports.model import Report, Row
from finops.reports.workbook import FORMULA_START, columns

MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "zip": "application/zip",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def csv_text(text: str) -> str:
    """`text` as a CSV cell: prefixed with `'` when it starts with a formula character."""
    return "'" + text if text.startswith(FORMULA_START) else text


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


def _csv_line(values: list[Any]) -> str:
    """One CSV row ending in LF, with every field that holds a CR or LF quoted."""
    buf = io.StringIO()
    # The writer quotes fields holding a character of its line terminator, so it is given CRLF:
    # with LF alone, a bare CR stays unquoted and a spreadsheet starts a new row there, whose
    # first cell (the text after the CR) escapes the formula prefix.
    csv.writer(buf, lineterminator="\r\n").writerow(values)
    return buf.getvalue()[:-2] + "\n"


def _csv_table(rows: list[Row]) -> str:
    cols = columns(rows)
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


def _nested(value: Any) -> str:
    """A list or dict inside a cell (e.g. evidence) as compact JSON."""
    return str(simplejson.dumps(tidy(value), use_decimal=True, separators=(",", ":")))


def to_xlsx(report: Report) -> bytes:
    """The report as a workbook (finops/reports/workbook.py); every text cell is a string cell."""
    return workbook.to_xlsx(report, nested=_nested)


def render(report: Report, fmt: str) -> tuple[bytes, str]:
    """(content, media kind) for `fmt` in json, csv, xlsx."""
    if fmt == "json":
        return to_json(report).encode(), "json"
    if fmt == "csv":
        return to_csv(report)
    if fmt == "xlsx":
        return to_xlsx(report), "xlsx"
    raise ValueError(f"format: {fmt!r} is not one of json, csv, xlsx")
