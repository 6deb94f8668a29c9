"""Retention: keep hourly GPU and token detail for N days, the daily rollups forever.

Attribution, unit economics and untagged spend read the daily rollups (cost_daily, gpu_daily,
token_daily), so trimming hourly rows changes none of their numbers. Idle GPUs, the weekly report's
idle and savings tables, idle alerts and recommendations read GPU-hours: they see only the retained
days. Cost lines are not trimmed (a year of a large fleet is a few million rows, and cost_daily is
rebuilt from them when a bill is restated).

Only whole UTC days strictly before the cutoff are deleted, and only where the rollup holds the same
source, scope and day (rows loaded before their rollup existed are never lost). Keep N above the
longest window a collector re-collects (restatements), since re-collecting part of a trimmed day
rebuilds that day's rollup from the hours collected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pydantic import BaseModel, Field

from finops.store.db import Store


class RetentionSettings(BaseModel):
    """How many days of hourly detail to keep; None keeps it forever (the default)."""

    keep_hourly_days: int | None = Field(default=None, ge=1)


# Hourly table -> its rollup; both have source and scope, the rollup a `day`.
HOURLY = {"gpu_hours": "gpu_daily", "token_hours": "token_daily"}


@dataclass(frozen=True)
class RetentionResult:
    cutoff: date | None
    deleted: dict[str, int]


def cutoff_day(keep_days: int, now: datetime) -> date:
    """The first day kept: today (UTC) minus `keep_days`."""
    return now.date() - timedelta(days=keep_days)


def apply_retention(store: Store, keep_hourly_days: int | None, now: datetime | None = None) -> RetentionResult:
    """Delete hourly GPU and token rows of days before the cutoff, in one transaction.

    The scheduler calls this once a day (after collection and any lake export); None does nothing.
    Returns the cutoff and the rows deleted per table.
    """
    if keep_hourly_days is None:
        return RetentionResult(None, {})
    cutoff = cutoff_day(keep_hourly_days, now or store.clock())
    deleted: dict[str, int] = {}
    with store.transaction() as cur:
        for table, rollup in HOURLY.items():
            [(n,)] = cur.execute(
                f"DELETE FROM {table} WHERE hour_start < ? AND (source, scope, CAST(hour_start AS DATE)) IN ("  # noqa: S608
                f"SELECT (source, scope, day) FROM {rollup} WHERE day < ?)",  # names are constants
                [cutoff, cutoff],
            ).fetchall()
            deleted[table] = int(n)
    return RetentionResult(cutoff, deleted)


def retention_job(store: Store, settings: RetentionSettings, now: datetime | None = None) -> RetentionResult:
    """Entry point for the scheduler: `apply_retention` with the configured days."""
    return apply_retention(store, settings.keep_hourly_days, now)
