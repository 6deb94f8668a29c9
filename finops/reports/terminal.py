"""A readable table of a report for the terminal (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from finops.reports import CATALOG
from finops.reports.export import tidy
from finops.reports.model import Report

MAX_ROWS = 50
def show(report: Report, console: Console) -> None:
    rows = report.rows
    keys = CATALOG[report.name].columns if report.name in CATALOG else None
    cols = [c for c in (keys or (rows[0] if rows else ())) if rows and c in rows[0]]
    table = Table(title=f"{report.name}  {report.params['start']} .. {report.params['end']}  ({report.currency})")
    for c in cols:
        table.add_column(c, justify="right" if rows and isinstance(rows[0][c], int | float) or c.endswith("cost") else "left")
    for r in rows[:MAX_ROWS]:
        table.add_row(*("" if r[c] is None else str(tidy(r[c])) for c in cols))
    console.print(table)
    if len(rows) > MAX_ROWS:
        console.print(f"... {len(rows) - MAX_ROWS} more rows (use --format csv or xlsx for all)")
    console.print("totals: " + ", ".join(f"{k}={tidy(v)}" for k, v in report.totals.items() if not isinstance(v, dict)))
