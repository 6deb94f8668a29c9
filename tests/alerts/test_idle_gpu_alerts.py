"""An idle GPU streak fires one alert to webhook, Slack and Alertmanager receivers, is not repeated
within the resend interval, is re-sent after it, and resolves once the GPU gets busy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from finops.alerts.evaluate import AlertEngine
from finops.batch import Batch, Task
from finops.collect import ingest_focus, run_task
from finops.resources import resource_key
from finops.settings import Settings
from finops.settings.alerts import (
    AlertmanagerChannel,
    AlertSettings,
    Exemptions,
    IdleGpuRule,
    SlackChannel,
    WebhookChannel,
)
from finops.store import Store
from finops.tags import TagRules
from finops.timeutil import Window
from tests.support.example_a import focus_csv
from tests.support.receivers import Receiver

DAY = datetime(2026, 11, 2)
DAILY_COST = Decimal("48.00")
TAGS = {"Project": "chatbot", "Team": "coreai", "Environment": "prod", "ModelID": "llama-70b"}
BUSY_HOURS = 14  # hours 00-13 busy, 14-23 idle: a 10-hour streak at the end of the day


def gpu_batch(start: datetime, busy: list[float], resource: str = "i-idle") -> Batch:
    rows = [{"hour_start": start + timedelta(hours=h), "host": f"host-{resource}", "resource_id": resource,
             "resource_key": resource_key(resource), "gpu_uuid": f"GPU-{resource}", "gpu_index": "0",
             "gpu_model": "NVIDIA L4", "busy": b, "samples": 60} for h, b in enumerate(busy)]
    return Batch(facts={"gpu_hours": pa.Table.from_pylist(rows)})


def land(store: Store, start: datetime, busy: list[float], hours: int | None = None) -> None:
    window = Window(start, start + timedelta(hours=hours or len(busy)))
    batch = gpu_batch(start, busy) if busy else Batch(facts={})  # no GPU answered in this window
    r = run_task(store, "prometheus", Task("gpus", window, lambda: batch))
    assert r.status == "succeeded", r.error


@pytest.fixture
def idle_day(store: Store, rules: TagRules, tmp_path: Path) -> Store:
    bill = tmp_path / "bill.csv"
    bill.write_text(focus_csv(DAY, [("AWS", "Amazon Elastic Compute Cloud", "i-idle", TAGS, str(DAILY_COST))]))
    [r] = ingest_focus(store, rules, [bill])
    assert r.status == "succeeded", r.error
    land(store, DAY, [0.8] * BUSY_HOURS + [0.01] * (24 - BUSY_HOURS))
    return store


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver, Receiver]]:
    with Receiver() as hook, Receiver() as slack, Receiver() as am:
        yield hook, slack, am


def engine(store: Store, settings: Settings, hook: Receiver, slack: Receiver, am: Receiver, **kw: object) -> AlertEngine:
    config = AlertSettings(
        replace_default_rules=True, rules=[IdleGpuRule(min_hours=6, min_idle_cost=Decimal("5"), severity="critical")],
        channels=[WebhookChannel(name="hook", url=hook.url), SlackChannel(name="slack", url=slack.url),
                  AlertmanagerChannel(name="am", url=am.url)],
        resend_after_minutes=60, **kw)  # type: ignore[arg-type]
    return AlertEngine(store, settings, config, sleep=lambda s: None)


def test_idle_streak_fires_once_resends_after_interval_and_resolves(
        idle_day: Store, settings: Settings, receivers: tuple[Receiver, Receiver, Receiver]) -> None:
    hook, slack, am = receivers
    eng = engine(idle_day, settings, *receivers)
    idle_hours = 24 - BUSY_HOURS
    expected_cost = (DAILY_COST / 24 * idle_hours).quantize(Decimal("0.01"))  # hour cost = day cost / 24 GPU-hours
    t0 = DAY + timedelta(days=1, minutes=10)

    ev = eng.evaluate(t0)
    assert [f.rule for f in ev.findings] == ["idle_gpu"]
    assert [len(r.ok()) for r in receivers] == [1, 1, 1]

    body = hook.ok()[0].body
    assert body["status"] == "firing" and body["severity"] == "critical"
    assert Decimal(body["amount"]) == expected_cost
    assert body["dims"] == {"gpu_uuid": "GPU-i-idle", "host": "host-i-idle", "gpu_model": "NVIDIA L4",
                            "project": "chatbot", "team": "coreai", "environment": "prod", "model_id": "llama-70b"}
    assert f"idle for {idle_hours} consecutive hours" in body["summary"] and f"{expected_cost} USD" in body["summary"]
    assert body["link"].startswith("/v1/reports/idle-gpus?")

    slack_body = slack.ok()[0].body
    header = slack_body["blocks"][0]
    assert header["type"] == "header" and header["text"]["text"].startswith("[FIRING] idle_gpu")
    fields = [f["text"] for b in slack_body["blocks"] if b["type"] == "section" for f in b.get("fields", [])]
    assert f"*amount*\n{expected_cost} USD" in fields and "*team*\ncoreai" in fields
    assert str(expected_cost) in slack_body["text"]

    am_req = am.ok()[0]
    assert am_req.path == "/api/v2/alerts"
    [alert] = am_req.body
    assert alert["labels"]["alertname"] == "idle_gpu" and alert["labels"]["gpu_uuid"] == "GPU-i-idle"
    assert alert["labels"]["project"] == "chatbot" and alert["annotations"]["amount"] == f"{expected_cost} USD"
    assert alert["startsAt"] == f"{t0:%Y-%m-%dT%H:%M:%S}Z"
    assert datetime.fromisoformat(alert["endsAt"].rstrip("Z")) > t0 + timedelta(minutes=60)  # alive until resend

    # Within the interval: still firing, nothing sent again.
    ev = eng.evaluate(t0 + timedelta(minutes=30))
    assert len(ev.findings) == 1 and ev.deliveries == []
    assert [len(r.received) for r in receivers] == [1, 1, 1]

    # After the interval: re-sent once to each channel, same instance (same start).
    eng.evaluate(t0 + timedelta(minutes=61))
    assert [len(r.ok()) for r in receivers] == [2, 2, 2]
    assert am.ok()[1].body[0]["startsAt"] == alert["startsAt"]

    # The GPU gets busy in the first hour of the next day: the streak is over.
    land(idle_day, DAY + timedelta(days=1), [0.9])
    t1 = DAY + timedelta(days=1, hours=1, minutes=15)
    ev = eng.evaluate(t1)
    assert ev.findings == [] and ev.resolved == ["idle_gpu|gpu_uuid=GPU-i-idle"]
    assert [len(r.ok()) for r in receivers] == [3, 3, 3]
    assert hook.ok()[2].body["status"] == "resolved"
    assert slack.ok()[2].body["blocks"][0]["text"]["text"].startswith("[RESOLVED]")
    assert am.ok()[2].body[0]["endsAt"] == f"{t1:%Y-%m-%dT%H:%M:%S}Z"

    # Resolved is sent once; the history is in the store.
    eng.evaluate(t1 + timedelta(minutes=15))
    assert [len(r.received) for r in receivers] == [3, 3, 3]
    [(status, amount, started, resolved)] = idle_day.query(
        "SELECT status, amount, started_at, resolved_at FROM alerts")
    assert (status, Decimal(amount).quantize(Decimal("0.01")), started, resolved) == ("resolved", expected_cost, t0, t1)
    kinds = idle_day.query("SELECT kind, status, count(*) FROM alert_deliveries GROUP BY ALL ORDER BY ALL")
    assert kinds == [("firing", "sent", 6), ("resolved", "sent", 3)]


def test_streak_shorter_than_min_hours_or_exempt_gpu_does_not_fire(
        idle_day: Store, settings: Settings, receivers: tuple[Receiver, Receiver, Receiver]) -> None:
    t = DAY + timedelta(days=1, minutes=10)
    short = AlertEngine(idle_day, settings, AlertSettings(replace_default_rules=True, rules=[IdleGpuRule(min_hours=24 - BUSY_HOURS + 1)]))
    assert short.evaluate(t).findings == []
    cheap = AlertEngine(idle_day, settings, AlertSettings(replace_default_rules=True, rules=[IdleGpuRule(min_idle_cost=Decimal("20.01"))]))
    assert cheap.evaluate(t).findings == []
    exempt = AlertEngine(idle_day, settings, AlertSettings(
        replace_default_rules=True, rules=[IdleGpuRule()], exemptions=Exemptions(resource_ids=["arn:aws:ec2:us-east-1:1:instance/i-IDLE"])))
    assert exempt.evaluate(t).findings == []
    defaults = AlertSettings(replace_default_rules=True, rules=[IdleGpuRule()])
    assert len(AlertEngine(idle_day, settings, defaults).evaluate(t).findings) == 1
    # Telemetry collected up to midnight and read at 21:00 (the demo's case): the streak is still current.
    assert len(AlertEngine(idle_day, settings, defaults).evaluate(t + timedelta(hours=21)).findings) == 1
    # A GPU that later collections no longer see for longer than max_silence_hours is gone, not idle.
    land(idle_day, DAY + timedelta(days=1), [], hours=5)  # five more hours collected, without this GPU
    assert AlertEngine(idle_day, settings, defaults).evaluate(t + timedelta(hours=5)).findings == []
