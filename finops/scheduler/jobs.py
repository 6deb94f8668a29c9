"""APScheduler wiring for `finops serve`: collections, the FOCUS drop folder, the weekly report, alerts.

- One interval job per enabled source (`ScheduleSettings.sources`). Each run plans its windows from
  the ledger (`finops.scheduler.catchup`), so after downtime it catches up from the watermark in chunks, and
  a run with nothing new does nothing. Jobs have `max_instances=1` and `coalesce`, and a per-source
  lock guards the whole plan-and-collect, so collections of one source never overlap.
- A failed run is recorded in the ledger (by `finops.collect`) and retried by a one-off job after
  `retry_backoff_seconds`, doubling up to `max_retries` times; the retry re-plans from the ledger.
- The weekly report job (cron, default Monday 06:00 UTC) and the drop-folder scan; alert rules are
  evaluated after every collection and on their own timer.

Time is injected (`clock`, naive UTC) for everything that decides *what* to do; APScheduler's own
timing decides *when*.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from finops.alerts.evaluate import AlertEngine, Evaluation
from finops.attribution import materialize
from finops.collect import SOURCES, AlreadyRunning, RunResult, collect
from finops.scheduler import catchup, focus_drop, weekly_files
from finops.settings import Settings
from finops.settings.alerts import AlertSettings
from finops.settings.schedule import ScheduleSettings, SourceSchedule
from finops.store import Store, retention
from finops.tags import TagRules
from finops.timeutil import Clock

log = logging.getLogger(__name__)


def _aws_credentials(settings: Settings) -> bool:
    try:
        import boto3

        session = boto3.Session(profile_name=settings.aws.profile) if settings.aws.profile else boto3.Session()
        return session.get_credentials() is not None
    except Exception:
        return False


# What "configured" means for a source whose `enabled` is None: all of its checks hold. Sources not
# listed are always on. Each check runs at most once per Jobs (finding AWS credentials can be slow).
CHECKS: dict[str, Callable[[Settings], bool]] = {
    "azure_scopes": lambda s: bool(s.azure.scopes),
    "export_bucket": lambda s: bool(s.aws.export_bucket),
    "aws_credentials": _aws_credentials,
}
CONFIGURED: dict[str, tuple[str, ...]] = {
    "azure": ("azure_scopes",),
    "aws_exports": ("export_bucket", "aws_credentials"),
    "aws_ce": ("aws_credentials",),
    "aws_inventory": ("aws_credentials",),
}


class Jobs:
    """The scheduled work of one `finops serve` process, over one store."""

    def __init__(self, store: Store, settings: Settings, schedule: ScheduleSettings,
                 alerts: AlertSettings | None = None, *, clock: Clock | None = None,
                 sleep: Callable[[float], None] = time.sleep, s3: Any = None):
        self.store, self.settings, self.schedule = store, settings, schedule
        self.clock, self.s3 = clock or store.clock, s3  # one clock: the store's unless given
        checked: dict[str, bool] = {}
        self.sources = {name: s for name, s in schedule.sources.items() if self._enabled(name, s, checked)} \
            if schedule.enabled else {}
        self.alerts = AlertEngine(store, settings, alerts, sleep=sleep, clock=self.clock, watched_sources=list(self.sources)) \
            if alerts is not None and alerts.enabled else None
        self._locks = {name: threading.Lock() for name in self.sources}
        self._active, self._idle = 0, threading.Condition()  # jobs running now (wait_idle)
        self._failures = dict.fromkeys(self.sources, 0)
        self.scheduler = BackgroundScheduler(
            timezone=UTC, executors={"default": ThreadPoolExecutor(schedule.max_workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600})

    def _enabled(self, name: str, s: SourceSchedule, checked: dict[str, bool]) -> bool:
        if name not in SOURCES:
            log.warning("schedule names unknown source %r; known: %s", name, ", ".join(SOURCES))
            return False
        if s.enabled is not None:
            return s.enabled
        for check in CONFIGURED.get(name, ()):
            if check not in checked:
                checked[check] = CHECKS[check](self.settings)
            if not checked[check]:
                log.info("collect %s: not configured (%s); not scheduled", name, check.replace("_", " "))
                return False
        return True

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Add the jobs and start the scheduler thread (jobs run at once when `run_on_start`)."""
        first = datetime.now(UTC) if self.schedule.run_on_start else None
        kw: dict[str, Any] = {"next_run_time": first} if first else {}
        if self.schedule.enabled:
            for name, s in self.sources.items():
                self.scheduler.add_job(self.run_source, IntervalTrigger(seconds=s.every_minutes * 60, timezone=UTC),
                                       args=[name], id=f"collect:{name}", name=f"collect {name}", **kw)
            drop = self.schedule.focus_drop
            if drop.folder is not None:
                self.scheduler.add_job(self.run_focus_drop, IntervalTrigger(seconds=drop.every_minutes * 60,
                                                                            timezone=UTC),
                                       id="focus-drop", name="FOCUS drop folder", **kw)
            if self.schedule.weekly.enabled:
                self.scheduler.add_job(self.run_weekly, weekly_files.trigger(self.schedule.weekly), id="weekly",
                                       name="weekly report", **kw)
            if self.settings.retention_keep_hourly_days is not None:
                self.scheduler.add_job(self.run_retention, CronTrigger(hour=3, minute=30, timezone=UTC),
                                       id="retention", name="hourly detail retention")
        if self.alerts is not None:
            every = self.alerts.config.evaluate_every_minutes * 60
            self.scheduler.add_job(self.run_alerts, IntervalTrigger(seconds=every, timezone=UTC), id="alerts",
                                   name="alert rules")
        if self.attribution_outdated():
            self.scheduler.add_job(self.run_reattribute, DateTrigger(datetime.now(UTC)), id="reattribute",
                                   name="attribution under the configured policy")
        self.scheduler.add_listener(self._count, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
                                    | EVENT_JOB_MISSED)
        self.scheduler.start()
        log.info("scheduler started: %s", ", ".join(j.id for j in self.scheduler.get_jobs()) or "no jobs")

    def shutdown(self, wait: bool = True) -> None:
        """Stop the scheduler; with `wait`, running jobs finish first (collections land or fail whole)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)

    def _count(self, event: JobEvent) -> None:
        with self._idle:
            self._active += 1 if event.code == EVENT_JOB_SUBMITTED else -1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for running jobs to end; False if one still runs."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active <= 0, timeout)

    # -- jobs ------------------------------------------------------------------------------------

    def run_source(self, source: str) -> list[RunResult] | None:
        """Collect `source` for the windows its plan gives now; None when a run of it is under way."""
        lock = self._locks[source]
        if not lock.acquire(blocking=False):
            log.info("collect %s: a run is under way; skipped", source)
            return None
        try:
            results = self._collect(source)
        finally:
            lock.release()
        if results is not None:
            self._after(source, results)
        return results

    def _collect(self, source: str) -> list[RunResult] | None:
        the_plan = catchup.plan(self.store, self.settings, source, self.sources[source], self.clock())
        if the_plan.windows:
            log.info("collect %s: %d window(s) from %s to %s (%s)", source, len(the_plan.windows),
                     the_plan.windows[0].start, the_plan.windows[-1].end, the_plan.reason)
        results: list[RunResult] = []
        for window in the_plan.windows:
            try:
                batch = collect(self.store, self.settings, source, window)
            except AlreadyRunning:  # e.g. started through the API: that run covers the rest
                log.info("collect %s: already running elsewhere in this process; skipped", source)
                return results or None
            results += batch
            if any(r.status == "failed" for r in batch):
                break  # later chunks wait: the watermark must not pass a failed window
        return results

    def _after(self, source: str, results: list[RunResult]) -> None:
        s = self.sources[source]
        if any(r.status == "failed" for r in results):
            self._failures[source] += 1
            n = self._failures[source]
            if n <= s.max_retries:
                delay = s.retry_backoff_seconds * 2 ** (n - 1)
                log.warning("collect %s failed; retry %d of %d in %.0f s", source, n, s.max_retries, delay)
                self.scheduler.add_job(self.run_source, DateTrigger(datetime.now(UTC) + timedelta(seconds=delay)),
                                       args=[source], id=f"retry:{source}", name=f"retry collect {source}",
                                       replace_existing=True)
            else:
                log.warning("collect %s failed %d times; next try at its regular interval", source, n)
        elif results:
            self._failures[source] = 0
        if results:
            self.run_alerts()

    def run_alerts(self) -> Evaluation | None:
        if self.alerts is None:
            return None
        try:
            return self.alerts.evaluate(self.clock())
        except Exception:  # alerting must not break collections; APScheduler would only log it too
            log.exception("alert evaluation failed")
            return None

    def run_weekly(self) -> list[weekly_files.ReportFile]:
        return weekly_files.run(self.store, self.settings, self.schedule.weekly, self.clock(), self.s3)

    def attribution_outdated(self) -> bool:
        """Whether the stored attribution was made under another shared_cost_key or idle_threshold, or
        not for every day."""
        with self.store.transaction() as cur:
            st = materialize.state(cur)
        return not st.complete or not st.holds(self.settings.shared_cost_key, self.settings.idle_threshold)

    def run_reattribute(self) -> int:
        """Attribute the stored days under the configured policy (after an upgrade or a policy change).
        Reports stay right meanwhile: they compute attribution on the fly until it completes."""
        log.info("attribution: re-attributing stored days under shared_cost_key=%s, idle_threshold=%s",
                 self.settings.shared_cost_key, self.settings.idle_threshold)
        days = materialize.rebuild(self.store.transaction, self.settings.shared_cost_key,
                                   idle_threshold=self.settings.idle_threshold)
        log.info("attribution: %d day(s) re-attributed", days)
        return days

    def run_retention(self) -> None:
        """Drop hourly GPU/token detail past the retention (daily rollups stay)."""
        result = retention.apply_retention(self.store, self.settings.retention_keep_hourly_days, self.clock())
        log.info("retention: %s", result)

    def run_focus_drop(self) -> list[RunResult]:
        try:
            results = focus_drop.ingest_pending(self.store, self.schedule.focus_drop, TagRules.from_settings(self.settings))
        except AlreadyRunning:
            return []
        if results:
            self.run_alerts()
        return results
