"""Keep a filtered report within its filter, totals included.

Reports apply `ReportParams.filters` to their rows, but the weekly report also carries figures of
the whole store (ingested total, unallocated cost, the reconciliation by attribution step, the
previous week's ingested total). Under a filter those would show other groups' money, so they are
recomputed here from the filtered rows. Rows whose dims contradict the filter are dropped, and so
are extra tables not known to honour filters, as a second line of defence for team-scoped keys.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from finops.reports.model import Report, Row, ratio

# Tables whose rows the reports build from filtered data (checked in tests/api for a team key).
FILTERED_TABLES = frozenset({"summary", "chargeback_team", "chargeback_project", "unit_economics_by_model",
                             "idle_gpus", "untagged_spend", "reconciliation", "top_resources", "trend", "budgets", "anomalies",
                             "models", "bought_models", "corrections", "gpu_hour_gaps"})


def _within(row: Row, filters: dict[str, str]) -> bool:
    return all(row[d] == v for d, v in filters.items() if d in row)


def _change(this: Any, prev: Any) -> tuple[Any, Any]:
    if this is None or prev is None:
        return None, None
    return this - prev, ratio(Decimal(this - prev), prev) if prev else None


def _summary(rows: list[Row], this: Decimal, prev: Decimal) -> list[Row]:
    # Under a filter nothing is unallocated: unallocated cost belongs to no group.
    whole = {"total_cost": (this, prev), "attributed_cost": (this, prev),
             "unallocated_cost": (Decimal(0), Decimal(0))}
    out = []
    for r in rows:
        if r["metric"] in whole:
            now, before = whole[r["metric"]]
            change, pct = _change(now, before)
            r = {**r, "this_week": now, "previous_week": before, "change": change, "change_pct": pct}
        out.append(r)
    return out


def restrict(report: Report, filters: dict[str, str]) -> Report:
    """The report with only rows inside `filters`, and whole-store figures replaced by filtered ones."""
    if not filters:
        return report
    rows = [r for r in report.rows if _within(r, filters)]
    tables = {name: [r for r in t if _within(r, filters)] for name, t in report.tables.items()
              if name in FILTERED_TABLES}
    totals = dict(report.totals)
    if report.name == "weekly":
        this = sum((r["cost"] for r in rows), Decimal(0))
        prev = sum((r["previous_cost"] for r in rows), Decimal(0))
        totals.update(cost=this, previous_cost=prev, ingested_total=this, control_total_matches=True)
        tables["summary"] = _summary(tables.get("summary", []), this, prev)
        scope = ", ".join(f"{d}={v}" for d, v in sorted(filters.items()))
        tables["reconciliation"] = [
            {"item": "control total (sum of rows)", "amount": this},
            {"item": f"total of {scope}", "amount": this},
        ]
    return replace(report, rows=rows, totals=totals, tables=tables)
