"""The weekly job: which week is due at a given time, the real scheduler writing the previous ISO
week's XLSX and CSV when the injected clock passes Monday 06:00, and the optional S3 copy."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import boto3
import openpyxl
import pytest

from finops.scheduler.jobs import Jobs
from finops.scheduler.weekly_files import due_week, run, trigger
from finops.settings import Settings
from finops.settings.schedule import ScheduleSettings, WeeklySettings
from finops.store import Store
from finops.tags import TagRules
from tests.support import example_a
from tests.support import moto as doubles
from tests.support.clock import FixedClock

moto_server, moto, aws_env = doubles.moto_server, doubles.moto, doubles.aws_env  # fixtures

WEEK_OF_A = "2026-W45"  # Monday 2026-11-02, the day of example A, to Monday 2026-11-09


def files(store: Store, week: str) -> list[tuple[str, str, int]]:
    return store.query("SELECT format, location, bytes FROM report_files WHERE period = ? ORDER BY format", [week])


def test_due_week_and_trigger_follow_the_schedule() -> None:
    monday6 = WeeklySettings()
    assert due_week(monday6, datetime(2026, 11, 9, 6, 0)) == WEEK_OF_A
    assert due_week(monday6, datetime(2026, 11, 9, 5, 59)) == "2026-W44"
    assert due_week(monday6, datetime(2026, 11, 15, 23, 59)) == WEEK_OF_A
    assert due_week(monday6, datetime(2027, 1, 4, 6, 0)) == "2026-W53"  # 2026 has 53 ISO weeks
    wed8 = WeeklySettings(day_of_week="wed", hour=8)
    assert due_week(wed8, datetime(2026, 11, 11, 8, 0)) == WEEK_OF_A
    assert due_week(wed8, datetime(2026, 11, 10, 12, 0)) == "2026-W44"
    cron = trigger(WeeklySettings(check_minutes=10**6))
    assert cron.get_next_fire_time(None, datetime(2026, 11, 8, 12, tzinfo=UTC)) == datetime(2026, 11, 9, 6, tzinfo=UTC)


def test_weekly_job_writes_previous_week_on_schedule(
        store: Store, settings: Settings, rules: TagRules, tmp_path: Path) -> None:
    example_a.load(store, rules, tmp_path)
    s = settings.model_copy(update={"reports_dir": tmp_path / "reports"})
    schedule = ScheduleSettings()
    schedule.sources = {}
    schedule.weekly.check_minutes = 0.1 / 60
    clock = FixedClock(datetime(2026, 11, 9, 5, 59))  # one minute before this week's run
    jobs = Jobs(store, s, schedule, clock=clock)  # its jobs are called as the scheduler would call them
    jobs.run_weekly()
    assert len(files(store, "2026-W44")) == 2  # the last due week, missing: written at once
    assert files(store, WEEK_OF_A) == []  # not yet due
    clock.now = datetime(2026, 11, 9, 6, 0, 30)
    jobs.run_weekly()
    assert len(files(store, WEEK_OF_A)) == 2
    assert jobs.run_weekly() == []  # the job keeps checking: nothing is written twice
    assert len(files(store, WEEK_OF_A)) == 2
    [(csv_fmt, csv_loc, csv_bytes), (fmt, loc, size)] = files(store, WEEK_OF_A)
    assert (fmt, csv_fmt) == ("xlsx", "csv")
    xlsx = Path(loc)
    assert xlsx == (tmp_path / "reports" / f"weekly-{WEEK_OF_A}.xlsx").resolve() and xlsx.stat().st_size == size
    [(created,)] = store.query("SELECT DISTINCT created_at FROM report_files WHERE period = ?", [WEEK_OF_A])
    assert created == datetime(2026, 11, 9, 6, 0, 30)

    wb = openpyxl.load_workbook(xlsx)
    assert {"summary", "chargeback_team", "idle_gpus", "untagged_spend", "Reconciliation"} <= set(wb.sheetnames)
    summary = {row[0]: row for row in wb["summary"].iter_rows(min_row=2, values_only=True)}
    header = [c.value for c in wb["summary"][1]]
    this_week = header.index("this_week")
    total = sum(Decimal(c) for *_, c in example_a.BILL)
    assert Decimal(str(summary["total_cost"][this_week])) == total == Decimal("534.00")
    params = {k: v for k, v in wb["Parameters"].iter_rows(min_row=2, values_only=True)}
    assert (params["start"], params["end"]) == ("2026-11-02", "2026-11-09")
    assert wb["summary"].freeze_panes == "A2"

    with zipfile.ZipFile(csv_loc) as z:
        text = z.read("summary.csv").decode()
    assert Path(csv_loc).stat().st_size == csv_bytes
    assert any(line.startswith("total_cost,money,534.00") for line in text.splitlines())


def test_weekly_files_also_go_to_s3(moto: str, aws_env: None, store: Store, settings: Settings, rules: TagRules,
                                    tmp_path: Path) -> None:
    example_a.load(store, rules, tmp_path)
    s = settings.model_copy(update={"reports_dir": tmp_path / "reports",
                                    "aws": settings.aws.model_copy(update={"endpoint_urls": {"s3": moto}})})
    boto3.client("s3", endpoint_url=moto).create_bucket(Bucket="finance")
    cfg = WeeklySettings(formats=["xlsx"], s3_location="s3://finance/finops/weekly")
    now = datetime(2026, 11, 9, 7)
    written = run(store, s, cfg, now)
    assert [(f.format, f.location) for f in written] == [
        ("xlsx", str((tmp_path / "reports" / f"weekly-{WEEK_OF_A}.xlsx").resolve())),
        ("xlsx", f"s3://finance/finops/weekly/weekly-{WEEK_OF_A}.xlsx")]
    body = boto3.client("s3", endpoint_url=moto).get_object(Bucket="finance", Key=f"finops/weekly/weekly-{WEEK_OF_A}.xlsx")
    content = body["Body"].read()
    assert content == (tmp_path / "reports" / f"weekly-{WEEK_OF_A}.xlsx").read_bytes()
    assert openpyxl.load_workbook(io.BytesIO(content)).sheetnames[0] == "About"
    assert run(store, s, cfg, now) == []  # recorded: not written again


def test_failed_upload_keeps_the_local_file_and_is_retried(
        moto: str, aws_env: None, store: Store, settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(update={"reports_dir": tmp_path / "reports",
                                    "aws": settings.aws.model_copy(update={"endpoint_urls": {"s3": moto}})})
    cfg = WeeklySettings(formats=["csv"], s3_location="s3://missing-bucket")
    now = datetime(2026, 11, 9, 7)
    assert [f.location.startswith("s3://") for f in run(store, s, cfg, now)] == [False]
    boto3.client("s3", endpoint_url=moto).create_bucket(Bucket="missing-bucket")
    assert [f.location for f in run(store, s, cfg, now)] == [f"s3://missing-bucket/weekly-{WEEK_OF_A}-csv.zip"]


def test_bad_s3_location_is_rejected() -> None:
    with pytest.raises(ValueError, match="not an s3://bucket"):
        WeeklySettings(s3_location="https://bucket/x")
