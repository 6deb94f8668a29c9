"""The FOCUS drop folder: new and changed files are ingested once, failed files wait for a change,
files still being written wait, and the scheduler scans the folder on its interval."""

from __future__ import annotations

import os
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from finops.scheduler.focus_drop import candidates, ingest_pending, pending
from finops.scheduler.jobs import Jobs
from finops.settings import Settings
from finops.settings.schedule import FocusDropSettings, ScheduleSettings
from finops.sources.focus import SOURCE
from finops.store import Store
from finops.store.ledger import runs
from finops.tags import TagRules
from tests.support import example_a


def total_cost(store: Store) -> Decimal:
    return Decimal(store.query("SELECT coalesce(sum(billed_cost), 0) FROM cost_lines")[0][0])


def set_mtime(path: Path, ago_seconds: float) -> None:
    t = time.time() - ago_seconds
    os.utime(path, (t, t))


def test_new_and_changed_files_are_ingested_once(store: Store, rules: TagRules, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    cfg = FocusDropSettings(folder=drop, settle_seconds=0)
    bill = drop / "bill.csv"
    bill.write_text(example_a.focus_csv())
    (drop / "notes.txt").write_text("not a FOCUS file")

    [r] = ingest_pending(store, cfg, rules)
    assert (r.status, r.rows) == ("succeeded", len(example_a.BILL))
    assert total_cost(store) == sum(Decimal(c) for *_, c in example_a.BILL)
    assert ingest_pending(store, cfg, rules) == []  # remembered through the ledger

    bill.write_text(example_a.focus_csv(bill=example_a.BILL[:2]))
    set_mtime(bill, 5)
    [r] = ingest_pending(store, cfg, rules)
    assert (r.status, r.rows) == ("succeeded", 2)
    assert total_cost(store) == sum(Decimal(c) for *_, c in example_a.BILL[:2])  # replaced, not added

    bad = drop / "bad.csv"
    bad.write_text("Foo,Bar\n1,2\n")
    [r] = ingest_pending(store, cfg, rules)
    assert r.status == "failed" and r.error
    assert ingest_pending(store, cfg, rules) == []  # not retried until it changes
    time.sleep(0.01)
    bad.write_text("Foo,Bar\n1,3\n")  # changed after the failed run
    assert pending(store, cfg) == [bad.resolve()]


def test_a_file_still_being_written_waits(store: Store, tmp_path: Path) -> None:
    cfg = FocusDropSettings(folder=tmp_path, settle_seconds=60)
    fresh = tmp_path / "fresh.csv"
    fresh.write_text(example_a.focus_csv())
    written = fresh.stat().st_mtime  # the clock is placed relative to the file system's own time
    assert pending(store, cfg, now=written + 1) == []
    assert pending(store, cfg, now=written + 61) == [fresh.resolve()]


def test_scheduler_scans_the_folder(store: Store, settings: Settings, tmp_path: Path) -> None:
    schedule = ScheduleSettings()
    schedule.sources = {}
    schedule.weekly.enabled = False
    schedule.focus_drop = FocusDropSettings(folder=tmp_path, every_minutes=0.1 / 60, settle_seconds=0)
    (tmp_path / "day1.csv").write_text(example_a.focus_csv())
    jobs = Jobs(store, settings, schedule)  # its job is called as the scheduler would call it
    assert [r.status for r in jobs.run_focus_drop()] == ["succeeded"]
    (tmp_path / "day2.csv").write_text(example_a.focus_csv(example_a.DAY.replace(day=3)))
    assert [r.status for r in jobs.run_focus_drop()] == ["succeeded"]
    assert jobs.run_focus_drop() == []  # both files known and unchanged: nothing ingested twice
    assert sorted(Path(r.scope).name for r in runs(store, SOURCE)) == ["day1.csv", "day2.csv"]
    assert all(r.status == "succeeded" for r in runs(store, SOURCE))


def test_a_link_leading_out_of_the_folder_is_not_followed(store: Store, rules: TagRules, tmp_path: Path) -> None:
    folder, elsewhere = tmp_path / "drop", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (elsewhere / "secret.csv").write_text(example_a.focus_csv())
    (folder / "link.csv").symlink_to(elsewhere / "secret.csv")
    (folder / "sub").mkdir()
    (folder / "sub" / "inside.csv").write_text(example_a.focus_csv())
    (folder / "inside-link.csv").symlink_to(folder / "sub" / "inside.csv")  # stays in the folder: read
    cfg = FocusDropSettings(folder=folder, settle_seconds=0)
    assert candidates(cfg) == [(folder / "sub" / "inside.csv").resolve()]
    results = ingest_pending(store, cfg, rules)
    assert [Path(r.details.get("file", "")).name for r in results] == ["inside.csv"]
    assert store.query("SELECT count(*) FROM source_runs WHERE scope LIKE '%secret%'")[0][0] == 0



def _damaged_parquet(path: Path, rows: int = 40_000, groups: int = 4) -> None:
    """A FOCUS Parquet file whose last row group has a `BilledCost` page overwritten: its footer and
    first groups read, the damage shows only once the rows stream."""
    duckdb.connect().execute(
        f"""COPY (SELECT CAST(i % 97 AS DOUBLE) / 4 AS BilledCost, CAST(i % 97 AS DOUBLE) / 4 AS EffectiveCost,
                  'USD' AS BillingCurrency, TIMESTAMP '2026-11-02 00:00:00' + to_hours(i % 48) AS ChargePeriodStart,
                  TIMESTAMP '2026-11-02 01:00:00' + to_hours(i % 48) AS ChargePeriodEnd, 'Usage' AS ChargeCategory,
                  'EC2' AS ServiceName, 'acct' AS BillingAccountId, 'AWS' AS ProviderName,
                  'i-' || (i * 7919 % 100003) AS ResourceId, NULL AS Tags FROM range({rows}) t(i))
            TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE {rows // groups})""")
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == groups
    chunk = meta.row_group(groups - 1).column(meta.schema.names.index("BilledCost"))
    with path.open("r+b") as fh:  # the page's data, past its header
        fh.seek(chunk.data_page_offset + 32)
        fh.write(b"\xa5" * (chunk.total_compressed_size - 40))


def test_a_file_damaged_past_its_first_rows_fails_clearly_once(store: Store, rules: TagRules, tmp_path: Path) -> None:
    """The rows are read as they land: a page that cannot be read fails the run with the file's own
    error (not the store's account of the insert), leaves the store as it was, and the drop folder
    does not try the same file again until it changes."""
    drop = tmp_path / "drop"
    drop.mkdir()
    cfg = FocusDropSettings(folder=drop, settle_seconds=0)
    bill = drop / "bill.csv"
    bill.write_text(example_a.focus_csv())
    [first] = ingest_pending(store, cfg, rules)
    assert first.status == "succeeded", first.error
    before = store.query("SELECT * FROM cost_lines ORDER BY ALL")
    damaged = drop / "damaged.parquet"
    _damaged_parquet(damaged)

    [r] = ingest_pending(store, cfg, rules)
    assert r.status == "failed"
    assert (r.error or "").startswith(f"{damaged.resolve()}: cannot read the file: "), r.error
    assert "\n" not in (r.error or "") and "Traceback" not in (r.error or "") and "transaction" not in (r.error or "")
    assert store.query("SELECT * FROM cost_lines ORDER BY ALL") == before
    assert ingest_pending(store, cfg, rules) == []  # the failed run carries the file's signature
    assert [x.status for x in runs(store, SOURCE)] == ["failed", "succeeded"]  # newest first
