"""A GPU shared by time-slicing is split between its workloads by each one's measured busy share
(`time_share`, docs/definitions.md 6.2): the bill, hour cost, usage and idle cost follow the shares;
the idle GPUs report counts the physical GPU's hours once."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from finops.attribution.stored import attribute_stored
from finops.batch import Batch, Task
from finops.collect import ingest_focus, run_task
from finops.reports import get, idle_gpus
from finops.reports.model import snapshot
from finops.reports.params import build_params
from finops.settings import Settings
from finops.store import Store
from finops.tags import TagRules
from finops.timeutil import Window

DAY = date(2026, 11, 2)
H100 = "NVIDIA H100 80GB HBM3"
START = datetime.combine(DAY, datetime.min.time())


def hour(h: int, pod: str, team: str, busy: float, share: float) -> dict[str, object]:
    return {"hour_start": START + timedelta(hours=h), "host": "node-ts", "resource_id": "i-ts", "resource_key": "i-ts",
            "gpu_uuid": "GPU-ts", "gpu_index": "0", "gpu_model": H100, "namespace": "llm", "pod": pod,
            "project": "p", "team": team, "environment": "prod", "model_id": f"m-{team}", "busy": busy,
            "samples": 60, "time_share": share}


def land(store: Store, rules: TagRules, tmp: Path) -> None:
    """`i-ts`, one H100 billed 96.00 for the day (4.00 a GPU-hour) without a team, time-sliced between
    pod a (alpha) and pod b (beta): busy 0.8 from 00:00 to 12:00 with a measured 3:1 share, then idle
    with the time split evenly."""
    bill = tmp / "bill.csv"
    bill.write_text("BilledCost,EffectiveCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,"
                    "ServiceName,BillingAccountId,ProviderName,ResourceId,ConsumedQuantity,ConsumedUnit\n"
                    f"96.00,96.00,USD,{DAY}T00:00:00Z,{DAY + timedelta(days=1)}T00:00:00Z,Usage,EC2,acct,AWS,i-ts,"
                    "24,Hours\n")
    [r] = ingest_focus(store, rules, [bill])
    assert r.status == "succeeded"
    rows = [hour(h, "a", "alpha", 0.8, 0.75) for h in range(12)] + [hour(h, "b", "beta", 0.8, 0.25) for h in range(12)]
    rows += [hour(h, pod, team, 0.0, 0.5) for h in range(12, 24) for pod, team in (("a", "alpha"), ("b", "beta"))]
    task = Task("ts", Window(START, START + timedelta(days=1)),
                lambda: Batch(facts={"gpu_hours": pa.Table.from_pylist(rows)}))
    assert run_task(store, "prometheus", task).status == "succeeded"


@pytest.mark.parametrize("shared_cost_key", ["gpu_hours", "tokens"])  # stored attribution, then on the fly
def test_a_time_sliced_gpu_splits_by_measured_busy_share(store: Store, settings: Settings, rules: TagRules,
                                                         tmp_path: Path, shared_cost_key: str) -> None:
    land(store, rules, tmp_path)
    params = build_params(start=DAY, end=DAY + timedelta(days=1), shared_cost_key=shared_cost_key)
    ue = {r["team"]: r for r in get("unit-economics")(store, settings, params.model_copy(
        update={"group_by": ("team",)})).rows}
    # The bill by GPU-hours weighted by share: alpha 12 x 0.75 + 12 x 0.5 = 15 of 24, beta 9 of 24.
    assert (ue["alpha"]["cost"], ue["beta"]["cost"]) == (Decimal("60"), Decimal("36"))
    # Usage: 4.00 an hour x share x 0.8 busy over 12 hours; idle: 4.00 x 0.5 over the 12 idle hours.
    assert (ue["alpha"]["usage_cost"], ue["beta"]["usage_cost"]) == (Decimal("28.8"), Decimal("9.6"))
    assert ue["alpha"]["idle_cost"] == ue["beta"]["idle_cost"] == Decimal("24")
    # Each workload held a GPU (a slice of its time) for 24 hours, at the GPU's busy fraction.
    assert ue["alpha"]["gpu_hours"] == ue["beta"]["gpu_hours"] == 24 and ue["alpha"]["avg_gpu_busy"] == 0.4

    [gpu] = get("idle-gpus")(store, settings, params).rows
    # One physical GPU: 24 hours observed (not 48), 12 idle in one streak, 48.00 of idle cost.
    assert (gpu["gpu_uuid"], gpu["hours_observed"], gpu["idle_hours"]) == ("GPU-ts", 24, 12)
    assert (gpu["idle_cost"], gpu["longest_idle_streak_hours"], gpu["avg_busy"]) == (Decimal("48"), 12, 0.4)
    assert gpu["last_busy_at"] == START + timedelta(hours=11)
    # A dim filter keeps one workload's part of the GPU: its hours, its idle cost.
    beta = get("idle-gpus")(store, settings, params.model_copy(update={"filters": {"team": "beta"}})).rows
    assert [(g["hours_observed"], g["idle_cost"]) for g in beta] == [(24, Decimal("24"))]


def test_a_time_sliced_gpus_hour_costs_add_up_to_the_gpus(store: Store, settings: Settings, rules: TagRules,
                                                          tmp_path: Path) -> None:
    land(store, rules, tmp_path)
    with store.transaction() as cur:
        rows = cur.execute("SELECT pod, time_share, hours, hour_cost_effective FROM attr_gpu ORDER BY 1, 2").fetchall()
    # A workload's hours of one share are one row: hour cost 4.00 x share.
    assert rows == [("a", 0.5, 12, Decimal(2)), ("a", 0.75, 12, Decimal(3)), ("b", 0.25, 12, Decimal(1)),
                    ("b", 0.5, 12, Decimal(2))]
    assert sum(h * c for _, _, h, c in rows) == Decimal("96")


def test_a_time_sliced_gpus_hours_match_its_bill(store: Store, settings: Settings, rules: TagRules,
                                                 tmp_path: Path) -> None:
    """The bill's 24 hours were all reported, though each pod's hours are two rollup rows (one per share)."""
    land(store, rules, tmp_path)
    check = get("bill-check")(store, settings, build_params(start=DAY, end=DAY + timedelta(days=1)))
    assert check.tables["gpu_hour_gaps"] == []


def test_the_week_before_in_the_weekly_report_takes_idle_cost_from_gpu_days(store: Store, settings: Settings,
                                                                            rules: TagRules, tmp_path: Path) -> None:
    """The weekly report reads the week before's idle cost per GPU from its GPU-days (hour cost times
    idle hours); it must equal what the idle GPUs report adds up from the hours."""
    land(store, rules, tmp_path)  # 2026-11-02, a Monday: idle from 12:00, 4.00 a GPU-hour
    week = build_params(start=DAY, end=DAY + timedelta(days=7))
    hourly = get("idle-gpus")(store, settings, week)
    assert hourly.totals["idle_cost"] == Decimal("48")
    with snapshot(store) as cur:
        att = attribute_stored(cur, week, settings, hourly=False)
        daily = idle_gpus.idle_cost(cur, att, week)
    assert {(r["gpu_uuid"], r["mig_instance"]): r["idle_cost"] for r in daily.rows} == \
        {(r["gpu_uuid"], r["mig_instance"]): r["idle_cost"] for r in hourly.rows}
    next_week = build_params(start=DAY + timedelta(days=7), end=DAY + timedelta(days=14))
    summary = {r["metric"]: r for r in get("weekly")(store, settings, next_week).tables["summary"]}
    assert summary["idle_cost"]["previous_week"] == Decimal("48")
