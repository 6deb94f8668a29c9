"""Untagged spend (docs/definitions.md 6.3): cost missing required tags on the bill, and how much rules recover."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import duckdb

from finops.attribution import Attribution
from finops.reports.model import (
    Report,
    Row,
    fetch_rows,
    filter_sql,
    params_dict,
    period_sql,
    ratio,
    with_attribution,
)
from finops.reports.params import ReportParams
from finops.settings import Settings
from finops.store import Store

# What counts as accelerator spend: GPU instance families on AWS (p*, g*, inf*, trn*, dl*) and
# Azure N-series (NC, ND, NV), matched on instance type, resource type or service name, plus any
# resource that reported GPU metrics in the window.
ACCELERATOR_REGEX = (
    r"^(p|g|inf|trn|dl)[0-9]+[a-z0-9-]*\.[a-z0-9]+$"
    r"|standard_n[cdv][0-9]"
    r"|\(n[cdv][^)]*\)"
)


def reads(params: ReportParams) -> tuple[str, ...]:
    """The att_* relations the report reads."""
    return ("att_line", "att_inv", "att_gpu") if params.scope == "accelerator" else ("att_line",)


def query(params: ReportParams, where: str, splits: int = 0) -> str:
    """Per resource (provider, account, service, resource) and per day (`trend`): cost, cost missing
    a required tag, and what rules recover of it, in one pass (GROUPING SETS; `by_day` tells them apart).
    `splits` cuts the window into consecutive periods at the dates bound as `$split1`, ...: resources
    are then per period (the window's start, or the split its day is on or after)."""
    flags = "".join(f", c.{d} IS NULL AS missing_{d}" for d in params.required_tags)
    untagged = " OR ".join(f"missing_{d}" for d in params.required_tags) or "false"
    # Missing tags in alphabetical order, as one text.
    tags = ", ".join(f"CASE WHEN bool_or(missing_{d}) THEN '{d}' END" for d in sorted(params.required_tags))
    accel, inventory = "TRUE", ""
    if params.scope == "accelerator":
        inventory = "LEFT JOIN att_inv i ON i.resource_key = c.resource_key"
        accel = ("(c.resource_key IN (SELECT rkey FROM att_gpu WHERE rkey IS NOT NULL) "
                 "OR regexp_matches(lower(coalesce(i.instance_type, '')), $accel) "
                 "OR regexp_matches(lower(coalesce(c.resource_type, '')), $accel) "
                 "OR regexp_matches(lower(coalesce(c.service_name, '')), $accel))")
    period, by_period = "", ""
    if splits:
        period, by_period = f", {period_sql('c.day', 'CAST($start AS DATE)', splits)} AS period", "period, "
    return f"""
    WITH lines AS (
        SELECT c.day{period}, c.provider_name AS provider, coalesce(c.sub_account_id, c.billing_account_id) AS account,
               c.service_name AS service, c.resource_id, c.cost, c.recoverable {flags}
        FROM att_line c {inventory}
        WHERE {accel} AND {where}
    )
    SELECT * FROM (
        SELECT {by_period}provider, account, service, resource_id, day, GROUPING(day) = 0 AS by_day,
               sum(cost) AS cost, coalesce(sum(cost) FILTER (WHERE {untagged}), 0) AS untagged_cost,
               coalesce(sum(recoverable) FILTER (WHERE {untagged}), 0) AS recoverable_cost,
               {f"concat_ws(',', {tags})" if tags else "''"} AS missing_tags
        FROM lines GROUP BY GROUPING SETS (({by_period}provider, account, service, resource_id), (day))
    ) ORDER BY by_day, day, {by_period}untagged_cost DESC, cost DESC, coalesce(provider, ''), coalesce(resource_id, '')
    """  # noqa: S608 - validated dim names and constants, values bound


def build(cur: duckdb.DuckDBPyConnection, att: Attribution, params: ReportParams) -> Report:
    return build_windows(cur, ((att, params),))[0]


def build_windows(cur: duckdb.DuckDBPyConnection,
                  windows: tuple[tuple[Attribution, ReportParams], ...]) -> list[Report]:
    """The report for each of consecutive `windows` (each with the attribution of its own window)
    from one pass over their span, which the attribution set up on `cur` covers."""
    first = windows[0][1]
    where, binds = filter_sql(first, "c")
    if first.scope == "accelerator":
        binds["accel"] = ACCELERATOR_REGEX
    splits = {f"split{i}": p.start for i, (_, p) in enumerate(windows[1:], 1)}
    sql = query(first, where, len(splits))
    binds.update({"start": first.start, **splits} if splits else {})
    rows: dict[date, list[Row]] = {p.start: [] for _, p in windows}
    trend: dict[date, list[Row]] = {p.start: [] for _, p in windows}
    starts = [p.start for _, p in windows]
    for r in fetch_rows(cur, sql, binds):
        if r.pop("by_day"):
            # The window a day is in: the last that starts on or before it.
            into = next(s for s in reversed(starts) if s <= r["day"])
            trend[into].append({"day": r["day"], "total_cost": r["cost"], "untagged_cost": r["untagged_cost"],
                                "untagged_share": ratio(r["untagged_cost"], r["cost"])})
        else:
            del r["day"]
            rows[r.pop("period") if splits else first.start].append(r)
    return [_report(rows[p.start], trend[p.start], att, p) for att, p in windows]


def _report(rows: list[Row], trend: list[Row], att: Attribution, params: ReportParams) -> Report:
    total = sum((r["cost"] for r in rows), Decimal(0))
    untagged = sum((r["untagged_cost"] for r in rows), Decimal(0))
    totals: Row = {
        "total_cost": total,
        "untagged_cost": untagged,
        "untagged_share": ratio(untagged, total),
        "recoverable_cost": sum((r["recoverable_cost"] for r in rows), Decimal(0)),
        "cost": total,
    }
    top = [r for r in rows if r["untagged_cost"] > 0][:10]
    return Report("untagged-spend", params_dict(params, att.currency), rows, totals,
                  tables={"top_resources": top, "trend": trend}, currency=att.currency)


def untagged_spend(store: Store, settings: Settings, params: ReportParams) -> Report:
    return with_attribution(store, settings, params, lambda cur, att: build(cur, att, params), reads=reads(params))
