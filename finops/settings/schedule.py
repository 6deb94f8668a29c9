"""`ScheduleSettings`: when `finops serve` collects each source, ingests the FOCUS drop folder and
writes the weekly report. Configuration only (imports nothing of finops, so `Settings` can embed it).

Per source: an interval, the window alignment, how far back a first run and a catch-up may go
(`initial_days`, `retention_days`), the catch-up chunk size, and retries with exponential backoff.
Sources whose module has `restatement_window(settings, today)` (AWS Cost Explorer, Azure) use it;
the others re-collect `restatement_hours` before their watermark.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ReportFormat = Literal["xlsx", "csv", "json"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class SourceSchedule(BaseModel):
    """How one source is collected on schedule."""

    model_config = ConfigDict(extra="forbid")

    # None: on when the source is configured (Azure scopes, an export bucket, AWS credentials).
    enabled: bool | None = None
    every_minutes: float = Field(default=60.0, gt=0)
    # Windows start and end on whole hours or whole UTC days.
    align: Literal["hour", "day"] = "day"
    # Without the module's restatement_window: re-collect this much before the newest aligned end,
    # and with include_current also the current (unfinished) hour or day.
    restatement_hours: int = Field(default=0, ge=0)
    include_current: bool = False
    # A first run (no watermark) goes back this far; a catch-up never further than `retention_days`
    # (what the source still holds: Prometheus' retention, 13 months of Cost Explorer).
    initial_days: int = Field(default=2, ge=1)
    retention_days: int = Field(default=15, ge=1)
    # Catch-up runs in chunks of this many days, oldest first; a failed chunk stops the catch-up.
    chunk_days: int = Field(default=1, ge=1)
    # A failed collection is retried after backoff, backoff x 2, ... up to max_retries times.
    max_retries: int = Field(default=3, ge=0)
    retry_backoff_seconds: float = Field(default=60.0, ge=0)


def default_sources() -> dict[str, SourceSchedule]:
    six_hours, months13 = 360.0, 395
    return {
        "prometheus": SourceSchedule(enabled=True, every_minutes=60, align="hour", initial_days=2,
                                     retention_days=15, chunk_days=1),
        "aws_inventory": SourceSchedule(every_minutes=six_hours, align="hour", initial_days=1, retention_days=1),
        "aws_ce": SourceSchedule(every_minutes=six_hours, initial_days=31, retention_days=months13, chunk_days=31),
        "aws_exports": SourceSchedule(every_minutes=six_hours, initial_days=31, retention_days=months13,
                                      chunk_days=31),
        "azure": SourceSchedule(every_minutes=six_hours, initial_days=31, retention_days=months13, chunk_days=31),
    }


class FocusDropSettings(BaseModel):
    """A folder watched for FOCUS files; new and changed files are ingested (one run per file)."""

    model_config = ConfigDict(extra="forbid")

    folder: Path | None = None
    every_minutes: float = Field(default=15.0, gt=0)
    patterns: list[str] = Field(default_factory=lambda: ["*.csv", "*.csv.gz", "*.parquet"])
    # A file modified more recently than this may still be being written: it waits for the next scan.
    settle_seconds: float = Field(default=60.0, ge=0)


class WeeklySettings(BaseModel):
    """The weekly finance report job: the previous ISO week, written as files and recorded."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    day_of_week: Weekday = "mon"
    hour: int = Field(default=6, ge=0, le=23)
    minute: int = Field(default=0, ge=0, le=59)
    # Besides firing at the scheduled time, check this often whether a week is due and unwritten
    # (cheap: one query), so a run missed while the process was down or busy happens soon after.
    check_minutes: float = Field(default=15.0, gt=0)
    formats: list[ReportFormat] = Field(default_factory=lambda: list[ReportFormat](["xlsx", "csv"]))
    # Also upload to S3, e.g. "s3://finance-reports/finops" (credentials from boto3's chain).
    s3_location: str | None = None

    @field_validator("s3_location")
    @classmethod
    def _s3(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith("s3://") or not v[5:].split("/", 1)[0]):
            raise ValueError(f"s3_location: {v!r} is not an s3://bucket[/prefix] location")
        return v


class ScheduleSettings(BaseModel):
    """Everything `finops serve` runs on a timer."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # Given sources are merged over the defaults, field by field.
    sources: dict[str, SourceSchedule] = Field(default_factory=default_sources)
    focus_drop: FocusDropSettings = Field(default_factory=FocusDropSettings)
    weekly: WeeklySettings = Field(default_factory=WeeklySettings)
    # At start, run every job once (collections catch up from their watermarks; a missed weekly
    # report is written) instead of waiting for the first interval.
    run_on_start: bool = True
    max_workers: int = Field(default=8, ge=1)

    @field_validator("sources", mode="before")
    @classmethod
    def _merge_defaults(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        merged: dict[str, Any] = {k: s.model_dump(exclude_unset=True) for k, s in default_sources().items()}
        for name, given in v.items():
            given = given.model_dump(exclude_unset=True) if isinstance(given, SourceSchedule) else given
            merged[name] = {**merged.get(name, {}), **given} if isinstance(given, dict) else given
        return merged
