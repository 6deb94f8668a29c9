"""The attribution and report SQL on Apache Spark, over the lake `finops export lake` writes.

Nothing is rewritten by hand: the same DuckDB SQL the service runs (finops/attribution/sql.py and
the report modules) is transpiled by sqlglot to Spark SQL statement by statement, and the report
code itself runs unchanged on a `SparkCursor`, which offers the few cursor methods it uses.
`CREATE TEMP TABLE x AS q` becomes a locally checkpointed DataFrame registered as view `x` (computed
once, like DuckDB's temp table, so row numbers stay the same for every reader). Bound values are
passed as Spark parameter markers, never formatted into SQL.

Needs `pyspark` (>= 4.0, for `DataFrame.toArrow` and `createDataFrame` of an Arrow table) and a JVM.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa
import sqlglot
from sqlglot import exp

from finops.lake.export import TABLES, _join, is_remote

if TYPE_CHECKING:  # pyspark is optional: only this module needs it
    from pyspark.sql import DataFrame, SparkSession

    from finops.attribution import Attribution
    from finops.reports.model import Report
    from finops.reports.params import ReportParams
    from finops.settings import Settings

# DuckDB list columns: `len(x)` of these is Spark's `size(x)` (Spark's `length` is for strings).
LIST_COLUMNS = frozenset({"missing", "busy_hourly", "hour_of_day", "host_names"})


class Untranslatable(ValueError):
    """A statement the Spark adapter does not run (e.g. DELETE on a temporary view)."""


def spark_session(master: str = "local[2]", shuffle_partitions: int = 4, app_name: str = "finops") -> SparkSession:
    """A SparkSession set for these reports: UTC, untyped partition values, small shuffles, no UI."""
    from pyspark.sql import SparkSession

    return (SparkSession.builder.master(master).appName(app_name)
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
            .config("spark.default.parallelism", str(shuffle_partitions))
            .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
            .config("spark.ui.enabled", "false")
            # A short-lived driver: the JIT's quick tier only and one GC thread start it faster and
            # spend less CPU than the server defaults.
            .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
            # Report queries are small and many: interpreted plans beat compiling each one.
            .config("spark.sql.adaptive.enabled", "false")
            .config("spark.sql.codegen.wholeStage", "false")
            .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
            .config("spark.sql.ansi.enabled", "false")
            # Keep DECIMAL(38,12) scales through * and / as DuckDB does (Spark would cut them to 6).
            .config("spark.sql.decimalOperations.allowPrecisionLoss", "false")
            .getOrCreate())


def register_lake(spark: SparkSession, lake: str) -> None:
    """Temp views named like the store's tables over the lake's Parquet (columns in the store's order)."""
    from pyspark.sql.functions import col

    for table in TABLES:
        schema_file = _join(lake, "_schema", f"{table}.parquet")
        struct = _local_schema(schema_file)
        empty = spark.createDataFrame([], struct) if struct is not None else spark.read.parquet(schema_file)
        columns = [c for c in empty.columns if c != "month"]
        # Giving the schema spares Spark a job per table to infer it from the files' footers.
        reader = spark.read.schema(empty.schema) if struct is not None else spark.read
        try:
            df = reader.parquet(_join(lake, table))
        except Exception as exc:  # no partition written yet: an empty table of the right schema
            if "PATH_NOT_FOUND" not in str(exc) and "UNABLE_TO_INFER_SCHEMA" not in str(exc):
                raise
            df = empty
        df.select([col(c) for c in columns]).createOrReplaceTempView(table)


def _local_schema(path: str) -> Any:
    """The Spark schema of a local `_schema` file, read with pyarrow (None for remote lakes)."""
    if is_remote(path):
        return None
    import pyarrow.parquet as pq
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(pq.read_schema(path))


def _fix(node: exp.Expression) -> exp.Expression:
    """DuckDB functions sqlglot leaves as they are, in their Spark spelling."""
    if isinstance(node, exp.Length):
        arg = node.this
        if isinstance(arg, exp.ArrayFilter | exp.Array) or (isinstance(arg, exp.Column) and arg.name in LIST_COLUMNS):
            return cast(exp.Expression, exp.func("SIZE", arg))
    if isinstance(node, exp.Window) and isinstance(node.this, exp.RowNumber) and not node.args.get("order"):
        # Spark numbers rows only in an order; any order will do where DuckDB's SQL gives none.
        node.set("order", exp.Order(expressions=[exp.Ordered(this=exp.func("MONOTONICALLY_INCREASING_ID"))]))
        return node
    if isinstance(node, exp.Mode) and isinstance(node.this, exp.Order):
        # DuckDB's mode(x ORDER BY x) takes the lowest of tied values; Spark's mode(x, true) does.
        return cast(exp.Expression, exp.func("MODE", node.this.this, exp.true()))
    if isinstance(node, exp.Select):
        # DuckDB unnests several lists of a row side by side; Spark allows one generator per SELECT:
        # the lists zipped, inlined into as many columns.
        lists = [e for e in node.expressions if isinstance(e, exp.Alias) and isinstance(e.this, exp.Explode)]
        if len(lists) > 1:
            zipped = exp.func("INLINE", exp.func("ARRAYS_ZIP", *(e.this.this for e in lists)))
            node.set("expressions", [e for e in node.expressions if e not in lists]
                     + [exp.Aliases(this=zipped, expressions=[exp.to_identifier(e.alias) for e in lists])])
        return node
    if isinstance(node, exp.Anonymous) and node.name.lower() == "to_hours":
        zero = exp.Literal.number(0)
        return cast(exp.Expression, exp.func("MAKE_DT_INTERVAL", zero, node.expressions[0], zero, zero))
    return node


def translate(sql: str) -> tuple[str | None, str | None]:
    """(temp table to create or None, Spark SQL of the query or None for a no-op) for one DuckDB statement."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    if isinstance(tree, exp.Transaction | exp.Rollback | exp.Commit):
        return None, None
    if isinstance(tree, exp.Create) and str(tree.args.get("kind", "")).upper() in ("TABLE", "VIEW"):
        name = tree.this.name if isinstance(tree.this, exp.Table) else tree.this.this.name
        return name, cast(exp.Expression, tree.expression).transform(_fix).sql(dialect="spark")
    if isinstance(tree, exp.Query):
        return None, tree.transform(_fix).sql(dialect="spark")
    raise Untranslatable(f"not run on Spark: {sql.strip().split()[0].upper()} statement")


class _Result:
    def __init__(self, df: DataFrame | None):
        self.df = df

    def to_arrow_table(self) -> pa.Table:
        return self.df.toArrow() if self.df is not None else pa.table({})


class SparkCursor:
    """The cursor methods the attribution engine and reports use, running on Spark."""

    def __init__(self, spark: SparkSession):
        self.spark = spark
        self._last: DataFrame | None = None
        self.statements = 0

    def _run(self, sql: str, params: dict[str, Any] | list[Any] | None) -> DataFrame | None:
        name, query = translate(sql)
        if query is None:
            return None
        self.statements += 1
        args = _args(params)
        df = self.spark.sql(query, args=args) if args else self.spark.sql(query)
        if name is None:
            return df
        # Checkpointed, not a view: computed once, so every reader sees the same row numbers.
        df.localCheckpoint(eager=True).createOrReplaceTempView(name)
        return None

    def execute(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> SparkCursor:
        self._last = self._run(sql, params)
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        if self._last is None:
            return []
        return [tuple(r) for r in self._last.collect()]

    def sql(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> _Result:
        return _Result(self._run(sql, params))

    def register(self, name: str, table: pa.Table) -> None:
        self.spark.createDataFrame(table).createOrReplaceTempView(name)

    def unregister(self, name: str) -> None:
        self.spark.catalog.dropTempView(name)

    def close(self) -> None:
        """Temp views live in the session; nothing to release per cursor."""


def _args(params: dict[str, Any] | list[Any] | None) -> dict[str, Any] | list[Any] | None:
    """Bound values for Spark's parameter markers (dates, strings and numbers pass as they are)."""
    if not params:
        return None
    convert: Callable[[Any], Any] = lambda v: v if not isinstance(v, list | tuple) else list(v)  # noqa: E731
    if isinstance(params, dict):
        return {k: convert(v) for k, v in params.items()}
    return [convert(v) for v in params]


def _builders() -> dict[str, tuple[bool, Callable[[Any, Attribution, ReportParams], Report]]]:
    from finops.reports import idle_gpus, unit_economics, untagged

    # report -> (needs hourly GPU rows, builder)
    return {
        "unit-economics": (False, unit_economics.build),
        "untagged-spend": (False, untagged.build),
        "idle-gpus": (True, idle_gpus.build),
    }


def run_reports(spark: SparkSession, settings: Settings,
                requests: list[tuple[str, ReportParams]]) -> list[Report]:
    """Reports (`unit-economics`, `idle-gpus`, `untagged-spend`) on Spark, by the service's own code.

    Requests that share a window and attribution policy share one attribution run per grain.
    """
    from finops.attribution import attribute

    builders = _builders()
    for name, _ in requests:
        if name not in builders:
            raise Untranslatable(f"report {name!r} is not run on Spark; choose from {', '.join(builders)}")
    out: dict[int, Report] = {}
    cur = cast(Any, SparkCursor(spark))
    order = sorted(range(len(requests)), key=lambda i: _attribution_key(requests[i], builders))
    last: tuple[Any, ...] | None = None
    att: Attribution | None = None
    for i in order:
        name, params = requests[i]
        key = _attribution_key(requests[i], builders)
        if key != last or att is None:
            att, last = attribute(cur, params, settings, hourly=builders[name][0]), key
        out[i] = builders[name][1](cur, att, params)
    return [out[i] for i in range(len(requests))]


def _attribution_key(request: tuple[str, ReportParams], builders: dict[str, Any]) -> tuple[Any, ...]:
    name, p = request
    return (builders[name][0], p.start, p.end, p.cost_basis, p.shared_cost_key, p.idle_threshold, p.currency or "")


def run_report(spark: SparkSession, name: str, settings: Settings, params: ReportParams) -> Report:
    """One report on Spark (see `run_reports`)."""
    return run_reports(spark, settings, [(name, params)])[0]


def lake_uri_for_spark(lake: str) -> str:
    """Spark's Hadoop file systems name S3 `s3a://`; local paths pass as they are."""
    if is_remote(lake) and lake.lower().startswith("s3://"):
        return "s3a://" + lake[len("s3://"):]
    return lake


__all__ = ["SparkCursor", "lake_uri_for_spark", "register_lake", "run_report", "run_reports", "spark_session",
           "translate"]
