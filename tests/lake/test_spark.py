"""Spark (local mode) over an exported lake gives the same unit economics, idle GPUs and untagged spend
as DuckDB, to the cent: the service's own SQL, transpiled by sqlglot, run by the service's own report code.

One SparkSession for the module (local[2], one shuffle partition); skipped when pyspark or Java is missing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from finops import reports
from finops.batch import Batch, Task
from finops.collect import ingest_focus, run_task
from finops.lake.export import export_lake, open_replica
from finops.reports.params import build_params
from finops.settings import Settings
from finops.store import Store, open_store
from finops.tags import TagRules
from finops.timeutil import Window
from tests.support import example_a

HAVE_JAVA = bool(shutil.which("java") or os.environ.get("JAVA_HOME"))
pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("pyspark") is None, reason="pyspark is not installed (dev extra)"),
    pytest.mark.skipif(importlib.util.find_spec("sqlglot") is None, reason="sqlglot is not installed (dev extra)"),
    pytest.mark.skipif(not HAVE_JAVA, reason="no Java runtime (java on PATH or JAVA_HOME) for Spark"),
    # PySpark 4.x warns that it does not fully support pandas 3 yet; the paths used here go through Arrow.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:pyspark.*"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

DAY2 = example_a.DAY + timedelta(days=1)
# Day 2 exercises every rule with uneven money: a team-only line shared by GPU-hours between two
# coreai groups (48 h : 24 h), a line tagged with the project only on a GPU without labels (shared
# to the one search group), odd cents, untagged lines.
BILL2 = [
    example_a.BILL[0],
    ("AWS", "Amazon Elastic Compute Cloud", "i-gpu2",
     {"project": "Chatbot", "team": "CoreAI", "environment": "prod"}, "120.37"),
    example_a.BILL[2],
    ("AWS", "Elastic Load Balancing", "lb-shared", {"Team": "coreai"}, "100.01"),
    ("AWS", "Amazon Simple Storage Service", "bucket-logs", None, "30.005"),
    ("AWS", "Amazon Elastic Compute Cloud", "i-gpu4", {"Project": "search"}, "48.00"),
]
CENT = Decimal("0.01")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Settings]]:
    tmp = tmp_path_factory.mktemp("spark-lake")
    settings = Settings(db=tmp / "writer.duckdb")
    store = open_store(settings.db, settings.duckdb)
    rules = TagRules.from_settings(settings)
    example_a.load(store, rules, tmp)
    (tmp / "day2.csv").write_text(example_a.focus_csv(DAY2, BILL2))
    [r] = ingest_focus(store, rules, [tmp / "day2.csv"])
    assert r.status == "succeeded", r.error
    task = Task("example-a", Window(DAY2, DAY2 + timedelta(days=1)), lambda: Batch(facts=example_a.telemetry(DAY2)))
    assert run_task(store, "prometheus", task).status == "succeeded"
    export_lake(store, tmp / "lake")
    store.close()
    yield tmp / "lake", settings


WINDOW = {"start": "2026-11-02", "end": "2026-11-04"}
DIMS = ("project", "team", "environment", "model_id")
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("unit-economics", {**WINDOW, "granularity": "day"}),
    ("untagged-spend", WINDOW),
    ("untagged-spend", {**WINDOW, "scope": "accelerator"}),
    ("idle-gpus", WINDOW),
]


@pytest.fixture(scope="module")
def both(lake: tuple[Path, Settings]) -> dict[int, tuple[Any, Any]]:
    """Each request of REQUESTS on Spark (one local session) and on DuckDB over the same lake."""
    from finops.lake.spark import register_lake, run_reports, spark_session

    path, settings = lake
    spark = spark_session(master="local[2]", shuffle_partitions=1, app_name="finops-tests")
    try:
        register_lake(spark, str(path))
        ours = run_reports(spark, settings, [(n, build_params(**p)) for n, p in REQUESTS])
    finally:
        spark.stop()
    replica: Store = open_replica(path, settings.duckdb)
    try:
        duck = [reports.get(n)(replica, settings, build_params(**p)) for n, p in REQUESTS]
    finally:
        replica.close()
    return {i: (ours[i], duck[i]) for i in range(len(REQUESTS))}


def _same(spark_row: dict[str, Any], duck_row: dict[str, Any], what: str) -> None:
    assert spark_row.keys() == duck_row.keys(), what
    for k, a in duck_row.items():
        b = spark_row[k]
        if isinstance(a, Decimal) or isinstance(b, Decimal):
            assert a is not None and b is not None, (what, k, a, b)
            assert Decimal(b).quantize(CENT) == Decimal(a).quantize(CENT), (what, k, a, b)
            assert abs(Decimal(b) - Decimal(a)) < Decimal("1e-9"), (what, k, a, b)
        elif isinstance(a, float):
            assert b == pytest.approx(a, abs=1e-9), (what, k)
        else:
            assert b == a, (what, k)


def _compare(spark_report: Any, duck_report: Any, key: tuple[str, ...]) -> None:
    d = {tuple(r[k] for k in key): r for r in duck_report.rows}
    s = {tuple(r[k] for k in key): r for r in spark_report.rows}
    assert s.keys() == d.keys()
    for k, row in d.items():
        _same(s[k], row, f"row {k}")
    _same(spark_report.totals, duck_report.totals, "totals")


def test_unit_economics_on_spark_equals_duckdb(both: dict[int, tuple[Any, Any]]) -> None:
    ours, duck = both[0]
    _compare(ours, duck, ("period_start", *DIMS))
    # What is compared, checked independently: both days' bills, and day 2's team-only line split 2:1.
    day2_total = sum(Decimal(line[4]) for line in BILL2)
    assert duck.totals["cost"] == Decimal(534) + day2_total
    day2 = {tuple(r[d] for d in DIMS): r["cost"] for r in ours.rows if r["period_start"] == DAY2.date()}
    assert sum(day2.values()) == day2_total
    close = Decimal("1e-11")
    assert abs(day2[("chatbot", "coreai", "prod", "llama-70b")] - (240 + Decimal("100.01") * 2 / 3)) < close
    assert abs(day2[("chatbot", "coreai", "prod", "mistral-7b")] - (Decimal("120.37") + Decimal("100.01") / 3)) < close
    assert day2[("search", "platform", "prod", "mistral-7b")] == Decimal("144.00")
    assert day2[("__unallocated__",) * 4] == Decimal("30.005")


def test_untagged_spend_on_spark_equals_duckdb(both: dict[int, tuple[Any, Any]]) -> None:
    for i in (1, 2):
        ours, duck = both[i]
        _compare(ours, duck, ("provider", "account", "service", "resource_id"))
        _compare(type(ours)("trend", {}, ours.tables["trend"], {}), type(duck)("trend", {}, duck.tables["trend"], {}),
                 ("day",))
    untagged_day2 = sum(Decimal(line[4]) for line in BILL2 if line[3] is None or len(line[3]) < 4)
    assert both[1][0].totals["untagged_cost"] == Decimal(198) + untagged_day2
    assert both[2][0].totals["total_cost"] < both[1][0].totals["total_cost"]  # accelerator scope drops S3, LB


def test_idle_gpus_on_spark_equals_duckdb(both: dict[int, tuple[Any, Any]]) -> None:
    ours, duck = both[3]
    _compare(ours, duck, ("gpu_uuid", "mig_instance"))
    by_gpu = {r["gpu_uuid"]: r for r in ours.rows}
    # Example A's idle hours, both days: i-gpu4 24 h a day, i-gpu2 12 h a day (day 2 at 120.37 / 24 an hour).
    assert by_gpu["GPU-i-gpu4-0"]["idle_hours"] == 48 and by_gpu["GPU-i-gpu2-0"]["idle_hours"] == 24
    assert Decimal(by_gpu["GPU-i-gpu4-0"]["idle_cost"]).quantize(CENT) == Decimal("96.00")
    assert abs(by_gpu["GPU-i-gpu2-0"]["idle_cost"] - (60 + Decimal("120.37") / 2)) < Decimal("1e-9")


def test_translation_refuses_what_it_cannot_run() -> None:
    from finops.lake.spark import Untranslatable, translate

    assert translate("BEGIN TRANSACTION") == (None, None)
    name, sql = translate("CREATE OR REPLACE TEMP TABLE t AS SELECT len(list_filter(xs, lambda x: x > 1)) AS n, "
                          "to_hours(2) AS h FROM missing_table GROUP BY ALL")
    assert name == "t" and sql is not None
    assert "SIZE(FILTER(" in sql and "MAKE_DT_INTERVAL(0, 2, 0, 0)" in sql and "GROUP BY ALL" in sql
    with pytest.raises(Untranslatable, match="DELETE"):
        translate("DELETE FROM rec_gpu WHERE true")
