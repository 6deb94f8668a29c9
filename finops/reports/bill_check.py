"""Bill check (docs/definitions.md 6.10): what the bill says about itself, beside what telemetry saw.

Per provider, billing account, month and currency: the cost (a split cost allocation's origin row
counted once, in its allocated rows), the part of it that corrects an earlier billing period (FOCUS
`ChargeClass` = `Correction`, counted in the period it corrects) and the unused commitment
(`CommitmentDiscountStatus` = `Unused`). Then the corrections line by line, and the GPU
instance-hours the bill charged for that the GPUs' own metrics do not show (a gap in monitoring,
or a GPU paid for and not running anything that reports).
"""

from __future__ import annotations

from decimal import Decimal

from finops.reports.model import PLACES, Report, Row, fetch_rows, filter_sql, params_dict, snapshot
from finops.reports.params import ReportParams
from finops.settings import Settings
from finops.store import Store

# Units in which a bill counts hours of a resource (FOCUS ConsumedUnit / PricingUnit, as providers write them).
HOUR_UNITS = ("hour", "hours", "hr", "hrs", "1 hour", "instance-hours")
CORRECTION = "lower(charge_class) = 'correction'"
UNUSED = "lower(commitment_discount_status) = 'unused'"


def _cost(params: ReportParams) -> str:
    return "billed_cost" if params.cost_basis == "billed" else "effective_cost"


def periods_sql(params: ReportParams, where: str) -> str:
    cost = _cost(params)
    return f"""
    SELECT provider_name AS provider, billing_account_id AS account,
           CAST(date_trunc('month', charge_date) AS DATE) AS period_start, billing_currency AS currency,
           sum({cost}) AS cost,
           coalesce(sum({cost}) FILTER (WHERE {CORRECTION}), 0) AS corrections_cost,
           coalesce(sum({cost}) FILTER (WHERE {UNUSED}), 0) AS unused_commitment_cost,
           count(*) AS lines, count(*) FILTER (WHERE {CORRECTION}) AS correction_lines
    FROM cost_lines
    WHERE charge_date >= $start AND charge_date < $end AND split_origin IS NOT TRUE AND {where}
    GROUP BY ALL ORDER BY period_start, provider, account, currency
    """  # noqa: S608 - constants and validated dims; values bound


def corrections_sql(params: ReportParams, where: str) -> str:
    return f"""
    SELECT provider_name AS provider, billing_account_id AS account,
           CAST(date_trunc('month', charge_date) AS DATE) AS period_start,
           CAST(billing_period_start AS DATE) AS delivered_in, service_name AS service, resource_id,
           billing_currency AS currency, sum({_cost(params)}) AS cost, count(*) AS lines
    FROM cost_lines
    WHERE charge_date >= $start AND charge_date < $end AND split_origin IS NOT TRUE AND {CORRECTION} AND {where}
    GROUP BY ALL ORDER BY period_start, delivered_in, provider, account, service, resource_id
    """  # noqa: S608 - constants and validated dims; values bound


def gaps_sql(params: ReportParams, where: str) -> str:
    units = ", ".join(f"'{u}'" for u in HOUR_UNITS)
    return f"""
    WITH hosts AS (
        SELECT DISTINCT lower(h) AS host, resource_key FROM inventory, unnest(host_names) AS t(h) WHERE h IS NOT NULL
    ),
    seen AS (
        -- Hours a resource's GPUs reported, per day: the most any one of its GPUs (or MIG slices) did.
        -- A workload's hours of a time-sliced GPU are a rollup row per share: added up first.
        SELECT day, rkey, max(hours) AS observed_hours FROM (
            SELECT g.day, coalesce(hm.resource_key, g.resource_key) AS rkey, g.source, g.scope, g.gpu_uuid,
                   g.mig_instance, g.namespace, g.pod, sum(g.hours) AS hours
            FROM gpu_daily g LEFT JOIN hosts hm ON hm.host = g.resource_key
            WHERE g.day >= $start AND g.day < $end GROUP BY ALL
        ) GROUP BY ALL
    ),
    gpu_resources AS (
        SELECT rkey FROM seen UNION SELECT resource_key FROM inventory WHERE gpu_count > 0
    ),
    billed AS (
        SELECT charge_date AS day, resource_key, min(resource_id) AS resource_id, billing_currency AS currency,
               sum(consumed_quantity) AS billed_hours, sum({_cost(params)}) AS cost
        FROM cost_lines
        WHERE charge_date >= $start AND charge_date < $end AND split_origin IS NOT TRUE AND resource_key IS NOT NULL
          AND lower(trim(consumed_unit)) IN ({units}) AND consumed_quantity > 0
          AND NOT coalesce({CORRECTION}, false) AND {where}
        GROUP BY ALL
    )
    SELECT b.day, b.resource_key, b.resource_id, b.currency, b.billed_hours,
           coalesce(s.observed_hours, 0) AS observed_hours, b.cost
    FROM billed b
    LEFT JOIN seen s ON s.day = b.day AND s.rkey = b.resource_key
    WHERE b.resource_key IN (SELECT rkey FROM gpu_resources) AND b.billed_hours > coalesce(s.observed_hours, 0)
    ORDER BY b.day, b.resource_key, b.currency
    """  # noqa: S608 - constants and validated dims; values bound


def _gap(row: Row) -> Row:
    """A gap row with its hours and the part of the day's cost they stand for, exact."""
    billed = Decimal(row["billed_hours"])
    gap = billed - row["observed_hours"]
    cost: Decimal = row.pop("cost")
    return {**row, "gap_hours": gap, "gap_cost": (cost * gap / billed).quantize(PLACES)}


def _single(rows: list[Row], field: str) -> Decimal | None:
    """The rows' sum of `field` when they share one currency (None when they do not: no sum across currencies)."""
    if len({r["currency"] for r in rows}) > 1:
        return None
    return sum((r[field] for r in rows), Decimal(0))


def bill_check(store: Store, settings: Settings, params: ReportParams) -> Report:
    """The bill-check report over `params`' window; dim filters (a team's key) apply to the bill's own dims."""
    where, binds = filter_sql(params)
    binds |= {"start": params.start, "end": params.end}
    with snapshot(store) as cur:
        rows = fetch_rows(cur, periods_sql(params, where), binds)
        corrections = fetch_rows(cur, corrections_sql(params, where), binds)
        gaps = [_gap(r) for r in fetch_rows(cur, gaps_sql(params, where), binds)]
    currencies = sorted({r["currency"] for r in rows})
    totals: Row = {
        "cost": _single(rows, "cost"),
        "corrections_cost": _single(rows, "corrections_cost"),
        "unused_commitment_cost": _single(rows, "unused_commitment_cost"),
        "gap_hours": sum((g["gap_hours"] for g in gaps), Decimal(0)),
        "gap_cost": _single(gaps, "gap_cost"),
        "currencies": currencies,
    }
    return Report("bill-check", params_dict(params, currencies[0] if len(currencies) == 1 else ""), rows, totals,
                  tables={"corrections": corrections, "gpu_hour_gaps": gaps},
                  currency=currencies[0] if len(currencies) == 1 else settings.report_currency or "USD")
