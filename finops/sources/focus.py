"""FOCUS 1.0-1.3 files (CSV, CSV.gz, Parquet) into cost lines, with DuckDB's own readers.

Parsing runs in a private DuckDB with a memory limit and a temporary directory to spill to: every
value is validated in SQL over the scan of the file, rows that fail go to quarantine with their line
and reason, and the accepted rows stream to the store as Arrow record batches (never the whole file
in memory; only the quarantined rows carry line numbers).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from finops import money
from finops.batch import Batch, SourceFailed, Task
from finops.resources import RESOURCE_KEY_SQL
from finops.tags import UNUSED_COMMITMENT, TagRules, TagValueError

# FOCUS column(s) feeding each cost-line column, first present wins, and how the value is read.
# ServiceProviderName (FOCUS 1.3) replaces the deprecated ProviderName.
COLUMNS: dict[str, tuple[tuple[str, ...], str]] = {
    "charge_period_start": (("ChargePeriodStart",), "timestamp"),
    "charge_period_end": (("ChargePeriodEnd",), "timestamp"),
    "provider_name": (("ServiceProviderName", "ProviderName"), "text"),
    "billing_account_id": (("BillingAccountId",), "text"),
    "sub_account_id": (("SubAccountId",), "text"),
    "service_name": (("ServiceName",), "text"),
    "service_category": (("ServiceCategory",), "text"),
    "region_id": (("RegionId",), "text"),
    "resource_id": (("ResourceId",), "text"),
    "resource_type": (("ResourceType",), "text"),
    "sku_id": (("SkuId",), "text"),
    "charge_category": (("ChargeCategory",), "text"),
    "pricing_category": (("PricingCategory",), "text"),
    "commitment_discount_id": (("CommitmentDiscountId",), "text"),
    "billed_cost": (("BilledCost",), "money"),
    "effective_cost": (("EffectiveCost",), "money"),
    "list_cost": (("ListCost",), "money"),
    "billing_currency": (("BillingCurrency",), "currency"),
    "tags": (("Tags",), "tags"),
    # What a dollar means: corrections, unused commitment, the bill's own quantities and identities.
    "charge_class": (("ChargeClass",), "text"),
    "billing_period_start": (("BillingPeriodStart",), "timestamp"),
    "billing_period_end": (("BillingPeriodEnd",), "timestamp"),
    "commitment_discount_status": (("CommitmentDiscountStatus",), "text"),
    "commitment_discount_type": (("CommitmentDiscountType",), "text"),
    "consumed_quantity": (("ConsumedQuantity",), "quantity"),
    "consumed_unit": (("ConsumedUnit",), "text"),
    "pricing_quantity": (("PricingQuantity",), "quantity"),
    "pricing_unit": (("PricingUnit",), "text"),
    "sku_price_id": (("SkuPriceId",), "text"),
    "sku_meter": (("SkuMeter",), "text"),
    "sku_price_details": (("SkuPriceDetails",), "json"),
    "invoice_id": (("InvoiceId",), "text"),
    "contracted_cost": (("ContractedCost",), "money"),
    "host_provider_name": (("HostProviderName",), "text"),
    # FOCUS 1.3 split cost allocation: a row the provider split from a parent (e.g. a node's cost per pod).
    "allocated_method_id": (("AllocatedMethodId",), "text"),
    "allocated_resource_id": (("AllocatedResourceId",), "text"),
    "allocated_tags": (("AllocatedTags",), "json"),
}
# Columns a file must have to be read as FOCUS (a tuple: any one of them).
REQUIRED_COLUMNS: tuple[tuple[str, ...], ...] = (
    ("BilledCost",), ("EffectiveCost",), ("BillingCurrency",), ("ChargePeriodStart",),
    ("ChargePeriodEnd",), ("ChargeCategory",), ("ServiceName",), ("BillingAccountId",),
    ("ServiceProviderName", "ProviderName"),
)
REQUIRED_VALUES = ("charge_period_start", "charge_period_end", "provider_name", "billed_cost",
                   "effective_cost", "billing_currency")
MONEY = money.SQL_MONEY
TIMESTAMP_RANGE = "TIMESTAMP '0001-01-01 00:00:00' AND TIMESTAMP '9999-12-31 23:59:59.999999'"


@dataclass(frozen=True)
class FileSpec:
    """A billing-file layout as data: column map, required columns, values that may not be null.

    FOCUS is the default; other exports (e.g. CUR 2.0) supply their own map and reuse the reader.
    """

    name: str
    columns: dict[str, tuple[tuple[str, ...], str]]
    required_columns: tuple[tuple[str, ...], ...]
    required_values: tuple[str, ...] = REQUIRED_VALUES


FOCUS = FileSpec("FOCUS", COLUMNS, REQUIRED_COLUMNS)
MAX_LINE_BYTES = 4 * 1024 * 1024
# DuckDB's CSV read buffer, given explicitly: with the line limit raised alone, a 1M-row CSV.gz took
# 4.2 s to read instead of the 2.3 s it takes at DuckDB's default limit; with this buffer, 2.5 s.
READ_BUFFER_BYTES = 8 * MAX_LINE_BYTES


class FocusFileError(ValueError):
    """The file cannot be ingested at all (not FOCUS, empty, truncated, unreadable)."""


@dataclass
class ParsedFile:
    rows: pa.Table
    quarantine: list[dict[str, Any]]
    total: int


@dataclass
class OpenedFile:
    """A file whose accepted rows are read as they stream (`rows`, read once): its rows are checked
    as they stream, and `quarantine` is complete once `rows` is exhausted.

    `by_content`: the file is scoped by its content; its rows carry the scope of what they cover
    (column `scope`)."""

    rows: pa.RecordBatchReader
    quarantine: list[dict[str, Any]]
    total: int
    by_content: bool = False
    # What stopped `rows` (the file unreadable past its first rows), for the run to report.
    errors: list[FocusFileError] = field(default_factory=list)


@dataclass(frozen=True)
class ParseLimits:
    """What the private DuckDB that reads a file may use; it spills to a temporary directory beyond."""

    memory_limit: str = "1GiB"
    threads: int = 2
    temp_directory: str | None = None  # None: a new directory under the system's, removed after


BATCH_ROWS = 122_880  # DuckDB's row group: the unit the store inserts at once


def _csv_header(path: Path) -> list[str]:
    with path.open("rb") as raw:
        stream: Any = gzip.GzipFile(fileobj=raw) if _is_gzip(path) else raw
        fh = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
        try:
            header = next(csv.reader(fh))
        except StopIteration:
            raise FocusFileError(f"{path}: the file is empty") from None
        except (OSError, EOFError) as exc:
            raise FocusFileError(f"{path}: cannot read the header: {exc}") from None
        finally:
            fh.detach()
    names = [h.strip() for h in header]
    # DuckDB column names are case-insensitive: `BilledCost` and `billedcost` would collide there.
    folded = [n.casefold() for n in names]
    dupes = sorted({n for n in names if folded.count(n.casefold()) > 1})
    if dupes:
        raise FocusFileError(f"{path}: duplicate column(s) in the header: {', '.join(dupes)}")
    return names


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"PAR1"


def _ends_with_newline(path: Path) -> bool:
    if path.stat().st_size == 0:
        return False
    if _is_gzip(path):
        return True  # a truncated gzip stream fails in the reader with its own error
    with path.open("rb") as fh:
        fh.seek(-1, 2)
        return fh.read(1) in (b"\n", b"\r")


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _check_required(path: Path, columns: list[str], spec: FileSpec) -> None:
    present = set(columns)
    missing = [alts for alts in spec.required_columns if not present.intersection(alts)]
    if missing:
        by_lower = {c.lower(): c for c in columns}
        near = [f"{by_lower[a.lower()]!r} for {a}" for alts in missing for a in alts if a.lower() in by_lower]
        hint = f" (column names are case-sensitive: found {', '.join(near)})" if near else ""
        raise FocusFileError(f"{path}: not a {spec.name} file: missing required column(s) "
                             f"{', '.join(' or '.join(alts) for alts in missing)}{hint}")


def _read_source(con: duckdb.DuckDBPyConnection, path: Path, spec: FileSpec) -> tuple[str, list[str]]:
    """Create view `raw` over the file (all values as read) and return its kind and columns."""
    if path.stat().st_size == 0:
        raise FocusFileError(f"{path}: the file is empty")
    if _is_parquet(path):
        try:
            # The row's position in the file, without numbering the whole file first (a window would).
            con.execute(f"CREATE VIEW raw AS SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS _rn "
                        f"FROM read_parquet({_lit(str(path))}, file_row_number = true)")
            columns = [r[0] for r in con.execute("DESCRIBE raw").fetchall() if r[0] != "_rn"]
        except duckdb.Error as exc:
            raise FocusFileError(f"{path}: cannot read Parquet: {exc}") from None
        return "parquet", columns
    columns = _csv_header(path)
    _check_required(path, columns, spec)
    types = "{" + ", ".join(f"{_lit(c)}: 'VARCHAR'" for c in columns) + "}"
    # Read whole into a private table first: DuckDB lists the rejected records only once a read has
    # completed. Records are numbered by their row id (kept in file order), a parallel scan, where
    # a window over the file would be one thread.
    con.execute(
        f"CREATE TABLE raw_csv AS SELECT * FROM read_csv({_lit(str(path))}, "
        f"auto_detect=false, header=false, skip=1, columns={types}, delim=',', quote='\"', escape='\"', "
        f"nullstr=['', 'NULL', 'null'], store_rejects=true, max_line_size={MAX_LINE_BYTES}, "
        f"buffer_size={READ_BUFFER_BYTES})"
    )
    con.execute("CREATE VIEW raw AS SELECT *, rowid + 1 AS _rn FROM raw_csv")
    return "csv", columns


def _is_number_or_text(typ: str) -> bool:
    t = typ.upper()
    return t == "VARCHAR" or t.startswith(("DECIMAL", "DOUBLE", "FLOAT", "REAL", "TINYINT", "SMALLINT", "INTEGER",
                                           "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
                                           "UHUGEINT"))


def _value_sql(kind: str, col: str, typ: str) -> str:
    if kind == "timestamp":
        return f"(try_cast({col} AS TIMESTAMPTZ) AT TIME ZONE 'UTC')"
    if kind in ("money", "quantity"):
        # Only numbers and text are amounts: DuckDB would cast a boolean to 1.00 / 0.00.
        return f"try_cast({col} AS {MONEY})" if _is_number_or_text(typ) else f"CAST(NULL AS {MONEY})"
    if kind == "currency":
        return f"upper(trim(CAST({col} AS VARCHAR)))"
    if kind in ("tags", "json"):
        # A JSON text as read; a Parquet MAP or STRUCT (AWS writes Tags as a map) as its JSON.
        return f"CAST({col} AS VARCHAR)" if typ == "VARCHAR" else f"CAST(to_json({col}) AS VARCHAR)"
    return f"nullif(trim(CAST({col} AS VARCHAR)), '')"


def _extensions_sql(columns: list[str]) -> str:
    """The provider's own `x_` columns of a row as one JSON object (NULL when the file has none)."""
    ext = [c for c in columns if c.startswith("x_")]
    if not ext:
        return "CAST(NULL AS VARCHAR)"
    return "CAST(json_object(" + ", ".join(f"{_lit(c)}, {_q(c)}" for c in ext) + ") AS VARCHAR)"


def _problem_sql(name: str, kind: str, col: str, value: str, source_col: str, spec: FileSpec) -> str | None:
    label = _lit(source_col)
    raw = f"CAST({col} AS VARCHAR)"
    checks = []
    if kind in ("timestamp", "money", "quantity"):
        what = "a timestamp" if kind == "timestamp" else "a finite number within DECIMAL(38,12)"
        checks.append(f"WHEN {col} IS NOT NULL AND {value} IS NULL THEN {label} || ': not {what}: ' || left({raw}, 60)")
    if kind in ("money", "quantity"):
        checks.append(f"WHEN abs({value}) >= {money.LIMIT} "
                      f"THEN {label} || ': out of range (under {money.LIMIT_TEXT}): ' || left({raw}, 60)")
    if kind == "timestamp":
        # DuckDB reads years far outside 1..9999, which Python and the daily rollup cannot hold.
        checks.append(f"WHEN NOT ({value} BETWEEN {TIMESTAMP_RANGE}) "
                      f"THEN {label} || ': out of range (years 1 to 9999): ' || left({raw}, 60)")
    if kind == "json":
        checks.append(f"WHEN {value} IS NOT NULL AND NOT json_valid({value}) THEN {label} || ': not JSON: ' || left({raw}, 60)")
    if kind == "currency":
        checks.append(f"WHEN {value} IS NOT NULL AND {value} NOT IN (SELECT code FROM iso) "
                      f"THEN {label} || ': unknown currency ' || left({raw}, 20)")
    if name in spec.required_values:
        checks.append(f"WHEN {col} IS NULL THEN {label} || ': missing value'")
    return f"CASE {' '.join(checks)} END" if checks else None


def _tag_map(con: duckdb.DuckDBPyConnection, rules: TagRules, tags_expr: str) -> None:
    """Normalise each distinct Tags value once in Python (far fewer than rows), as table `tagmap`."""
    distinct = [r[0] for r in con.execute(f"SELECT DISTINCT {tags_expr} FROM raw WHERE {tags_expr} IS NOT NULL").fetchall()]
    out: dict[str, list[Any]] = {"t": [], "err": [], **{d: [] for d in rules.dims}}
    for text in distinct:
        try:
            dims, err = rules.dims_from_json(text), None
            for value in dims.values():
                if value is not None:
                    value.encode("utf-8")  # a lone surrogate escape (e.g. \ud800) decodes, then cannot be stored
        except (ValueError, TypeError, RecursionError) as exc:
            dims, err = dict.fromkeys(rules.dims), f"Tags: not a JSON object ({type(exc).__name__})"
            if isinstance(exc, json.JSONDecodeError):
                err = f"Tags: invalid JSON at position {exc.pos}"
            elif isinstance(exc, TagValueError):
                err = str(exc)
            elif isinstance(exc, RecursionError):
                err = "Tags: JSON nested too deeply"
            elif isinstance(exc, UnicodeEncodeError):
                err = "Tags: a value is not valid Unicode (a lone surrogate escape)"
        out["t"].append(text)
        out["err"].append(err)
        for d in rules.dims:
            out[d].append(dims[d])
    con.register("tagmap_arrow", pa.table(out, schema=pa.schema(
        [("t", pa.string()), ("err", pa.string())] + [(d, pa.string()) for d in rules.dims])))
    con.execute("CREATE TABLE tagmap AS SELECT * FROM tagmap_arrow")


def parse_focus_file(path: Path | str, rules: TagRules, spec: FileSpec = FOCUS,
                     limits: ParseLimits | None = None) -> ParsedFile:
    """Read one FOCUS (or `spec`) file into cost-line rows (one Arrow table) and quarantined rows."""
    opened = open_focus_file(path, rules, spec, limits)
    return ParsedFile(opened.rows.read_all(), opened.quarantine, opened.total)


def open_focus_file(path: Path | str, rules: TagRules, spec: FileSpec = FOCUS,
                    limits: ParseLimits | None = None, by_content: bool = False) -> OpenedFile:
    """Open one FOCUS (or `spec`) file; its accepted cost-line rows stream from `rows`.

    The file is read once, as `rows` is read: each row is checked as it streams, and the rows
    found bad fill `quarantine` (complete, in line order, when `rows` is exhausted). The private
    DuckDB closes when `rows` is exhausted (or garbage-collected). What makes the whole file
    unreadable (not FOCUS, empty, required columns missing) raises here, before any row streams.
    `by_content`: each row carries the scope of what it covers (`content_scope`), when the file
    has `BillingPeriodStart`; otherwise the file has no `scope` column and the result's
    `by_content` is False."""
    path = Path(path)
    limits = limits or ParseLimits()
    spill = limits.temp_directory or tempfile.mkdtemp(prefix="finops-focus-")
    con = duckdb.connect(config={"memory_limit": limits.memory_limit, "threads": limits.threads,
                                 "temp_directory": spill})
    try:
        con.execute("SET TimeZone = 'UTC'")
        kind, columns = _read_source(con, path, spec)
        _check_required(path, columns, spec)
        types = {r[0]: r[1] for r in con.execute("DESCRIBE raw").fetchall()}
        period = spec.columns.get("billing_period_start", ((), ""))[0]
        by_content = by_content and any(c in types for c in period)
        if by_content:  # the period is the scope: a row without it cannot be placed
            spec = replace(spec, required_values=(*spec.required_values, "billing_period_start"))
        con.register("iso_arrow", pa.table({"code": sorted(money.ISO_4217)}))
        con.execute("CREATE TABLE iso AS SELECT * FROM iso_arrow")
        total = int(con.execute("SELECT count(*) FROM raw").fetchall()[0][0])
        rejects = _rejected_lines(con, path) if kind == "csv" else []
        if total == 0 and not rejects:
            raise FocusFileError(f"{path}: the file has a header but no rows")

        values, problems = {}, []
        for name, (alts, vkind) in spec.columns.items():
            src = next((a for a in alts if a in types), None)
            if src is None:
                values[name] = "NULL"
                continue
            col = _q(src)
            values[name] = _value_sql(vkind, col, types[src])
            problem = _problem_sql(name, vkind, col, values[name], src, spec)
            if problem:
                problems.append(problem)
        problems.append(
            f"CASE WHEN {values['charge_period_end']} < {values['charge_period_start']} "
            "THEN 'ChargePeriodEnd: before ChargePeriodStart' END"
        )
        values["x_columns"] = _extensions_sql(columns)
        # An allocated row (split cost allocation) is attributed by its own tags and its origin's.
        tags = _with_allocated_tags(values["tags"], values.get("allocated_tags", "NULL"))
        _tag_map(con, rules, tags)
        problems.append("tagmap.err")
        # Unused commitment is a category of its own in every group, never a team's untagged spend.
        unused = f"lower({values.get('commitment_discount_status', 'NULL')}) = 'unused'"
        dims = ", ".join(f"CASE WHEN {unused} THEN {_lit(UNUSED_COMMITMENT)} ELSE tagmap.{d} END AS {d}"
                         for d in rules.dims)
        select = ", ".join(f"{v} AS {k}" for k, v in values.items())
        if by_content:
            select += f", {content_scope(values)} AS scope"
        # A view over the scan, never a copy of the file: the rows stream once, each with its
        # problems; the accepted ones go on to the store, the others to the quarantine.
        con.execute(
            f"CREATE VIEW parsed AS SELECT {select}, {dims}, raw._rn AS _rn, "
            f"concat_ws('; ', {', '.join(problems)}) AS _reason "
            f"FROM raw LEFT JOIN tagmap ON tagmap.t = {tags}"
        )
        quarantine: list[dict[str, Any]] = [{"origin": str(path), "line": line, "reason": reason, "raw": raw}
                                             for line, reason, raw in _reject_details(con, kind)]
        origin = _split_origins(con, "allocated_method_id" in values and values["allocated_method_id"] != "NULL")
        stream = con.sql(
            "SELECT p.*, CAST(p.charge_period_start AS DATE) AS charge_date, "
            f"{RESOURCE_KEY_SQL.format(col='p.resource_id')} AS resource_key, false AS estimated, {origin} "
            "FROM parsed p"
        )
        reader = stream.to_arrow_reader(BATCH_ROWS)
        schema = pa.schema([f for f in reader.schema if f.name not in CHECKED])
        bad: list[tuple[int, str]] = []

        def quarantined() -> None:
            """The rows found bad, with their line in the file, once all have streamed; in a CSV, the
            records DuckDB could not read too. DuckDB counts a CSV's records as lines (the header
            line 1) where a quoted value may span lines: the file's own lines come from its records."""
            if kind != "csv":
                quarantine.extend({"origin": str(path), "reason": reason, "line": rn} for rn, reason in bad)
            elif bad or rejects:
                records = [_line_of(rn, rejects) for rn, _ in bad]
                starts = _record_starts(path, max(records + rejects) - 1)
                for q in quarantine:  # DuckDB's rejected records, listed at open
                    q["line"] = _file_line(q["line"], starts)
                quarantine.extend({"origin": str(path), "reason": reason, "line": _file_line(line, starts)}
                                  for line, (_, reason) in zip(records, bad, strict=True))
            quarantine.sort(key=lambda q: q["line"] or 0)

        errors: list[FocusFileError] = []
        rows = pa.RecordBatchReader.from_batches(schema, _owned(
            _accepted(reader, bad, quarantined), con, None if limits.temp_directory else spill, path, errors))
        return OpenedFile(rows, quarantine, total + len(rejects), by_content, errors)
    except duckdb.Error as exc:
        _close(con, None if limits.temp_directory else spill)
        first = str(exc).splitlines()[0]
        if "state machine reached an invalid state" in first:
            # DuckDB's words for a structure it cannot follow, e.g. quoted values with mixed line endings.
            first = "the CSV structure is inconsistent (mixed line endings, or a quote that is never closed)"
        raise FocusFileError(f"{path}: cannot read the file: {first}") from None
    except BaseException:
        _close(con, None if limits.temp_directory else spill)
        raise


def _with_allocated_tags(tags: str, allocated: str) -> str:
    """SQL of the tags a row's dims come from: its Tags with its AllocatedTags laid over them."""
    if allocated == "NULL":
        return tags
    return (f"CASE WHEN {allocated} IS NOT NULL AND json_valid({allocated}) AND json_valid(coalesce({tags}, '{{}}')) "
            f"AND json_type({allocated}) = 'OBJECT' AND json_type(coalesce({tags}, '{{}}')) = 'OBJECT' "
            f"THEN CAST(json_merge_patch(coalesce({tags}, '{{}}'), {allocated}) AS VARCHAR) ELSE {tags} END")


def _split_origins(con: duckdb.DuckDBPyConnection, allocated: bool) -> str:
    """SQL of column `split_origin` over `parsed p`: true on a provider's origin row of a split cost
    allocation whose dollars its allocated rows carry. FOCUS 1.3 keeps the origin row (often zeroed,
    not always) beside the rows split from it, grouped by resource, charge period and allocation
    method; a row without AllocatedResourceId that equals the sum of its accepted group's other rows
    is the origin (the unallocated remainder also lacks AllocatedResourceId, but is part of the
    sum), unless the group holds a zeroed row without AllocatedResourceId: that is the origin, and
    a remainder that happens to equal the rest still counts."""
    if not allocated:
        return "false AS split_origin"
    con.execute("CREATE TABLE split AS SELECT resource_id, charge_period_start, allocated_method_id, "
                "sum(billed_cost) AS billed, sum(effective_cost) AS effective, bool_or(allocated_resource_id IS NULL "
                "AND billed_cost = 0 AND effective_cost = 0) AS zeroed FROM parsed "
                "WHERE allocated_method_id IS NOT NULL AND coalesce(_reason, '') = '' GROUP BY ALL")
    return ("coalesce(p.allocated_method_id IS NOT NULL AND p.allocated_resource_id IS NULL "
            "AND (p.billed_cost <> 0 OR p.effective_cost <> 0) "
            "AND (SELECT any_value(NOT s.zeroed AND s.billed = 2 * p.billed_cost AND s.effective = 2 * p.effective_cost) "
            "FROM split s "
            "WHERE s.resource_id IS NOT DISTINCT FROM p.resource_id AND s.charge_period_start = p.charge_period_start "
            "AND s.allocated_method_id = p.allocated_method_id), false) AS split_origin")


def content_scope(values: dict[str, str]) -> str:
    """SQL of a row's scope by content: provider, billing account and billing period, and whether
    it is a correction. A later delivery of a scope replaces the earlier one whatever its file's
    name; corrections of a closed period, delivered in a later period, are that later period's own
    scope, so they add to what the corrected period billed and never replace it."""
    correction = f"CASE WHEN lower({values.get('charge_class', 'NULL')}) = 'correction' THEN 'correction' END"
    return (f"concat_ws('|', 'period', {values['provider_name']}, coalesce({values['billing_account_id']}, ''), "
            f"strftime({values['billing_period_start']}, '%Y-%m-%dT%H:%M:%S'), {correction})")


CHECKED = ("_rn", "_reason")  # what the check adds to each row: its number in the file, its problems


def _accepted(reader: pa.RecordBatchReader, bad: list[tuple[int, str]],
              done: Callable[[], None]) -> Iterator[pa.RecordBatch]:
    """The accepted rows of each batch; the number and problems of the others go to `bad`, and
    `done` runs once every batch has been read."""
    for batch in reader:
        reason = pc.fill_null(batch.column("_reason"), "")
        ok = pc.equal(reason, "")
        if not pc.all(ok).as_py():
            rejected = batch.filter(pc.invert(ok))
            bad.extend(zip(rejected.column("_rn").to_pylist(), rejected.column("_reason").to_pylist(), strict=True))
            batch = batch.filter(ok)
        yield batch.drop_columns(list(CHECKED))
    done()


def _owned(batches: Iterator[pa.RecordBatch], con: duckdb.DuckDBPyConnection, spill: str | None, path: Path,
           errors: list[FocusFileError]) -> Iterator[pa.RecordBatch]:
    """The batches; the private DuckDB (and its own spill directory) go when they end. Whatever stops
    them (a page of the file that cannot be read, a line that cannot be found) is raised as a
    FocusFileError, also kept in `errors`: the store's insert that reads them reports it in its own
    words, with a traceback."""
    try:
        yield from batches
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        error = FocusFileError(f"{path}: cannot read the file: {first}")
        errors.append(error)
        raise error from None
    finally:
        _close(con, spill)


def _close(con: duckdb.DuckDBPyConnection, spill: str | None) -> None:
    con.close()
    if spill:
        shutil.rmtree(spill, ignore_errors=True)


def _rejected_lines(con: duckdb.DuckDBPyConnection, path: Path) -> list[int]:
    lines = sorted({int(r[0]) for r in con.execute("SELECT line FROM reject_errors").fetchall()})
    if lines and not _ends_with_newline(path):
        last = con.execute("SELECT max(line) FROM reject_errors").fetchall()[0][0]
        data_lines = con.execute("SELECT count(*) FROM raw").fetchone()[0] + len(lines)  # type: ignore[index]
        if last == data_lines + 1:
            raise FocusFileError(f"{path}: the file is truncated: line {last} ends mid-row")
    return lines


def _reject_details(con: duckdb.DuckDBPyConnection, kind: str) -> list[tuple[int, str, str]]:
    if kind != "csv":
        return []
    rows = con.execute(
        "SELECT line, string_agg(DISTINCT error_type || ': ' || error_message, '; '), any_value(csv_line) "
        "FROM reject_errors GROUP BY line ORDER BY line"
    ).fetchall()
    return [(int(line), f"unreadable CSV row: {msg}", raw or "") for line, msg, raw in rows]


def _record_starts(path: Path, records: int) -> list[int]:
    """The file line on which each of the first `records` data records starts. A quoted value may
    span lines, so records and lines differ; only read when some row is quarantined. Empty when
    Python's reader cannot follow the file as far (a value past its field limit, records it
    splits otherwise than DuckDB): lines are then as DuckDB counts them."""
    starts: list[int] = []
    with path.open("rb") as raw:
        stream: Any = gzip.GzipFile(fileobj=raw) if _is_gzip(path) else raw
        fh = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
        try:
            reader = csv.reader(fh)
            next(reader, None)  # the header
            line = reader.line_num + 1
            for _ in reader:
                starts.append(line)
                if len(starts) == records:
                    break
                line = reader.line_num + 1
        except csv.Error:
            return []
        finally:
            fh.detach()
    return starts if len(starts) == records else []


def _file_line(record_line: int, starts: list[int]) -> int:
    """The file line a CSV record starts on, from its line as DuckDB counts them (records as lines,
    the header line 1); that line itself when the records' starts are unknown (`_record_starts`)."""
    return starts[record_line - 2] if starts and 2 <= record_line <= len(starts) + 1 else record_line


def _line_of(rn: int, rejected: list[int]) -> int:
    """The rn-th accepted CSV record's line as DuckDB counts them (header on line 1, one record per
    line), past the records it rejected (`rejected`, counted the same way)."""
    line = rn + 1
    for r in rejected:
        if r <= line:
            line += 1
        else:
            break
    return line


# --- the FOCUS source: one task per file -------------------------------------------------------

SOURCE = "focus"


def file_task(rules: TagRules, path: Path, scope: str | None = None, spec: FileSpec = FOCUS,
              limits: ParseLimits | None = None) -> Task:
    """A task that reads one file; its rows stream into the landing; `limits` bound the memory of reading it.

    The run's scope is the file (`scope`, default its path); the rows' scope is what they cover
    (`content_scope`) when the file says it (`BillingPeriodStart`), so a re-delivered period replaces
    the earlier delivery under any name; without it, the file is its rows' scope too."""
    path = Path(path)

    def fetch() -> Batch:
        try:
            opened = open_focus_file(path, rules, spec, limits, by_content=True)
        except (FocusFileError, OSError) as exc:
            raise SourceFailed(str(exc)) from None
        return Batch(facts={"cost_lines": opened.rows}, quarantine=opened.quarantine, by_content=opened.by_content,
                     details={"file": str(path), "rows_in_file": opened.total}, stream_errors=opened.errors)

    return Task(scope=scope or str(path.resolve()), window=None, fetch=fetch)
