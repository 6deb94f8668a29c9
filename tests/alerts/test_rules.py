"""Rule checks on worked example A: untagged spend (198.00, 37.08 %), exemptions by tag and resource
id, cost per 1k generated tokens week over week, and rule configuration errors."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import ValidationError

from finops.alerts.evaluate import AlertEngine
from finops.batch import Batch, Task
from finops.collect import ingest_focus, run_task
from finops.settings import Settings
from finops.settings.alerts import AlertSettings, Exemptions, TokenCostRule, UntaggedSpendRule, WebhookChannel
from finops.store import Store
from finops.tags import TagRules
from finops.timeutil import Window
from tests.support import example_a
from tests.support.receivers import Receiver

NOW = datetime(2026, 11, 3, 6, 0)  # the day after example A
REQUIRED = ("project", "team", "environment", "model_id")


def untagged_expectation(bill: list) -> tuple[Decimal, Decimal]:  # type: ignore[type-arg]
    """(untagged cost, share in % to 2 places) from the bill itself: a line lacking any required tag."""
    total = sum((Decimal(cost) for *_, cost in bill), Decimal(0))
    untagged = sum((Decimal(cost) for _, _, _, tags, cost in bill
                    if {k.lower().replace("modelid", "model_id") for k in (tags or {})} < set(REQUIRED)), Decimal(0))
    return untagged, (untagged / total * 100).quantize(Decimal("0.01"))


def test_untagged_spend_fires_on_example_a(store: Store, settings: Settings, rules: TagRules, tmp_path: Path) -> None:
    example_a.load(store, rules, tmp_path)
    untagged, pct = untagged_expectation(example_a.BILL)
    assert (untagged, pct) == (Decimal("198.00"), Decimal("37.08"))  # worked example A's figures (docs/definitions.md 9), from the bill
    with Receiver() as hook:
        config = AlertSettings(replace_default_rules=True, rules=[UntaggedSpendRule(min_share=Decimal("0.30"))],
                               channels=[WebhookChannel(name="hook", url=hook.url)], link_base="https://finops.example")
        ev = AlertEngine(store, settings, config).evaluate(NOW)
        [body] = [r.body for r in hook.ok()]
    [f] = ev.findings
    assert f.amount == untagged and f.currency == "USD"
    assert Decimal(body["amount"]) == untagged
    assert "Untagged spend 198.00 USD is 37.08% of 534.00 USD" in body["summary"]
    assert Decimal(body["details"]["untagged_share_pct"]) == pct
    assert body["key"] == "untagged_spend|scope=all" and body["dims"] == {"scope": "all"}
    assert body["link"] == "https://finops.example/v1/reports/untagged-spend?start=2026-10-27&end=2026-11-03&scope=all"
    [(status, amount)] = store.query("SELECT status, amount FROM alerts")
    assert status == "firing" and Decimal(amount) == untagged


def test_a_rule_leaving_the_configuration_never_sends_an_all_clear(store: Store, settings: Settings,
                                                                   rules: TagRules, tmp_path: Path) -> None:
    example_a.load(store, rules, tmp_path)
    with Receiver() as hook:
        channels = [WebhookChannel(name="hook", url=hook.url)]
        firing = AlertEngine(store, settings, AlertSettings(
            replace_default_rules=True, rules=[UntaggedSpendRule(min_share=Decimal("0.30"))], channels=channels))
        assert [f.rule for f in firing.evaluate(NOW).findings] == ["untagged_spend"]
        # The rule is switched off while its condition still holds: nothing is true to announce.
        off = AlertSettings.model_validate({"rules": [{"kind": "untagged_spend", "enabled": False}],
                                            "channels": [{"type": "webhook", "name": "hook", "url": hook.url}]})
        ev = AlertEngine(store, settings, off).evaluate(NOW + timedelta(minutes=15))
        # The stale-source default has nothing to say about a store whose only run is a FOCUS file.
        assert ev.resolved == [] and ev.retired == ["untagged_spend|scope=all"]
        sent = [(r.body["rule"], r.body["status"]) for r in hook.ok()]
        assert ("untagged_spend", "firing") in sent and ("untagged_spend", "resolved") not in sent
        assert {status for _, status in sent} == {"firing"}  # no RESOLVED of anything
    assert store.query("SELECT status, retired FROM alerts WHERE rule = 'untagged_spend'") == [("resolved", True)]


def test_thresholds_share_or_amount(store: Store, settings: Settings, rules: TagRules, tmp_path: Path) -> None:
    example_a.load(store, rules, tmp_path)

    def fires(**kw: object) -> bool:
        return bool(AlertEngine(store, settings, AlertSettings(replace_default_rules=True, rules=[UntaggedSpendRule(**kw)])).evaluate(NOW).findings)  # type: ignore[arg-type]

    assert fires(min_share=Decimal("0.37"))
    assert not fires(min_share=Decimal("0.38"))
    assert fires(min_share=None, min_amount=Decimal("198"))
    assert not fires(min_share=None, min_amount=Decimal("198.01"))
    # The window ends before the data: nothing to say.
    assert AlertEngine(store, settings, AlertSettings(replace_default_rules=True, rules=[UntaggedSpendRule()])).evaluate(
        datetime(2026, 11, 2, 12)).findings == []


def test_exemptions_by_tag_and_resource_id(store: Store, settings: Settings, rules: TagRules, tmp_path: Path) -> None:
    bill = [list(line) for line in example_a.BILL]
    bill[4][3] = {"FinOps-Ignore": "TRUE"}  # i-gpu4: exempt by tag (key and value case-insensitive)
    path = tmp_path / "bill.csv"
    path.write_text(example_a.focus_csv(example_a.DAY, [tuple(line) for line in bill]))
    [r] = ingest_focus(store, rules, [path])
    assert r.status == "succeeded", r.error
    exemptions = Exemptions(resource_ids=["bucket-logs"])  # and bucket-logs by id; the default tag rule stays
    [f] = AlertEngine(store, settings, AlertSettings(replace_default_rules=True, rules=[UntaggedSpendRule()], exemptions=exemptions)).evaluate(NOW).findings
    # Left: i-gpu2 (120 untagged) of 534 - 48 - 30.
    assert f.amount == Decimal("120")
    assert f.details["total_cost"] == Decimal("456")
    assert "26.32%" in f.summary  # 120 / 456


def add_week_later(store: Store, rules: TagRules, tmp_path: Path, gpu1_cost: str) -> None:
    """Example A again one week later, with i-gpu1 costing `gpu1_cost` (same tokens)."""
    day = example_a.DAY + timedelta(days=7)
    bill = [(p, s, rid, tags, gpu1_cost if rid == "i-gpu1" else cost) for p, s, rid, tags, cost in example_a.BILL]
    path = tmp_path / "week2.csv"
    path.write_text(example_a.focus_csv(day, bill))
    [r] = ingest_focus(store, rules, [path])
    assert r.status == "succeeded", r.error
    facts: dict[str, pa.Table] = example_a.telemetry(day)
    t = run_task(store, "prometheus", Task("example-a", Window(day, day + timedelta(days=1)), lambda: Batch(facts=facts)))
    assert t.status == "succeeded", t.error


def test_token_cost_week_over_week(store: Store, settings: Settings, rules: TagRules, tmp_path: Path) -> None:
    example_a.load(store, rules, tmp_path)
    add_week_later(store, rules, tmp_path, "300.00")
    now = example_a.DAY + timedelta(days=8, hours=3)
    gen = Decimal(4_000_000)  # llama-70b's generated tokens per day (docs/definitions.md 9)
    before, after = Decimal("240") / (gen / 1000), Decimal("300") / (gen / 1000)
    pct = ((after - before) / before * 100).quantize(Decimal("0.01"))
    [f] = AlertEngine(store, settings, AlertSettings(replace_default_rules=True, rules=[TokenCostRule(min_increase_pct=Decimal("20"))])).evaluate(now).findings
    assert f.key == "token_cost|model_id=llama-70b" and f.dims == {"model_id": "llama-70b"}
    assert f.details["increase_pct"] == pct == Decimal("25.00")
    assert f.amount == (after - before) * gen / 1000 == Decimal("60")
    assert "rose 25.00% week over week: 0.060000 -> 0.075000 USD" in f.summary
    # Mistral's cost per token did not change; a higher threshold silences llama too.
    assert AlertEngine(store, settings, AlertSettings(replace_default_rules=True, rules=[TokenCostRule(min_increase_pct=Decimal("25"))])).evaluate(now).findings == []


def test_rule_configuration_errors_name_the_problem() -> None:
    with pytest.raises(ValidationError, match="set min_share, min_amount or both"):
        UntaggedSpendRule(min_share=None)
    with pytest.raises(ValidationError, match="group_by: choose from"):
        TokenCostRule(group_by=("region",))
    with pytest.raises(ValidationError, match="rule names must be unique; repeated: untagged_spend"):
        AlertSettings(replace_default_rules=True, rules=[UntaggedSpendRule(), UntaggedSpendRule(min_share=Decimal("0.5"))])
    config = AlertSettings.model_validate({"rules": [{"kind": "idle_gpu", "min_hours": 8, "name": "idle-8h"}],
                                           "channels": [{"type": "slack", "name": "ops", "url": "https://hooks.slack.example/x"}]})
    # A listed rule joins the defaults (a new name here), it does not silently replace all six.
    assert [r.name for r in config.rules] == ["untagged_spend", "idle_gpu", "stale_source", "token_cost", "budget",
                                              "anomaly", "idle-8h"]
    assert config.channels[0].type == "slack"
    replaced = AlertSettings.model_validate({"rules": [{"kind": "idle_gpu", "min_hours": 8},
                                                       {"kind": "token_cost", "enabled": False}]})
    assert [(r.name, r.enabled) for r in replaced.rules] == [
        ("untagged_spend", True), ("stale_source", True), ("budget", True), ("anomaly", True), ("idle_gpu", True),
        ("token_cost", False)]
    assert [r.name for r in replaced.active_rules()] == ["untagged_spend", "stale_source", "budget", "anomaly",
                                                         "idle_gpu"]
    assert "hooks.slack" not in repr(config)  # channel URLs are secrets
