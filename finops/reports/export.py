"""Report exports: JSON, CSV (a zip of one file per table for multi-table reports) and XLSX."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import simplejson
from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from finops.reports.model import MONEY_FIELDS, Report, Row

MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "zip": "application/zip",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
RATIO_FIELDS = frozenset({"untagged_share", "idle_fraction", "avg_gpu_busy", "avg_busy", "change_pct"})


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


def _csv_table(rows: list[Row]) -> str:
    out = io.StringIO()
    cols = _columns(rows)
    w = csv.DictWriter(out, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if v is None else _nested(v) if isinstance(v, list | dict) else tidy(v)
                    for k, v in r.items()})
    return out.getvalue()


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
    return value


def _sheet(wb: Workbook, title: str, rows: list[Row], currency: str) -> None:
    ws = wb.create_sheet(title[:31])
    cols = _columns(rows) or ["(no rows)"]
    ws.append(cols)
    for r in rows:
        ws.append([_cell(r.get(c)) for c in cols])
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
