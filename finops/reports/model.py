"""The shape every report has: rows, totals, params, and named extra tables for exports."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from finops.attribution import Attribution
from finops.attribution.stored import attribute_stored
from finops.reports.params import ReportParams
from finops.settings import Settings
from finops.store import Store
from finops.tags import UNALLOCATED, UNTAGGED

Row = dict[str, Any]
# Fields holding money, per name; exports format them as currency.
MONEY_FIELDS = frozenset({
    "cost", "usage_cost", "idle_cost", "total_cost", "untagged_cost", "recoverable_cost", "attributed_cost",
    "unallocated_cost", "previous_cost", "change", "cost_per_1k_generated_tokens", "cost_per_1k_tokens",
    "cost_per_request", "amount", "this_week", "previous_week", "control_total", "ingested_total",
    "hour_cost", "monthly_saving", "previous_idle_cost",
})


@dataclass
class Report:
    """A computed report. `rows` is the main table; `tables` holds the others (weekly, untagged)."""

    name: str
    params: dict[str, Any]
    rows: list[Row]
    totals: Row
    tables: dict[str, list[Row]] = field(default_factory=dict)
    currency: str = "USD"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rows": self.rows, "totals": self.totals, "params": self.params}
        out.update(self.tables)
        return out

    def all_tables(self) -> dict[str, list[Row]]:
        return {self.name.replace("-", "_"): self.rows, **self.tables}


def params_dict(params: ReportParams, currency: str) -> dict[str, Any]:
    d = params.model_dump(mode="json")
    d["currency"] = currency
    return d


@contextmanager
def snapshot(store: Store) -> Iterator[duckdb.DuckDBPyConnection]:
    """A private cursor in one read transaction: every query of a report sees the same data."""
    cur = store.cursor()
    try:
        cur.execute("BEGIN TRANSACTION")
        yield cur
        cur.execute("ROLLBACK")  # temp tables and all: a report writes nothing
    finally:
        cur.close()


def fetch_rows(cur: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | list[Any] | None = None) -> list[Row]:
    """Run a query and return plain dicts, through Arrow (never `.df()`)."""
    table = cur.sql(sql, params=params or None).to_arrow_table()
    names = table.column_names
    columns = [_decimals(col) if pa.types.is_decimal(col.type) else _repeated(col) if pa.types.is_date(col.type)
               else col.to_pylist() for col in table.columns]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _repeated(column: pa.ChunkedArray) -> list[Any]:
    """A column of few distinct values (a report's days) with each distinct value made once: pyarrow
    builds a Python object per row (a date costs ~1 us), an index into the distinct ones much less."""
    encoded = column.combine_chunks().dictionary_encode()
    values = encoded.dictionary.to_pylist()
    return [None if i is None else values[i] for i in encoded.indices.to_pylist()]


def _decimals(column: pa.ChunkedArray) -> list[Decimal | None]:
    """A decimal column as Decimals, through its text: the same values, digits and exponents as
    pyarrow's own conversion (which builds each Decimal in Python), in about two thirds of its time."""
    return [None if v is None else Decimal(v) for v in pc.cast(column, pa.string()).to_pylist()]


def with_attribution(store: Store, settings: Settings, params: ReportParams,
                     build: Callable[[duckdb.DuckDBPyConnection, Attribution], Report], hourly: bool | None = None,
                     reads: Collection[str] | None = None) -> Report:
    """Attribute `params` in one snapshot and build a report. `reads` names the att_* relations
    `build` reads (all when None); `hourly` (default: whether `reads` names att_gpu_hours) says
    whether it reads GPU-hours, for a caller that names no relations."""
    with snapshot(store) as cur:
        att = attribute_stored(cur, params, settings, hourly=hourly, reads=reads)
        return build(cur, att)


PLACES = Decimal("1e-12")  # ratios are exact decimals rounded to 12 places


def ratio(num: Decimal | None, den: Decimal | int | None, scale: int = 1) -> Decimal | None:
    """num / (den / scale), exact in Decimal; None when the denominator is zero (never 0 or inf)."""
    if num is None or not den:
        return None
    if not isinstance(num, Decimal):
        num = Decimal(num)
    return (num * scale / den).quantize(PLACES)


def group_columns(dims: tuple[str, ...], unallocated: bool, alias: str = "") -> list[str]:
    """SELECT expressions naming each dim's group: a missing tag is UNTAGGED and, with `unallocated`,
    cost left by the attribution's last step is UNALLOCATED (att_alloc rows; `alias` qualifies them)."""
    a = f"{alias}." if alias else ""
    if unallocated:
        return [f"CASE WHEN {a}step = 'unallocated' THEN '{UNALLOCATED}' ELSE coalesce({a}{d}, '{UNTAGGED}') END AS {d}"
                for d in dims]
    return [f"coalesce({a}{d}, '{UNTAGGED}') AS {d}" for d in dims]


def period_sql(day: str, first: str, splits: int) -> str:
    """The period a row's `day` is in when a window is cut at the dates bound as `$split1`,
    `$split2`, ... (in order): the last split on or before it, else `first`."""
    cases = " ".join(f"WHEN {day} >= $split{i} THEN CAST($split{i} AS DATE)" for i in range(splits, 0, -1))
    return f"CASE {cases} ELSE {first} END" if splits else first


def filter_sql(params: ReportParams, alias: str = "") -> tuple[str, dict[str, Any]]:
    """WHERE fragment restricting dims to `params.filters` (bound values; dim names are constants)."""
    prefix = f"{alias}." if alias else ""
    parts, binds = [], {}
    for i, (dim, value) in enumerate(sorted(params.filters.items())):
        parts.append(f"{prefix}{dim} = $f{i}")
        binds[f"f{i}"] = value
    return (" AND ".join(parts) or "TRUE"), binds
