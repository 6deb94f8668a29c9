"""A source that stops answering raises a stale alert: a real Prometheus collected on schedule, then
stopped; the failed runs are in the ledger and the alert (with the last error) reaches the webhook."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from finops.scheduler.jobs import Jobs
from finops.settings import Settings
from finops.settings.alerts import AlertSettings, StaleSourceRule, WebhookChannel
from finops.settings.schedule import ScheduleSettings, SourceSchedule
from finops.store import Store
from finops.store.ledger import runs
from tests.support.clock import FixedClock
from tests.support.prometheus import PrometheusServer
from tests.support.receivers import Receiver

pytestmark = pytest.mark.clock  # data and expectations are placed relative to the suite's clock


def test_source_that_stops_answering_raises_stale_alert(store: Store, settings: Settings, clock: FixedClock,
                                                        tmp_path: Path) -> None:
    (tmp_path / "tsdb").mkdir()
    schedule = ScheduleSettings()
    # Re-collect the last 2 hours on every run, so a run after the outage has something to ask.
    schedule.sources = {"prometheus": SourceSchedule(enabled=True, align="hour", restatement_hours=2, initial_days=1,
                                                     max_retries=0)}
    with PrometheusServer(tmp_path / "tsdb") as prom, Receiver() as hook:
        s = settings.model_copy(update={"prometheus": settings.prometheus.model_copy(
            update={"url": prom.url, "max_retries": 0, "timeout_seconds": 2.0})})
        alerts = AlertSettings(replace_default_rules=True, rules=[StaleSourceRule(max_age_hours=30, per_source_hours={"prometheus": 3})],
                               channels=[WebhookChannel(name="hook", url=hook.url)])
        jobs = Jobs(store, s, schedule, alerts, clock=clock)

        first = jobs.run_source("prometheus")
        assert first and all(r.status == "succeeded" for r in first)
        prom.stop()  # the source stops answering
        [failed] = jobs.run_source("prometheus") or []
        assert failed.status == "failed" and failed.error
        assert hook.received == []  # evaluated after the run, but not stale yet: 3 h are allowed

        clock.advance(timedelta(hours=3, minutes=30))  # the store's clock and the scheduler's are one
        ev = jobs.run_alerts()
        assert ev is not None
        [f] = ev.findings
        assert f.key == "stale_source|source=prometheus" and f.link == "/v1/sources"
        [body] = [r.body for r in hook.ok()]
        assert body["dims"] == {"source": "prometheus"}
        assert "Source prometheus is stale: no successful collection for 3.5 h (allowed 3 h)" in body["summary"]
        assert f"last error: {failed.error}" in body["summary"]

    statuses = [r.status for r in runs(store, "prometheus")]
    assert statuses.count("failed") == 1 and statuses[0] == "failed"
    # The scheduler's retry job was not added (max_retries=0) and nothing is left running.
    assert jobs.scheduler.get_job("retry:prometheus") is None


def test_a_watched_source_that_never_ran_is_stale_only_after_its_allowed_age(store: Store, settings: Settings) -> None:
    from finops.alerts.evaluate import AlertEngine

    t0 = datetime(2026, 11, 23, 8)
    rule = StaleSourceRule(max_age_hours=30)
    eng = AlertEngine(store, settings, AlertSettings(replace_default_rules=True, rules=[rule]), clock=lambda: t0, watched_sources=["azure", "focus"])
    assert eng.evaluate(t0 + timedelta(hours=29)).findings == []
    [f] = eng.evaluate(t0 + timedelta(hours=31)).findings  # focus (manual ingests) is excluded by default
    assert f.dims == {"source": "azure"}
    assert f.summary == "Source azure is stale: no successful collection for 31.0 h (allowed 30 h); last success never."
