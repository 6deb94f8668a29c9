"""Our allocations out as FOCUS 1.3 (docs/definitions.md 6.11): the attributed cost, line by line,
in FOCUS's split cost allocation columns, for FOCUS tools (FinOps hubs, BI) to consume.

Each attributed line (a daily rollup row of the bill: a day, a resource and the bill's own dims)
becomes a zeroed origin row and one allocated row per group attribution gave it a piece of, with
`AllocatedMethodId` = `finops-attribution`, `AllocatedResourceId` naming the group and
`AllocatedTags` carrying the dims the bill did not; the unallocated piece is the remainder row (no
`AllocatedResourceId`). `x_` columns say how each piece was placed and the GPU-hours and tokens the
group had on the resource that day. The amounts sum to the ingested bill, and our own ingest reads
the file back to the same reports.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa

from finops.attribution import Attribution, sql
from finops.reports.model import snapshot
from finops.reports.params import build_params
from finops.settings import Settings
from finops.store import Store
from finops.tags import DIMS

METHOD = "finops-attribution"
# The dims as FOCUS tag keys, in the JSON of Tags and AllocatedTags (our ingest maps them back).
TAG_KEYS = {"project": "project", "team": "team", "environment": "environment", "model_id": "modelid"}
FORMATS = ("parquet", "csv")


def _tags_json(alias: str, only_missing_in: str | None = None) -> str:
    """SQL: a JSON object of `alias`'s dims (NULL when none); with `only_missing_in`, only the dims
    that alias lacks (FOCUS: AllocatedTags never repeat a tag of Tags)."""
    entries = ", ".join(
        f"struct_pack(k := '{TAG_KEYS[d]}', v := {alias}.{d})" if only_missing_in is None
        else f"struct_pack(k := '{TAG_KEYS[d]}', v := CASE WHEN {only_missing_in}.{d} IS NULL THEN {alias}.{d} END)"
        for d in DIMS)
    return (f"nullif(CAST(to_json(map_from_entries(list_filter([{entries}], lambda e: e.v IS NOT NULL))) AS VARCHAR), "
            "'{}')")


_COMMON = """
    c.provider_name AS ServiceProviderName, c.provider_name AS ProviderName,
    c.billing_account_id AS BillingAccountId, c.sub_account_id AS SubAccountId,
    $currency AS BillingCurrency,
    CAST(date_trunc('month', c.day) AS TIMESTAMP) AS BillingPeriodStart,
    CAST(date_trunc('month', c.day) + INTERVAL 1 MONTH AS TIMESTAMP) AS BillingPeriodEnd,
    CAST(c.day AS TIMESTAMP) AS ChargePeriodStart, CAST(c.day + INTERVAL 1 DAY AS TIMESTAMP) AS ChargePeriodEnd,
    coalesce(c.charge_category, 'Usage') AS ChargeCategory, c.pricing_category AS PricingCategory,
    coalesce(c.service_name, 'Unknown') AS ServiceName, c.region_id AS RegionId, c.resource_id AS ResourceId,
    c.resource_type AS ResourceType, {tags} AS Tags, '{method}' AS AllocatedMethodId
"""

EXPORT = f"""
WITH tele AS (
    SELECT day, rkey, project, team, environment, model_id, sum(gh) AS gpu_hours, sum(prompt) AS prompt_tokens,
           sum(gen) AS generation_tokens
    FROM (SELECT day, rkey, project, team, environment, model_id, g.hours * {sql.SHARE} AS gh, 0 AS prompt, 0 AS gen
          FROM att_gpu g
          UNION ALL
          SELECT day, rkey, project, team, environment, model_id, 0, prompt_tokens, generation_tokens FROM att_tok)
    WHERE rkey IS NOT NULL GROUP BY ALL
)
SELECT * FROM (
    SELECT c.line_id AS _line, 0 AS _order, {_COMMON.format(tags=_tags_json("c"), method=METHOD)},
           CAST(0 AS DECIMAL(38,12)) AS BilledCost, CAST(0 AS DECIMAL(38,12)) AS EffectiveCost,
           CAST(0 AS DECIMAL(38,12)) AS ListCost,
           CAST(NULL AS VARCHAR) AS AllocatedResourceId, CAST(NULL AS VARCHAR) AS AllocatedResourceName,
           CAST(NULL AS VARCHAR) AS AllocatedTags, CAST(NULL AS VARCHAR) AS x_AttributionStep,
           CAST(NULL AS DOUBLE) AS x_GpuHours, CAST(NULL AS BIGINT) AS x_PromptTokens,
           CAST(NULL AS BIGINT) AS x_GenerationTokens
    FROM att_line c
    UNION ALL
    SELECT c.line_id, 1 + row_number() OVER (PARTITION BY c.line_id ORDER BY a.step, a.project, a.team,
                                                                           a.environment, a.model_id),
           {_COMMON.format(tags=_tags_json("c"), method=METHOD)},
           a.amount_billed, a.amount_effective, a.list_amount,
           CASE WHEN a.step <> 'unallocated' THEN concat_ws('/', a.project, a.team, a.environment, a.model_id) END,
           CASE WHEN a.step <> 'unallocated' THEN concat_ws('/', a.project, a.team, a.environment, a.model_id) END,
           CASE WHEN a.step <> 'unallocated' THEN {_tags_json("a", only_missing_in="c")} END,
           a.step, t.gpu_hours, CAST(t.prompt_tokens AS BIGINT), CAST(t.generation_tokens AS BIGINT)
    FROM att_alloc a JOIN att_line c ON c.line_id = a.line_id
    LEFT JOIN tele t ON a.step <> 'unallocated' AND t.day = c.day AND t.rkey = c.resource_key
         AND t.project = a.project AND t.team = a.team AND t.environment = a.environment AND t.model_id = a.model_id
) ORDER BY ChargePeriodStart, _line, _order
"""  # noqa: S608 - built from constants


def focus_export(store: Store, settings: Settings, start: date, end: date) -> pa.Table:
    """The attributed cost of `[start, end)` as a FOCUS 1.3 table (amounts in the report currency:
    the bill's own when it holds one currency)."""
    from finops.attribution.stored import attribute_stored

    params = build_params(start=start, end=end, shared_cost_key=settings.shared_cost_key)
    with snapshot(store) as cur:
        att: Attribution = attribute_stored(cur, params, settings, hourly=False)
        table = cur.sql(EXPORT, params={"currency": att.currency}).to_arrow_table()
    return table.drop_columns(["_line", "_order"])


def write(table: pa.Table, path: Path) -> str:
    """Write the export as Parquet or CSV, by the file's extension; returns the format."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"{path.name}: write .parquet or .csv")
    path.write_bytes(to_parquet(table) if fmt == "parquet" else to_csv(table))
    return fmt


def to_parquet(table: pa.Table) -> bytes:
    """The export as a Parquet file's bytes."""
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def to_csv(table: pa.Table) -> bytes:
    """CSV of the export. Text that starts with a formula character carries a leading `'`, as every
    CSV we write (finops/reports/export.py); Parquet keeps every value as it is."""
    import pyarrow.csv as pacsv

    from finops.reports.export import csv_text

    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type):
            column = pa.array([None if v is None else csv_text(v) for v in column.to_pylist()], pa.string())
        columns.append(column)
    sink = pa.BufferOutputStream()
    pacsv.write_csv(pa.table(columns, names=table.column_names), sink)
    return bytes(sink.getvalue().to_pybytes())
