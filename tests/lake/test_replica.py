"""A read-only replica over an exported lake returns the same reports as the writer."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from finops import reports
from finops.cli import app
from finops.lake.export import TABLES, LakeError, export_lake, open_replica
from finops.reports.params import build_params
from finops.settings import Settings
from finops.store import Store, open_store
from finops.tags import TagRules
from tests.support import example_a
from tests.support.clock import FixedClock, month_start

DAY2 = example_a.DAY + timedelta(days=1)
WINDOW = {"start": "2026-11-02", "end": "2026-11-04"}


@pytest.fixture
def loaded(store: Store, rules: TagRules, tmp_path: Path) -> Store:
    example_a.load(store, rules, tmp_path)
    example_a.load(store, rules, tmp_path, day=DAY2)
    return store


def _reports(store: Store, settings: Settings) -> dict[str, Any]:
    out = {}
    for name, extra in [("unit-economics", {"granularity": "day"}), ("unit-economics", {"group_by": "team"}),
                        ("idle-gpus", {}), ("untagged-spend", {}), ("untagged-spend", {"scope": "accelerator"})]:
        out[f"{name}{extra}"] = reports.get(name)(store, settings, build_params(**WINDOW, **extra)).as_dict()
    out["weekly"] = reports.get("weekly")(store, settings, build_params(week="2026-W45")).as_dict()
    return out


def _lake_rows(lake: Path, table: str) -> int:
    files = list((lake / table).glob("source=*/month=*/*.parquet"))
    if not files:
        return 0
    return int(duckdb.sql(f"SELECT count(*) FROM read_parquet({[str(f) for f in files]})").fetchall()[0][0])


def _store_rows(store: Store) -> dict[str, int]:
    return {t: int(store.query(f"SELECT count(*) FROM {t}")[0][0]) for t in TABLES}


def test_replica_reports_equal_writer(loaded: Store, settings: Settings, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    result = export_lake(loaded, lake)
    counts = _store_rows(loaded)
    assert counts["gpu_hours"] == 2 * 24 * 5 and counts["gpu_daily"] == 2 * 5
    assert result.rows == counts
    assert {t: _lake_rows(lake, t) for t in TABLES} == counts
    assert (lake / "cost_daily" / "source=focus" / "month=2026-11" / "part-0.parquet").exists()
    assert (lake / "gpu_hours" / "source=prometheus" / "month=2026-11" / "part-0.parquet").exists()

    writer = _reports(loaded, settings)
    replica = open_replica(lake, settings.duckdb)
    try:
        got = _reports(replica, settings)
    finally:
        replica.close()
    assert got == writer
    # The data behind the comparison is real: two days of example A, 534.00 a day.
    ue = writer["unit-economics{'granularity': 'day'}"]
    assert ue["totals"]["cost"] == 2 * 534 and len({r["period_start"] for r in ue["rows"]}) == 2


def test_reexport_replaces_partitions_and_replica_sees_changes(loaded: Store, settings: Settings,
                                                               rules: TagRules, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    export_lake(loaded, lake)
    replica = open_replica(lake, settings.duckdb)
    try:
        before = reports.get("unit-economics")(replica, settings, build_params(**WINDOW)).totals["cost"]
        # Day 3 arrives in the writer; a second export must not duplicate days 1-2.
        example_a.load(loaded, rules, tmp_path, day=DAY2 + timedelta(days=1))
        export_lake(loaded, lake)
        export_lake(loaded, lake)
        assert {t: _lake_rows(lake, t) for t in TABLES} == _store_rows(loaded)
        params = build_params(start="2026-11-02", end="2026-11-05")
        after = reports.get("unit-economics")(replica, settings, params).as_dict()
        assert after == reports.get("unit-economics")(loaded, settings, params).as_dict()
    finally:
        replica.close()
    assert before == 2 * 534 and after["totals"]["cost"] == 3 * 534


@pytest.mark.clock
def test_export_since_writes_only_later_months(loaded: Store, clock: FixedClock, tmp_path: Path) -> None:
    # The month after both the data and the ledger's stamps (the store's clock), whatever the date.
    since = month_start(max(DAY2, clock()).date() + timedelta(days=31))
    result = export_lake(loaded, tmp_path / "lake", since=since)
    assert sum(result.rows.values()) == 0
    assert not list((tmp_path / "lake").glob("*/source=*"))


def test_replica_of_a_directory_that_is_not_a_lake_says_so(tmp_path: Path) -> None:
    with pytest.raises(LakeError, match="not a finops lake"):
        open_replica(tmp_path)


def test_cli_export_lake(loaded: Store, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counts = _store_rows(loaded)
    loaded.close()
    monkeypatch.setenv("FINOPS_DB", str(settings.db))
    lake = tmp_path / "cli-lake"
    for _ in range(2):
        res = CliRunner().invoke(app, ["export", "lake", "--to", str(lake)])
        assert res.exit_code == 0, res.output
    assert f"gpu_hours: 1 partition(s), {counts['gpu_hours']} row(s)" in res.output
    assert {t: _lake_rows(lake, t) for t in TABLES} == counts
    bad = CliRunner().invoke(app, ["export", "lake", "--to", str(lake), "--since", "11/2026"])
    assert bad.exit_code != 0 and "since" in bad.output
    reopened = open_store(settings.db, settings.duckdb)
    reopened.close()


def test_export_keeps_hourly_months_that_retention_trimmed(loaded: Store, tmp_path: Path) -> None:
    from finops.store.retention import apply_retention

    lake = tmp_path / "lake"
    export_lake(loaded, lake)
    trimmed = apply_retention(loaded, 30, now=DAY2 + timedelta(days=30, hours=1))
    assert trimmed.deleted["gpu_hours"] == 5 * 24  # day 1's hours are gone from the store
    result = export_lake(loaded, lake)
    assert "gpu_hours/source=prometheus/month=2026-11" in result.skipped
    assert "token_hours/source=prometheus/month=2026-11" in result.skipped
    # The lake keeps both days of hourly detail; rollups and bills are rewritten as usual.
    assert _lake_rows(lake, "gpu_hours") == 2 * 24 * 5
    assert _lake_rows(lake, "gpu_daily") == 2 * 5 and result.rows["gpu_daily"] == 2 * 5
