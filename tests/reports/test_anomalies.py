"""Anomalies on a labelled synthetic history: six teams with weekly seasonality and +-4 % daily noise
for four weeks of history and two weeks scored, with known anomalies injected in the scored weeks (a
runaway node, a price change that persists, a token drop, a stopped workload) and one too small to
matter. Detection is measured against the labels (docs/definitions.md 6.6 records the figures).

Floor: precision and recall of at least 0.9 per (team, day). The injected changes move a day by 60 %
or more; the noise moves it by at most 4 % around a weekday's level, and the scale is floored at 5 %
of the baseline, so a change must pass 17.5 % (3.5 x 5 %) to count: there is room on both sides, and
a detector missing that margin is broken, not unlucky."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from finops.batch import Batch, Task
from finops.collect import ingest_focus, run_task
from finops.reports.anomalies import anomalies
from finops.reports.model import Report
from finops.reports.params import build_params
from finops.resources import resource_key
from finops.settings import Settings
from finops.store import Store
from finops.tags import TagRules
from finops.timeutil import Window
from tests.reports.test_workbook import _both, check_sheet

START = datetime(2026, 9, 7)  # a Monday; 28 days of history, then the 14 scored days
HISTORY, SCORED = 28, 14
WINDOW0 = START + timedelta(days=HISTORY)
TEAMS = {"t0": 400, "t1": 300, "t2": 500, "t3": 250, "t4": 350, "small": 10}  # daily cost on a weekday
WEEKEND = Decimal("0.6")


def scenario() -> tuple[dict[tuple[str, int], Decimal], dict[tuple[str, int], int], set[tuple[str, int]]]:
    """Daily cost and generated tokens per (team, day index), and the labelled anomalies."""
    rng = random.Random(11)
    cost, tokens, labels = {}, {}, set()
    for team, base in TEAMS.items():
        for i in range(HISTORY + SCORED):
            day = START + timedelta(days=i)
            season = WEEKEND if day.weekday() >= 5 else Decimal(1)
            c = Decimal(base) * season * Decimal(1 + rng.uniform(-0.04, 0.04))
            n = int(base * 20_000 * float(season) * (1 + rng.uniform(-0.04, 0.04)))
            k = i - HISTORY  # index in the scored window
            if team == "t1" and k == 3:
                c *= Decimal("2.5")  # a runaway idle node: cost up, tokens not
            if team == "t2" and k >= 8:
                c *= Decimal("1.6")  # a price change that stays
            if team == "t3" and k == 5:
                n = int(n * 0.3)  # tokens drop while the GPUs still bill: cost per 1k up
            if team == "t4" and k == 10:
                c *= Decimal("0.2")  # the workload stopped
            if team == "small" and k == 6:
                c *= 3  # +20 a day: below min_deviation, nobody is paged
            cost[(team, i)], tokens[(team, i)] = c.quantize(Decimal("0.01")), n
            if k >= 0 and ((team == "t1" and k == 3) or (team == "t2" and k >= 8) or (team == "t3" and k == 5)
                           or (team == "t4" and k == 10)):
                labels.add((team, k))
    return cost, tokens, labels


def tokens_of(team: str, i: int) -> int:
    return scenario()[1][(team, i)]


def land(store: Store, rules: TagRules, tmp: Path, cost: dict[tuple[str, int], Decimal],
         tokens: dict[tuple[str, int], int]) -> None:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["BilledCost", "EffectiveCost", "BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd",
                "ChargeCategory", "ServiceName", "BillingAccountId", "ProviderName", "ResourceId", "Tags"])
    for (team, i), c in sorted(cost.items()):
        day = START + timedelta(days=i)
        tags = {"project": "p", "team": team, "environment": "prod", "model_id": "m"}
        w.writerow([c, c, "USD", f"{day:%Y-%m-%d}T00:00:00Z", f"{day + timedelta(days=1):%Y-%m-%d}T00:00:00Z",
                    "Usage", "EC2", "acct", "AWS", f"i-{team}", json.dumps(tags)])
    path = tmp / "bill.csv"
    path.write_text(out.getvalue())
    [r] = ingest_focus(store, rules, [path])
    assert r.status == "succeeded" and r.quarantined == 0, r.error
    rows = [{"hour_start": START + timedelta(days=i), "instance": f"{team}:8000", "resource_id": f"i-{team}",
             "resource_key": resource_key(f"i-{team}"), "model_name": "m", "project": "p", "team": team,
             "environment": "prod", "model_id": "m", "prompt_tokens": n, "generation_tokens": n, "requests": 1}
            for (team, i), n in tokens.items()]
    window = Window(START, START + timedelta(days=HISTORY + SCORED))
    task = Task("synthetic", window, lambda: Batch(facts={"token_hours": pa.Table.from_pylist(rows)}))
    assert run_task(store, "prometheus", task).status == "succeeded"


@pytest.fixture(scope="module")
def computed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, set[tuple[str, int]]]:
    from finops.store import open_store

    tmp = tmp_path_factory.mktemp("anomalies")
    settings = Settings(db=tmp / "finops.duckdb")
    store = open_store(settings.db, settings.duckdb)
    try:
        cost, tokens, labels = scenario()
        land(store, TagRules.from_settings(settings), tmp, cost, tokens)
        params = build_params(start=WINDOW0.date(), end=(WINDOW0 + timedelta(days=SCORED)).date(), group_by="team")
        report = anomalies(store, settings, params)
    finally:
        store.close()
    return report, labels


@pytest.fixture(scope="module")
def found(computed: tuple[Report, set[tuple[str, int]]]) -> tuple[list[dict[str, Any]], set[tuple[str, int]]]:
    return computed[0].rows, computed[1]


def test_the_workbook_formats_each_number_and_equals_the_json(computed: tuple[Report, set[tuple[str, int]]]) -> None:
    report, _ = computed
    data, wb = _both(report)
    assert check_sheet(wb["anomalies"], data["rows"]) > 0


def test_detection_meets_its_floor_on_labelled_data(found: tuple[list[dict[str, Any]], set[tuple[str, int]]]) -> None:
    rows, labels = found
    predicted = {(r["team"], (r["day"] - WINDOW0.date()).days) for r in rows}
    hits = predicted & labels
    precision, recall = len(hits) / len(predicted), len(hits) / len(labels)
    print(f"\nanomalies: precision {precision:.2f}, recall {recall:.2f} ({len(labels)} labelled team-days)")
    assert precision >= 0.9 and recall >= 0.9, (sorted(predicted - labels), sorted(labels - predicted))
    assert not any(r["team"] == "small" for r in rows)  # +20 a day pages nobody


def test_each_kind_is_found_by_the_metric_that_moved(found: tuple[list[dict[str, Any]], set[tuple[str, int]]]) -> None:
    rows, _ = found
    by = {(r["team"], (r["day"] - WINDOW0.date()).days, r["metric"]): r for r in rows}
    runaway = by[("t1", 3, "cost")]
    assert runaway["score"] > 3.5 and runaway["value"] > runaway["expected_high"]
    assert runaway["contributors"][0]["resource"] == "i-t1" and runaway["contributors"][0]["change"] > 0
    assert runaway["contributors"][0]["measure"] == "cost"
    assert ("t3", 5, "cost_per_1k_generated_tokens") in by and ("t3", 5, "cost") not in by  # the token drop
    [moved] = [c for c in by[("t3", 5, "cost_per_1k_generated_tokens")]["contributors"]
               if c["measure"] == "generation_tokens"]
    assert moved["resource"] == "i-t3" and moved["change"] < 0 and moved["value"] == tokens_of("t3", HISTORY + 5)
    stopped = by[("t4", 10, "cost")]
    assert stopped["score"] < -3.5 and stopped["deviation"] < 0
    assert stopped["deviation_cost"] == abs(stopped["deviation"])
    assert all(("t2", k, "cost") in by for k in range(8, SCORED))  # the price change, every day after it


def test_a_team_scoped_filter_sees_only_its_team(tmp_path: Path, store: Store, settings: Settings,
                                                  rules: TagRules) -> None:
    cost, tokens, _ = scenario()
    land(store, rules, tmp_path, cost, tokens)
    params = build_params(start=WINDOW0.date(), end=(WINDOW0 + timedelta(days=SCORED)).date(),
                          group_by="team", filters={"team": "t4"})
    rows = anomalies(store, settings, params).rows
    assert {r["team"] for r in rows} == {"t4"} and rows


def test_a_workload_that_stopped_billing_is_found_under_a_team_filter_too(
        store: Store, settings: Settings, rules: TagRules, tmp_path: Path) -> None:
    """The bill ends where it ends for everyone: a team with no lines on days others were billed
    stopped (cost 0, an anomaly), filtered or not; days nobody was billed yet are not scored."""
    from datetime import date

    from tests.support.daily import land_daily

    first, stop, end = date(2026, 10, 1), date(2026, 11, 10), date(2026, 11, 12)
    cost = {(team, first + timedelta(days=i)): Decimal(level) for team, level in (("v", "300.00"), ("w", "200.00"))
            for i in range((end - first).days) if team == "v" or first + timedelta(days=i) < stop}
    land_daily(store, rules, tmp_path, cost, {})
    for filters in ({}, {"team": "w"}):
        params = build_params(start=date(2026, 11, 8), end=date(2026, 11, 15), group_by="team", filters=filters)
        found = {(r["team"], r["day"], r["value"]) for r in anomalies(store, settings, params).rows}
        assert found == {("w", date(2026, 11, 10), Decimal(0)), ("w", date(2026, 11, 11), Decimal(0))}, filters
