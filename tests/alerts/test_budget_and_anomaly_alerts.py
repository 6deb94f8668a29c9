"""The budget and anomaly alert kinds through a real webhook receiver: a forecast crossing a budget
before the actual does, across a month boundary (fires once, resolves when the forecast drops), and
an anomalous day that fires and resolves when it leaves the rule's look-back."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from finops.alerts.evaluate import AlertEngine
from finops.settings import Settings
from finops.settings.alerts import AlertSettings, AnomalyRule, BudgetRule, WebhookChannel
from finops.store import Store
from finops.store.budgets import BudgetSpec, save_budget
from finops.tags import TagRules
from tests.support.daily import Series, land_daily
from tests.support.receivers import Receiver


def at(d: date) -> datetime:
    return datetime.combine(d, datetime.min.time()) + timedelta(hours=6)


def noisy(rng: random.Random, level: int) -> Decimal:
    return (Decimal(level) * Decimal(1 + rng.uniform(-0.03, 0.03))).quantize(Decimal("0.01"))


def test_a_forecast_crossing_fires_once_before_the_actual_and_resolves_when_it_drops(
        store: Store, settings: Settings, rules: TagRules, tmp_path: Path) -> None:
    # 80 a day until 24 October, 160 a day from 25 October (October stays under 4,000), 40 a day
    # from 6 November: November's forecast passes 4,000 early, then falls back.
    rng = random.Random(3)
    cost: Series = {}
    d = date(2026, 9, 1)
    while d < date(2026, 11, 20):
        cost[("t", d)] = noisy(rng, 80 if d < date(2026, 10, 25) else 160 if d < date(2026, 11, 6) else 40)
        d += timedelta(days=1)
    land_daily(store, rules, tmp_path, cost, {})
    save_budget(store, "t monthly", BudgetSpec(filters={"team": "t"}, amount=Decimal(4000),
                                               actual_thresholds=[Decimal(100)]), at(date(2026, 9, 1)))
    with Receiver() as hook:
        engine = AlertEngine(store, settings, AlertSettings(
            replace_default_rules=True, rules=[BudgetRule()], channels=[WebhookChannel(name="hook", url=hook.url)],
            resend_after_minutes=7 * 24 * 60))  # a weekly reminder: the next day's evaluation sends nothing
        october = engine.evaluate(at(date(2026, 11, 1)))  # October complete: 3,040-ish of 4,000
        fired = engine.evaluate(at(date(2026, 11, 5)))
        again = engine.evaluate(at(date(2026, 11, 6)))
        dropped = engine.evaluate(at(date(2026, 11, 14)))
        sent = [(r.body["status"], r.body["key"]) for r in hook.ok()]
    assert october.findings == []
    [f] = fired.findings
    key = "budget|basis=forecast|budget=t monthly|period_start=2026-11-01|threshold=100"
    assert f.key == key and f.dims["team"] == "t" and f.amount is not None and f.amount > 4000
    assert f.details["actual_cost"] < Decimal(1000)  # the actual is far from the threshold
    assert "forecast to spend" in f.summary and "t monthly" in f.summary
    assert [x.key for x in again.findings] == [key] and again.started == []
    assert dropped.findings == [] and dropped.resolved == [key]
    assert sent == [("firing", key), ("resolved", key)]  # once each, over four evaluations


def test_an_anomalous_day_fires_and_resolves_when_it_leaves_the_look_back(
        store: Store, settings: Settings, rules: TagRules, tmp_path: Path) -> None:
    rng = random.Random(4)
    cost: Series = {}
    for i in range(40):
        d = date(2026, 10, 5) + timedelta(days=i)
        cost[("u", d)] = noisy(rng, 60 if d.weekday() >= 5 else 100) * (4 if d == date(2026, 11, 12) else 1)
        cost[("v", d)] = noisy(rng, 200)
    land_daily(store, rules, tmp_path, cost, {})
    with Receiver() as hook:
        engine = AlertEngine(store, settings, AlertSettings(
            replace_default_rules=True, rules=[AnomalyRule()], channels=[WebhookChannel(name="hook", url=hook.url)]))
        fired = engine.evaluate(at(date(2026, 11, 13)))
        gone = engine.evaluate(at(date(2026, 11, 15)))
        bodies = [r.body for r in hook.ok()]
    [f] = fired.findings
    assert f.key == "anomaly|day=2026-11-12|metric=cost|team=u"
    assert f.dims == {"team": "u", "metric": "cost", "day": "2026-11-12"}
    assert f.details["value"] == cost[("u", date(2026, 11, 12))] and f.details["score"] > 3.5
    assert "largest changes: i-u +" in f.summary
    # The data ends on 13 November: the 14th is not billed yet, which is not a stopped workload.
    assert gone.findings == [] and gone.resolved == [f.key]
    assert [(b["status"], b["key"]) for b in bodies] == [("firing", f.key), ("resolved", f.key)]
