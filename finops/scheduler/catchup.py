"""Which windows a scheduled collection of one source runs, from its watermark in the run ledger.

The plan covers `[start, end)`: `end` is the newest aligned time the source can answer for (or the
end of its restatement window); `start` is the earliest of the restatement start, the watermark
and the start of any failed window no later run has covered (so a failure is re-collected, never
skipped), but never before `end - retention_days`. The span runs in `chunk_days` pieces, oldest
first. A source up to date with no restatement plans nothing, so repeated runs add no duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from finops.collect import source_module
from finops.settings import Settings
from finops.settings.schedule import SourceSchedule
from finops.store import Store
from finops.store.ledger import open_failure, watermark
from finops.timeutil import Window


@dataclass(frozen=True)
class Plan:
    source: str
    windows: list[Window]
    watermark: datetime | None
    reason: str


def floor(ts: datetime, align: str) -> datetime:
    ts = ts.replace(minute=0, second=0, microsecond=0, tzinfo=None)
    return ts.replace(hour=0) if align == "day" else ts


def step(align: str) -> timedelta:
    return timedelta(days=1) if align == "day" else timedelta(hours=1)


def restatement(source: str, sched: SourceSchedule, settings: Settings, now: datetime) -> tuple[datetime, datetime]:
    """(start, end) every run re-collects: the module's own window, or the schedule's fallback."""
    fn = getattr(source_module(source), "restatement_window", None)
    if callable(fn):
        w: Window = fn(settings, now.date())
        return w.start, w.end
    end = floor(now, sched.align) + (step(sched.align) if sched.include_current else timedelta(0))
    return end - timedelta(hours=sched.restatement_hours), end


def chunks(start: datetime, end: datetime, days: int) -> list[Window]:
    out, size = [], timedelta(days=days)
    while start < end:
        out.append(Window(start, min(start + size, end)))
        start += size
    return out


def plan(store: Store, settings: Settings, source: str, sched: SourceSchedule, now: datetime) -> Plan:
    """The windows to collect now, oldest first (empty when the source is up to date)."""
    r_start, end = restatement(source, sched, settings, now)
    oldest = floor(end - timedelta(days=sched.retention_days), sched.align)
    wm, failed = watermark(store, source), open_failure(store, source, oldest)
    candidates = {"restatement": r_start}
    if wm is not None:
        candidates["catch-up from the watermark"] = floor(wm, sched.align)
    if failed is not None:
        candidates["retry of a failed window"] = floor(failed, sched.align)
    if wm is None and failed is None:
        candidates["first run"] = floor(end - timedelta(days=sched.initial_days), sched.align)
    reason, start = min(candidates.items(), key=lambda kv: kv[1])
    if start < oldest:
        start, reason = oldest, f"{reason}, limited to {sched.retention_days} days of retention"
    if start >= end:
        return Plan(source, [], wm, "up to date")
    return Plan(source, chunks(start, end, sched.chunk_days), wm, reason)
