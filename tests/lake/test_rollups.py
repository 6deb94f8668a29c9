"""Daily GPU and token rollups kept at ingest, migration 0003's backfill, and hourly retention."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from finops import reports
from finops.batch import Batch, Task
from finops.collect import run_task
from finops.reports.params import build_params
from finops.settings import Settings
from finops.store import Store, migrate, open_store
from finops.store.retention import RetentionSettings, apply_retention, retention_job
from finops.tags import TagRules
from finops.timeutil import Window
from tests.support import example_a

DAY1, DAY2 = example_a.DAY, example_a.DAY + timedelta(days=1)
WINDOW = {"start": "2026-11-02", "end": "2026-11-04"}


@pytest.fixture
def loaded(store: Store, rules: TagRules, tmp_path: Path) -> Store:
    example_a.load(store, rules, tmp_path)
    example_a.load(store, rules, tmp_path, day=DAY2)
    return store


def _gpu_daily(store: Store) -> dict[tuple[object, str], tuple[int, float, list[float]]]:
    rows = store.query("SELECT day, gpu_uuid, hours, busy_sum, busy_hourly FROM gpu_daily")
    return {(d, u): (h, s, list(b)) for d, u, h, s, b in rows}


def _expected_gpu_daily(days: list[datetime]) -> dict[tuple[object, str], tuple[int, float, list[float]]]:
    return {(day.date(), f"GPU-{res}-{i}"): (len(series), pytest.approx(sum(series)), series)  # type: ignore[misc]
            for day in days for res, gpus in example_a.GPUS.items() for i, series in enumerate(gpus)}


def test_rollups_are_kept_at_ingest(loaded: Store) -> None:
    assert _gpu_daily(loaded) == _expected_gpu_daily([DAY1, DAY2])
    tokens = loaded.query("SELECT day, resource_id, model_name, hours, prompt_tokens, generation_tokens, requests "
                          "FROM token_daily ORDER BY ALL")
    expected = sorted((d.date(), res, model, 24, p, g, 24 * 100)
                      for d in (DAY1, DAY2) for res, model, p, g in example_a.TOKENS)
    assert tokens == expected


def test_recollecting_a_window_replaces_its_rollup_rows(loaded: Store) -> None:
    facts = example_a.telemetry(DAY1)
    gpu = facts["gpu_hours"]
    facts["gpu_hours"] = gpu.set_column(gpu.schema.get_field_index("busy"), "busy",
                                        [[0.25] * gpu.num_rows])
    task = Task("example-a", Window(DAY1, DAY2), lambda: Batch(facts=facts))
    assert run_task(loaded, "prometheus", task).status == "succeeded"
    daily = _gpu_daily(loaded)
    assert len(daily) == 10  # no doubled day
    assert daily[(DAY1.date(), "GPU-i-gpu1-0")] == (24, pytest.approx(6.0), [0.25] * 24)
    assert daily[(DAY2.date(), "GPU-i-gpu1-0")] == (24, pytest.approx(14.4), [0.60] * 24)


def test_migration_0003_backfills_rollups(settings: Settings) -> None:
    store = open_store(settings.db, settings.duckdb, migrate=False)
    try:
        migrate.upgrade(store, "0002")
        facts = example_a.telemetry(DAY1)
        cur = store.cursor()
        for table in ("gpu_hours", "token_hours"):
            cur.register("_facts", facts[table])
            cols = ", ".join(facts[table].schema.names)
            cur.execute(f"INSERT INTO {table} (run_id, source, scope, {cols}) "
                        f"SELECT 1, 'prometheus', 'old', {cols} FROM _facts")
            cur.unregister("_facts")
        cur.close()
        migrate.upgrade(store)
        assert _gpu_daily(store) == _expected_gpu_daily([DAY1])
        [(gen,)] = store.query("SELECT sum(generation_tokens) FROM token_daily")
        assert gen == sum(t[3] for t in example_a.TOKENS)
    finally:
        store.close()


def test_retention_trims_hours_but_not_the_daily_reports(loaded: Store, settings: Settings) -> None:
    def run(name: str, **extra: str) -> dict[str, object]:
        return reports.get(name)(loaded, settings, build_params(**WINDOW, **extra)).as_dict()

    before = {name: run(name, granularity="day") if name == "unit-economics" else run(name)
              for name in ("unit-economics", "untagged-spend")}
    idle_before = run("idle-gpus")
    now = DAY2 + timedelta(days=30, hours=5)
    assert apply_retention(loaded, None, now=now).deleted == {}
    result = retention_job(loaded, RetentionSettings(keep_hourly_days=30), now=now)
    assert result.cutoff == DAY2.date()
    assert result.deleted == {"gpu_hours": 5 * 24, "token_hours": 3 * 24}
    assert loaded.query("SELECT min(hour_start) FROM gpu_hours") == [(DAY2,)]
    # Cost attribution and unit economics come from the rollups: unchanged to the last digit.
    after = {name: run(name, granularity="day") if name == "unit-economics" else run(name)
             for name in ("unit-economics", "untagged-spend")}
    assert after == before
    # Idle GPUs count hours from the GPU-days' hourly values (hour_of_day, busy_hourly): unchanged too.
    assert idle_before["totals"]["idle_hours"] == 72  # type: ignore[index]
    assert run("idle-gpus") == idle_before
    # Running it again deletes nothing more.
    assert sum(apply_retention(loaded, 30, now=now).deleted.values()) == 0


def test_retention_keeps_hours_without_a_rollup(loaded: Store) -> None:
    loaded.query("DELETE FROM gpu_daily WHERE day = ?", [DAY1.date()])
    result = apply_retention(loaded, 1, now=DAY2 + timedelta(days=5))
    assert result.deleted["gpu_hours"] == 5 * 24  # day 2 only: day 1 has no rollup rows
    assert loaded.query("SELECT count(*) FROM gpu_hours") == [(5 * 24,)]


def test_migrations_0012_to_0014_backfill_gpu_days_hours_daily_cost_and_group_days(loaded: Store,
                                                                                    settings: Settings) -> None:
    def hours() -> dict[str, set[tuple[object, ...]]]:
        return {t: {(d, u, tuple(b), h if h is None else tuple(h)) for d, u, b, h in loaded.query(
                    f"SELECT day, gpu_uuid, busy_hourly, hour_of_day FROM {t}")}  # noqa: S608
                for t in ("gpu_daily", "attr_gpu")}

    landed = hours()
    assert {h for *_, h in landed["gpu_daily"]} == {tuple(range(24))}
    assert landed["attr_gpu"] == landed["gpu_daily"]
    idle = reports.get("idle-gpus")(loaded, settings, build_params(start=DAY2.date(), end=DAY2.date() + timedelta(days=1)))
    window = build_params(start=DAY1.date(), end=DAY2.date() + timedelta(days=1), granularity="day")
    economics = reports.get("unit-economics")(loaded, settings, window)
    group_days = sorted(loaded.query("SELECT * FROM attr_daily"), key=repr)
    assert {b for _, b, *_ in group_days} == {"effective", "billed"} and economics.rows
    # The store as it was at 0011, with day 1's hourly detail already trimmed by retention.
    for table, index in (("gpu_daily", "gpu_daily_day"), ("attr_gpu", "attr_gpu_day")):
        loaded.query(f"DROP INDEX {index}")
        loaded.query(f"ALTER TABLE {table} DROP COLUMN hour_of_day")
        loaded.query(f"CREATE INDEX {index} ON {table} (day)")
    daily_cost = set(loaded.query("SELECT * FROM attr_day"))
    assert {c for _, c, *_ in daily_cost} == {"USD"} and len(daily_cost) == 2
    loaded.query("DROP TABLE attr_day")
    loaded.query("DROP TABLE attr_daily")
    loaded.query("DROP TABLE attr_shared")
    loaded.query("ALTER TABLE attr_state DROP COLUMN idle_threshold")
    loaded.query("UPDATE alembic_version SET version_num = '0011'")
    loaded.query("DELETE FROM gpu_hours WHERE hour_start < ?", [DAY2])
    assert migrate.upgrade(loaded) == ("0011", migrate.head_revision())
    after = hours()
    assert set(loaded.query("SELECT * FROM attr_day")) == daily_cost
    # 0014 sums the stored tables as landing does: the same rows, and unit economics reads them.
    assert sorted(loaded.query("SELECT * FROM attr_daily"), key=repr) == group_days
    assert reports.get("unit-economics")(loaded, settings, window).as_dict() == economics.as_dict()
    assert after == {t: {(d, u, b, h if d == DAY2.date() else None) for d, u, b, h in rows}
                     for t, rows in landed.items()}
    assert reports.get("idle-gpus")(loaded, settings, build_params(
        start=DAY2.date(), end=DAY2.date() + timedelta(days=1))).as_dict() == idle.as_dict()
