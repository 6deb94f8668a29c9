"""The weekly job: write the previous ISO week's finance report (docs/definitions.md 6.4) as files and record them.

Which week is due follows from the schedule and the time alone: the week before the latest
scheduled time at or before `now`. A week is written once per format and destination (the
`report_files` table says what exists), so running the job again, or at start after downtime,
writes only what is missing.

Each format is rendered and written on its own: a format that fails (a writer refusing some text,
a full disk) is logged with its traceback and recorded as a failed `weekly_report` run in the run
ledger (scope: the format; window: the week), the other formats are written all the same, and the
failed one is tried again at the next check.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from finops import reports
from finops.reports.export import MEDIA_TYPES, render
from finops.reports.params import build_params
from finops.settings import Settings
from finops.settings.schedule import WEEKDAYS, WeeklySettings
from finops.store import Store
from finops.store.ledger import fail_run, runs, start_run
from finops.timeutil import iso_week, parse_week

log = logging.getLogger(__name__)

REPORT = "weekly"
# File name suffix per rendered kind (the weekly CSV export is a zip of one CSV per table).
SUFFIX = {"xlsx": ".xlsx", "json": ".json", "csv": ".csv", "zip": "-csv.zip"}
# The job's failures in the run ledger. Not a collection source: no report, alert or catch-up reads it.
SOURCE = "weekly_report"


@dataclass(frozen=True)
class ReportFile:
    report: str
    period: str
    format: str
    location: str
    bytes: int
    created_at: datetime


def trigger(cfg: WeeklySettings) -> OrTrigger:
    """At the scheduled time, and every `check_minutes` (the job only writes what is due and missing)."""
    return OrTrigger([CronTrigger(day_of_week=cfg.day_of_week, hour=cfg.hour, minute=cfg.minute, timezone=UTC),
                      IntervalTrigger(seconds=cfg.check_minutes * 60, timezone=UTC)])


def due_week(cfg: WeeklySettings, now: datetime) -> str:
    """The ISO week the latest scheduled run at or before `now` reports on: the week before its own."""
    now = now.replace(tzinfo=None)
    day = now.date() - timedelta(days=(now.weekday() - WEEKDAYS.index(cfg.day_of_week)) % 7)
    fire = datetime.combine(day, time(cfg.hour, cfg.minute))
    if fire > now:
        fire -= timedelta(days=7)
    monday = fire.date() - timedelta(days=fire.weekday())
    return iso_week(monday - timedelta(days=7))


def written(store: Store, week: str) -> set[tuple[str, str]]:
    """(format, destination) pairs already recorded for `week`; destination is `local` or `s3`."""
    rows = store.query("SELECT format, location FROM report_files WHERE report = ? AND period = ?", [REPORT, week])
    return {(fmt, "s3" if loc.startswith("s3://") else "local") for fmt, loc in rows}


def _write_atomic(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)  # readers never see a half-written file


def _record(store: Store, f: ReportFile) -> None:
    with store.transaction() as cur:
        cur.execute("INSERT INTO report_files (report, period, format, location, bytes, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)", [f.report, f.period, f.format, f.location, f.bytes, f.created_at])


def failures(store: Store, week: str) -> dict[str, str]:
    """Format -> the error of its newest recorded failure for `week`."""
    start, out = parse_week(week).start, dict[str, str]()
    for r in runs(store, SOURCE, limit=1000):  # newest first
        if r.window_start == start and r.error is not None:
            out.setdefault(r.scope, r.error)
    return out


def _failed(store: Store, week: str, fmt: str, step: str, exc: Exception) -> None:
    """Log a failed format and record it in the ledger, once per week, format and error."""
    error = f"{step}: {type(exc).__name__}: {exc}"
    log.error("weekly report %s: %s failed (%s); the other formats are unaffected, this one is tried again "
              "at the next check", week, fmt, step, exc_info=exc)
    try:
        if failures(store, week).get(fmt) == error[:4000]:
            return  # the check repeats every few minutes: the ledger keeps one row per distinct failure
        fail_run(store, start_run(store, SOURCE, fmt, parse_week(week)), error)
    except Exception:  # recording must not stop the other formats either; the log above stands
        log.exception("weekly report %s: could not record the failure of %s", week, fmt)


def s3_client(settings: Settings) -> Any:
    """An S3 client the standard boto3 way; endpoint from the AWS settings when one is configured."""
    import boto3

    aws = settings.aws
    session = boto3.Session(profile_name=aws.profile) if aws.profile else boto3.Session()
    return session.client("s3", endpoint_url=aws.endpoint_urls.get("s3") or aws.endpoint_url,
                          region_name=aws.export_region or aws.regions[0])


def write_week(store: Store, settings: Settings, cfg: WeeklySettings, week: str, now: datetime,
               s3: Any = None) -> list[ReportFile]:
    """Render the weekly report of `week` and write each format to each destination not yet recorded.

    A format that fails is logged and recorded (`failures`) and does not stop the others."""
    have = written(store, week)
    params = build_params(week=week, default_required=settings.required_tags, shared_cost_key=settings.shared_cost_key,
                          idle_threshold=settings.idle_threshold, currency=settings.report_currency,
                          generation_weight=settings.generation_weight)
    try:
        report = reports.get(REPORT)(store, settings, params)
    except Exception as exc:  # no format can be written; each missing one records why
        for fmt in cfg.formats:
            if (fmt, "local") not in have or (cfg.s3_location and (fmt, "s3") not in have):
                _failed(store, week, fmt, "report", exc)
        return []
    out: list[ReportFile] = []
    for fmt in cfg.formats:
        try:
            content, kind = render(report, fmt)
        except Exception as exc:  # e.g. a writer refusing some text: the other formats still go out
            _failed(store, week, fmt, "render", exc)
            continue
        name = f"{REPORT}-{week}{SUFFIX[kind]}"
        if (fmt, "local") not in have:
            path = (settings.reports_dir / name).resolve()
            try:
                _write_atomic(path, content)
            except OSError as exc:  # the S3 copy, when configured, does not depend on the local disk
                _failed(store, week, fmt, "write", exc)
            else:
                out.append(ReportFile(REPORT, week, fmt, str(path), len(content), now))
                _record(store, out[-1])
        if cfg.s3_location and (fmt, "s3") not in have:
            bucket, _, prefix = cfg.s3_location[5:].partition("/")
            key = f"{prefix.strip('/')}/{name}" if prefix.strip("/") else name
            try:
                s3 = s3 or s3_client(settings)
                s3.put_object(Bucket=bucket, Key=key, Body=content, ContentType=MEDIA_TYPES[kind].split(";")[0])
            except Exception as exc:  # the local file stands; the upload is retried on the next run
                log.warning("weekly report %s: upload to s3://%s/%s failed: %s", week, bucket, key, type(exc).__name__)
                continue
            out.append(ReportFile(REPORT, week, fmt, f"s3://{bucket}/{key}", len(content), now))
            _record(store, out[-1])
    return out


def run(store: Store, settings: Settings, cfg: WeeklySettings, now: datetime, s3: Any = None) -> list[ReportFile]:
    """Write the due week's files if any is missing; returns the files written now."""
    week = due_week(cfg, now)
    wanted = {(f, d) for f in cfg.formats for d in (("local", "s3") if cfg.s3_location else ("local",))}
    if wanted <= written(store, week):
        return []
    files = write_week(store, settings, cfg, week, now, s3)
    for f in files:
        log.info("weekly report %s written: %s (%d bytes)", week, f.location, f.bytes)
    return files
