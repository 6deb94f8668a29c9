"""A readable table of a report for the terminal (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from finops.reports.export import tidy
from finops.reports.model import Report

MAX_ROWS = 50
# The columns worth a terminal's width, per report; exports carry every field.
KEY_COLUMNS = {
    "unit-economics": ("period_start", "project", "team", "environment", "model_id", "cost", "generation_tokens",
                       "cost_per_1k_generated_tokens", "gpu_hours", "avg_gpu_busy", "idle_cost", "note"),
    "idle-gpus": ("host", "gpu_uuid", "team", "model_id", "hours_observed", "idle_hours", "idle_cost",
                  "longest_idle_streak_hours", "no_tokens_served"),
    "untagged-spend": ("provider", "account", "service", "resource_id", "cost", "untagged_cost",
                       "recoverable_cost", "missing_tags"),
    "weekly": ("project", "team", "environment", "model_id", "cost", "previous_cost", "change"),
    "recommendations": ("kind", "resource", "team", "model_id", "monthly_saving", "confidence", "action"),
}


def show(report: Report, console: Console) -> None:
    rows = report.rows
    keys = KEY_COLUMNS.get(report.name)
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
