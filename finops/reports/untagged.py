"""Untagged spend (docs/definitions.md 6.3): cost missing required tags on the bill, and how much rules recover."""

from __future__ import annotations

from decimal import Decimal

import duckdb

from finops.attribution import Attribution
from finops.reports.model import Report, Row, fetch_rows, filter_sql, params_dict, ratio, with_attribution
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


def lines_sql(params: ReportParams, where: str) -> str:
    missing = ", ".join(f"CASE WHEN c.{d} IS NULL THEN '{d}' END" for d in params.required_tags) or "NULL"
    accel = ("TRUE" if params.scope == "all" else
             "(c.resource_key IN (SELECT rkey FROM att_gpu WHERE rkey IS NOT NULL) "
             "OR regexp_matches(lower(coalesce(i.instance_type, '')), $accel) "
             "OR regexp_matches(lower(coalesce(c.resource_type, '')), $accel) "
             "OR regexp_matches(lower(coalesce(c.service_name, '')), $accel))")
    return f"""
    CREATE OR REPLACE TEMP TABLE rep_untagged AS
    SELECT c.line_id, c.day, c.provider_name AS provider, coalesce(c.sub_account_id, c.billing_account_id) AS account,
           c.service_name AS service, c.resource_id, c.cost,
           list_filter([{missing}], lambda x: x IS NOT NULL) AS missing,
           c.recoverable
    FROM att_line c LEFT JOIN att_inv i ON i.resource_key = c.resource_key
    WHERE {accel} AND {where}
    """  # noqa: S608 - validated dim names and constants, values bound


BREAKDOWN = """
SELECT provider, account, service, resource_id,
       sum(cost) AS cost,
       coalesce(sum(cost) FILTER (WHERE len(missing) > 0), 0) AS untagged_cost,
       coalesce(sum(recoverable) FILTER (WHERE len(missing) > 0), 0) AS recoverable_cost,
       array_to_string(list_sort(list_distinct(flatten(list(missing)))), ',') AS missing_tags
FROM rep_untagged GROUP BY ALL
"""

TREND = """
SELECT day, sum(cost) AS total_cost, coalesce(sum(cost) FILTER (WHERE len(missing) > 0), 0) AS untagged_cost
FROM rep_untagged GROUP BY day ORDER BY day
"""


def build(cur: duckdb.DuckDBPyConnection, att: Attribution, params: ReportParams) -> Report:
    where, binds = filter_sql(params, "c")
    if params.scope == "accelerator":
        binds["accel"] = ACCELERATOR_REGEX
    cur.execute(lines_sql(params, where), binds).fetchall()
    rows = fetch_rows(cur, BREAKDOWN)
    rows.sort(key=lambda r: (-r["untagged_cost"], -r["cost"], r["provider"] or "", r["resource_id"] or ""))
    trend = fetch_rows(cur, TREND)
    for t in trend:
        t["untagged_share"] = ratio(t["untagged_cost"], t["total_cost"])
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
    return with_attribution(store, settings, params, lambda cur, att: build(cur, att, params), hourly=False)
