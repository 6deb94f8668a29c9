"""The lake: fact and rollup tables as Hive-partitioned Parquet, and read-only replicas over it.

Layout under the destination (a local directory or an `s3://` URI)::

    <table>/source=<source>/month=<YYYY-MM>/part-0.parquet   one file per partition
    _schema/<table>.parquet                                  no rows: column names and types

Partition files hold every column but `source` (it is in the path). An export rewrites each
partition it writes whole, under a fixed file name, so re-exporting replaces and never duplicates;
partitions the store no longer has are left as they are (the lake may keep months of hourly detail
that retention trimmed from the store, and an hourly month that retention has started to trim is
not rewritten). `open_replica` gives a Store whose tables are views over the lake, so the report
code runs unchanged against it; Spark and Trino/Athena read the same files (docs/scale.md).
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from finops.settings import DuckDBSettings
from finops.store import Store

# Table -> the time column whose UTC month partitions it. Facts, rollups, inventory and the run ledger.
TABLES: dict[str, str] = {
    "cost_lines": "charge_date",
    "cost_daily": "charge_date",
    "gpu_hours": "hour_start",
    "gpu_daily": "day",
    "token_hours": "hour_start",
    "token_daily": "day",
    "inventory": "observed_at",
    "source_runs": "started_at",
}
# Hourly tables and their rollups: a month is rewritten only while its hourly detail is complete.
HOURLY = {"gpu_hours": "gpu_daily", "token_hours": "token_daily"}
PARTITIONS = ("source", "month")
REMOTE = re.compile(r"^(s3|s3a|gs|gcs|r2|az|azure|abfss|https?)://", re.IGNORECASE)
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.-]+$")


class LakeError(ValueError):
    """The lake cannot be written or read (bad destination, unsafe partition value, missing files)."""


@dataclass
class ExportResult:
    dest: str
    partitions: dict[str, int] = field(default_factory=dict)  # table -> partitions written
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows written
    skipped: list[str] = field(default_factory=list)  # hourly partitions kept as they were


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def is_remote(dest: str) -> bool:
    return bool(REMOTE.match(dest))


def _join(dest: str, *parts: str) -> str:
    return "/".join([dest.rstrip("/"), *parts])


def prepare_remote(con: duckdb.DuckDBPyConnection, dest: str) -> None:
    """Object stores go through DuckDB's httpfs with the standard credential chain (env, profile, role)."""
    if not is_remote(dest):
        return
    try:
        con.execute("LOAD httpfs")
    except duckdb.Error:
        try:
            con.execute("INSTALL httpfs")
            con.execute("LOAD httpfs")
        except duckdb.Error as exc:
            raise LakeError(f"{dest}: the DuckDB httpfs extension is needed for object stores and could "
                            f"not be loaded: {str(exc).splitlines()[0]}") from None
    if dest.lower().startswith(("s3://", "s3a://", "r2://")):
        con.execute("CREATE SECRET IF NOT EXISTS finops_lake (TYPE s3, PROVIDER credential_chain)")


def _partitions(cur: duckdb.DuckDBPyConnection, table: str, since: date | None) -> list[tuple[str, str]]:
    col = TABLES[table]
    where, params = ("", []) if since is None else (f" WHERE {col} >= ?", [since.replace(day=1)])
    rows = cur.execute(
        f"SELECT DISTINCT source, strftime({col}, '%Y-%m') FROM {table}{where} ORDER BY 1, 2",  # noqa: S608
        params).fetchall()
    return [(str(s), str(m)) for s, m in rows if m is not None]


def _incomplete_hourly(cur: duckdb.DuckDBPyConnection, table: str) -> set[tuple[str, str]]:
    """(source, month) of an hourly table where the rollup has days the hourly table no longer has."""
    rollup = HOURLY[table]
    rows = cur.execute(
        f"""SELECT r.source, r.month FROM (
               SELECT source, strftime(day, '%Y-%m') AS month, count(DISTINCT day) AS n FROM {rollup} GROUP BY ALL
           ) r LEFT JOIN (
               SELECT source, strftime(hour_start, '%Y-%m') AS month, count(DISTINCT CAST(hour_start AS DATE)) AS n
               FROM {table} GROUP BY ALL
           ) h USING (source, month)
           WHERE coalesce(h.n, 0) < r.n"""  # noqa: S608 - table names are constants
    ).fetchall()
    return {(str(s), str(m)) for s, m in rows}


def _month_bounds(month: str) -> tuple[date, date]:
    y, m = (int(x) for x in month.split("-"))
    return date(y, m, 1), date(y + m // 12, m % 12 + 1, 1)


def _write(cur: duckdb.DuckDBPyConnection, select: str, params: list[Any], target: str, remote: bool,
           only_file: bool = True) -> None:
    """COPY a query to one Parquet file; locally through a temporary name and an atomic rename.

    `only_file`: the file is its directory's only Parquet file (a partition); others are removed.
    """
    if remote:
        cur.execute(f"COPY ({select}) TO {_lit(target)} (FORMAT parquet, COMPRESSION zstd)", params).fetchall()
        return
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        cur.execute(f"COPY ({select}) TO {_lit(str(tmp))} (FORMAT parquet, COMPRESSION zstd)", params).fetchall()
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    for stale in final.parent.glob("*.parquet") if only_file else ():  # another layout's files: read twice
        if stale != final:
            stale.unlink()


def export_lake(store: Store, dest: str | Path, since: date | None = None) -> ExportResult:
    """Write every table of TABLES as Hive-partitioned Parquet under `dest` (months from `since` on).

    Runs in one read snapshot of the store, so all tables agree; idempotent per partition.
    """
    dest = str(dest)
    remote = is_remote(dest)
    if not remote:
        dest = str(Path(dest).expanduser().resolve())
        Path(dest).mkdir(parents=True, exist_ok=True)
    result = ExportResult(dest)
    cur = store.cursor()
    try:
        prepare_remote(cur, dest)
        cur.execute("BEGIN TRANSACTION")
        for table, col in TABLES.items():
            _write(cur, f"SELECT *, NULL::VARCHAR AS month FROM {table} LIMIT 0", [],  # noqa: S608
                   _join(dest, "_schema", f"{table}.parquet"), remote, only_file=False)
            skip = _incomplete_hourly(cur, table) if table in HOURLY else set()
            written = rows = 0
            for source, month in _partitions(cur, table, since):
                if not _SAFE_VALUE.match(source):
                    raise LakeError(f"{table}: source {source!r} cannot name a partition directory")
                if (source, month) in skip:
                    result.skipped.append(f"{table}/source={source}/month={month}")
                    continue
                lo, hi = _month_bounds(month)
                where = f"source = ? AND {col} >= ? AND {col} < ?"
                params: list[Any] = [source, lo, hi]
                [(n,)] = cur.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchall()  # noqa: S608
                target = _join(dest, table, f"source={source}", f"month={month}", "part-0.parquet")
                _write(cur, f"SELECT * EXCLUDE (source) FROM {table} WHERE {where}", params, target, remote)  # noqa: S608
                written, rows = written + 1, rows + int(n)
            result.partitions[table], result.rows[table] = written, rows
        cur.execute("ROLLBACK")
    finally:
        cur.close()
    return result


def _view_sql(con: duckdb.DuckDBPyConnection, lake: str, table: str) -> str:
    schema = _join(lake, "_schema", f"{table}.parquet")
    try:
        columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({_lit(schema)})").fetchall()]  # noqa: S608 - a quoted literal
    except duckdb.Error as exc:
        raise LakeError(f"{lake}: not a finops lake ({table}: {str(exc).splitlines()[0]})") from None
    files = _join(lake, table, "*", "*", "*.parquet")
    [(n,)] = con.execute("SELECT count(*) FROM glob(?)", [files]).fetchall()
    cols = ", ".join(f'"{c}"' for c in columns if c != "month")
    if not n:
        return f"SELECT {cols} FROM read_parquet({_lit(schema)})"  # noqa: S608 - names read from our own schema file
    return (f"SELECT {cols} FROM read_parquet({_lit(files)}, hive_partitioning = true, "  # noqa: S608
            "hive_types = {'source': VARCHAR, 'month': VARCHAR}, union_by_name = true)")


def open_replica(lake: str | Path, limits: DuckDBSettings | None = None) -> Store:
    """An in-memory DuckDB whose tables are views over the lake: a read-only Store for the reports.

    Views list the files on every query, so a newer export is seen without reopening.
    """
    lake = str(lake)
    if not is_remote(lake):
        lake = str(Path(lake).expanduser().resolve())
    limits = limits or DuckDBSettings()
    config: dict[str, Any] = {"memory_limit": limits.memory_limit, "threads": limits.threads}
    if limits.temp_directory:
        config["temp_directory"] = limits.temp_directory
    con = duckdb.connect(":memory:", config=config)
    try:
        prepare_remote(con, lake)
        for table in TABLES:
            con.execute(f"CREATE VIEW {table} AS {_view_sql(con, lake, table)}")
        # The lake keeps no attribution: reports on the replica attribute from the facts.
        con.execute("CREATE VIEW attr_state AS SELECT 1 AS id, '' AS shared_cost_key, false AS complete, "
                    "0.05 AS idle_threshold")
        con.execute("CREATE VIEW attr_day AS SELECT CAST(NULL AS DATE) AS day, CAST(NULL AS VARCHAR) AS billing_currency, "
                    "CAST(NULL AS DECIMAL(38,12)) AS cost_effective, CAST(NULL AS DECIMAL(38,12)) AS cost_billed "
                    "WHERE false")
    except BaseException:
        con.close()
        raise
    return Store(Path(lake), con, read_only=True)
