"""Scheduled collections with the real APScheduler: catch-up from the watermark after a restart
(each day exactly once), no overlapping runs of one source, retries with backoff in the ledger, a
failed scope re-collected, the retention bound, and the sources' own restatement windows."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from finops.collect import SOURCES, collect
from finops.scheduler.catchup import plan
from finops.scheduler.jobs import Jobs
from finops.settings import Settings
from finops.settings.schedule import ScheduleSettings, SourceSchedule, default_sources
from finops.store import Store
from finops.store.ledger import runs, start_run, succeed_run, watermark
from finops.timeutil import Window
from tests.support import fake_source
from tests.support.clock import TEST_NOW, FixedClock

pytestmark = pytest.mark.clock  # data and expectations are placed relative to the suite's clock

# The scheduler's and the store's clock: five past an hour, placed by the suite's clock.
NOW = TEST_NOW.replace(minute=5, second=0, microsecond=0)
HOUR_END = NOW.replace(minute=0)
DAY = timedelta(days=1)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> fake_source.State:
    monkeypatch.setitem(SOURCES, "prometheus", "tests.support.fake_source")
    return fake_source.reset()


def schedule(**kw: object) -> ScheduleSettings:
    s = ScheduleSettings(run_on_start=True)
    s.weekly.enabled = False
    s.sources = {"prometheus": SourceSchedule(**{"enabled": True, "align": "hour", "retention_days": 15,  # type: ignore[arg-type]
                                                 "chunk_days": 1, "max_retries": 0, **kw})}
    return s


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_restart_with_a_two_day_old_watermark_catches_up_each_day_once(
        store: Store, settings: Settings, fake: fake_source.State) -> None:
    wm = HOUR_END - 2 * DAY
    [before] = collect(store, settings, "prometheus", Window(wm - DAY, wm))  # the run before the downtime
    assert before.status == "succeeded" and watermark(store, "prometheus") == wm
    fake.fetched.clear()

    jobs = Jobs(store, settings, schedule(), clock=lambda: NOW)  # the job called as its interval fires
    assert [r.status for r in jobs.run_source("prometheus") or []] == ["succeeded", "succeeded"]
    assert jobs.run_source("prometheus") == []  # later runs find nothing to do
    assert fake.windows() == [Window(wm, wm + DAY), Window(wm + DAY, HOUR_END)]
    assert HOUR_END - wm == 2 * DAY
    assert watermark(store, "prometheus") == HOUR_END
    assert [(r.window_start, r.status) for r in runs(store, "prometheus")] == [
        (wm + DAY, "succeeded"), (wm, "succeeded"), (wm - DAY, "succeeded")]
    assert fake.max_active == 1


def test_collections_of_one_source_never_overlap(store: Store, settings: Settings, fake: fake_source.State) -> None:
    fake.delay = 0.3
    # Every run has work (the last hour is re-collected) and the interval is far shorter than a run.
    jobs = Jobs(store, settings, schedule(every_minutes=0.05 / 60, restatement_hours=1, initial_days=1),
                clock=lambda: NOW)
    jobs.start()
    try:
        wait_for(lambda: len(fake.fetched) >= 3)
        side: list[object] = []
        t = threading.Thread(target=lambda: side.append(jobs.run_source("prometheus")))
        wait_for(lambda: fake.active == 1)
        t.start()
        t.join(5)
    finally:
        jobs.shutdown()
    assert side == [None]  # a run already under way: skipped, not queued
    assert fake.max_active == 1
    assert all(r.status == "succeeded" for r in runs(store, "prometheus"))


def test_failed_run_is_retried_with_backoff_and_recorded(
        store: Store, settings: Settings, fake: fake_source.State) -> None:
    fake.fail_next = {"fake": 2}
    jobs = Jobs(store, settings, schedule(every_minutes=60, initial_days=1, max_retries=3, retry_backoff_seconds=0.1),
                clock=lambda: NOW)
    jobs.start()
    try:
        wait_for(lambda: any(r.status == "succeeded" for r in runs(store, "prometheus")))
    finally:
        jobs.shutdown()
    ledger = list(reversed(runs(store, "prometheus")))
    assert [r.status for r in ledger] == ["failed", "failed", "succeeded"]
    assert {(r.window_start, r.window_end) for r in ledger} == {(HOUR_END - DAY, HOUR_END)}
    assert ledger[0].error == "fake source fake: connection refused"
    times = [t for _, _, t in fake.fetched]
    assert times[1] - times[0] >= 0.1 and times[2] - times[1] >= 0.2  # backoff, doubled


def test_a_failed_scope_is_collected_again_although_another_scope_succeeded(
        store: Store, settings: Settings, fake: fake_source.State) -> None:
    fake.scopes = ["a", "b"]
    wm = HOUR_END - 3 * DAY
    collect(store, settings, "prometheus", Window(wm - DAY, wm))
    fake.fetched.clear()
    fake.fail_next = {"b": 1}
    jobs = Jobs(store, settings, schedule(), clock=lambda: NOW)
    first = jobs.run_source("prometheus") or []
    assert [(r.status, r.error) for r in first] == [  # chunk 1 only: a ok, b failed, later chunks wait
        ("succeeded", None), ("failed", "fake source b: connection refused")]
    assert watermark(store, "prometheus") == wm + DAY  # scope a moved the ledger's watermark
    p = plan(store, settings, "prometheus", jobs.sources["prometheus"], NOW)
    assert p.windows[0] == Window(wm, wm + DAY) and p.reason == "retry of a failed window"
    jobs.run_source("prometheus")
    assert fake.windows("b") == [Window(wm, wm + DAY), Window(wm, wm + DAY), Window(wm + DAY, wm + 2 * DAY),
                                 Window(wm + 2 * DAY, HOUR_END)]
    assert plan(store, settings, "prometheus", jobs.sources["prometheus"], NOW).windows == []


def test_catch_up_is_bounded_by_retention(store: Store, settings: Settings, fake: fake_source.State) -> None:
    wm = HOUR_END - 20 * DAY
    collect(store, settings, "prometheus", Window(wm - DAY, wm))
    p = plan(store, settings, "prometheus", schedule().sources["prometheus"], NOW)
    assert len(p.windows) == 15 and p.windows[0].start == HOUR_END - 15 * DAY and p.windows[-1].end == HOUR_END
    assert "limited to 15 days of retention" in p.reason


def test_first_run_goes_back_initial_days(store: Store, settings: Settings, fake: fake_source.State) -> None:
    p = plan(store, settings, "prometheus", schedule(initial_days=2).sources["prometheus"], NOW)
    assert p.reason == "first run" and p.windows == [Window(HOUR_END - 2 * DAY, HOUR_END - DAY),
                                                     Window(HOUR_END - DAY, HOUR_END)]


def test_billing_sources_use_their_restatement_window(store: Store, settings: Settings, clock: FixedClock) -> None:
    ce = default_sources()["aws_ce"]
    now = clock.now = datetime(2026, 11, 23, 7, 30)
    today = datetime(2026, 11, 23)
    first = plan(store, settings, "aws_ce", ce, now)
    assert first.reason == "first run" and first.windows[0].start == today - 31 * DAY and first.windows[-1].end == today
    run_id = start_run(store, "aws_ce", "aws_ce", Window(today - 31 * DAY, today))
    with store.transaction() as cur:
        succeed_run(cur, run_id, 0, 0, 1, None, now)
    again = plan(store, settings, "aws_ce", ce, now)
    # aws_ce.restatement_window: the last `restatement_days` (3) complete days.
    assert again.windows == [Window(today - 3 * DAY, today)] and again.reason == "restatement"
    # Early in a month the previous month is restated too (AWS finalises it then).
    early = plan(store, settings, "aws_ce", ce, datetime(2026, 12, 2, 7))
    assert early.windows[0].start == datetime(2026, 11, 1)
    assert early.windows[-1].end == datetime(2026, 12, 2)


def test_sources_are_scheduled_when_configured(store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: object) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", f"{tmp_path}/none")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", f"{tmp_path}/none")
    assert set(Jobs(store, settings, ScheduleSettings()).sources) == {"prometheus"}

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTINGFAKEKEY01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    azure = settings.model_copy(update={"azure": settings.azure.model_copy(update={"scopes": ["/subscriptions/0000"]})})
    assert set(Jobs(store, azure, ScheduleSettings()).sources) == {"prometheus", "aws_ce", "aws_inventory", "azure"}
    off = ScheduleSettings(sources={"prometheus": {"enabled": False}, "aws_ce": {"every_minutes": 30}})
    jobs = Jobs(store, azure, off)
    assert set(jobs.sources) == {"aws_ce", "aws_inventory", "azure"}
    # Given fields are merged over the defaults of that source.
    assert (jobs.sources["aws_ce"].every_minutes, jobs.sources["aws_ce"].retention_days) == (30, 395)
    assert off.sources["prometheus"].align == "hour"
