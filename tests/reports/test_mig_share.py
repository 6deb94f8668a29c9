"""A MIG instance's hour cost is its share of the physical GPU's hour cost, by its profile's compute
slices (docs/definitions.md 6.2): idle and unit economics per instance; whole GPUs are unchanged."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from finops.batch import Batch, Task
from finops.collect import run_task
from finops.reports import get
from finops.reports.params import build_params
from finops.resources import resource_key
from finops.settings import Settings
from finops.store import Store
from finops.tags import TagRules
from finops.timeutil import Window
from tests.support.daily import land_daily

DAY = date(2026, 11, 2)
A100 = "NVIDIA A100 80GB PCIe"
# (resource, gpu uuid, MIG profile, MIG instance, busy, team label)
GPUS = [("i-mig", "GPU-m", "3g.40gb", "1", 0.5, "alpha"),
        ("i-mig", "GPU-m", "2g.20gb", "2", 0.0, "beta"),
        ("i-mig", "GPU-m", "2g.20gb", "3", 0.8, "alpha"),
        ("i-whole", "GPU-w0", None, None, 0.5, "gamma"),
        ("i-whole", "GPU-w1", None, None, 0.0, "gamma")]


def land(store: Store, rules: TagRules, tmp: Path) -> None:
    # A MIG'd A100 node at 168.00 a day (7.00 a GPU-hour, 1.00 a slice-hour) and a two-GPU node at 96.00.
    land_daily(store, rules, tmp, {("mig", DAY): Decimal("168.00"), ("whole", DAY): Decimal("96.00")}, {})
    start = datetime.combine(DAY, datetime.min.time())
    rows = [{"hour_start": start + timedelta(hours=h), "host": f"host-{res}", "resource_id": res,
             "resource_key": resource_key(res), "gpu_uuid": uuid, "gpu_index": "0", "gpu_model": A100, "busy": busy,
             "samples": 60, "mig_profile": profile, "mig_instance": instance, "team": team}
            for res, uuid, profile, instance, busy, team in GPUS for h in range(24)]
    task = Task("mig", Window(start, start + timedelta(days=1)), lambda: Batch(facts={"gpu_hours": pa.Table.from_pylist(rows)}))
    assert run_task(store, "prometheus", task).status == "succeeded"


def test_mig_instances_cost_their_slices_of_the_gpu(store: Store, settings: Settings, rules: TagRules,
                                                    tmp_path: Path) -> None:
    land(store, rules, tmp_path)
    params = build_params(start=DAY, end=DAY + timedelta(days=1))
    idle = {(r["gpu_uuid"], r["mig_instance"]): r for r in get("idle-gpus")(store, settings, params).rows}
    # 3g of 7 slices: 3.00 an hour; each 2g instance 2.00; the three add up to the GPU's 7.00.
    assert idle[("GPU-m", "1")]["idle_cost"] == 0 and idle[("GPU-m", "2")]["idle_cost"] == Decimal("48")
    assert idle[("GPU-m", "2")]["idle_hours"] == 24 and idle[("GPU-m", "2")]["mig_profile"] == "2g.20gb"
    # Whole GPUs keep the resource's cost over its GPU-hours: 96 / 48 = 2.00 an hour.
    assert idle[("GPU-w1", None)]["idle_cost"] == Decimal("48")
    ue = {r["team"]: r for r in get("unit-economics")(store, settings, params.model_copy(
        update={"group_by": ("team",)})).rows}
    # alpha: 3.00 x 0.5 x 24 + 2.00 x 0.8 x 24 = 36 + 38.4 used; beta: 2.00 x 24 idle.
    assert ue["alpha"]["usage_cost"] == Decimal("74.4") and ue["alpha"]["gpu_hours"] == 48
    assert ue["beta"]["idle_cost"] == Decimal("48") and ue["beta"]["usage_cost"] == 0
    # The instances' hour costs add up to the GPU's, so the node's bill is spread whole: 24 x 7 = 168.
    with store.transaction() as cur:
        hour = dict(cur.execute("SELECT mig_instance, hour_cost_effective FROM attr_gpu WHERE gpu_uuid = 'GPU-m' "
                                "ORDER BY 1").fetchall())
    assert hour == {"1": Decimal(3), "2": Decimal(2), "3": Decimal(2)} and sum(hour.values()) * 24 == Decimal("168")


def test_an_untagged_mig_node_is_split_between_teams_by_slices(store: Store, settings: Settings, rules: TagRules,
                                                               tmp_path: Path) -> None:
    """A node billed without tags is attributed by its telemetry (step 2), by GPU-hours weighted by
    each instance's slices: alpha holds 3g + 2g of the 7, beta 2g."""
    from finops.collect import ingest_focus

    bill = tmp_path / "untagged.csv"
    bill.write_text("BilledCost,EffectiveCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,"
                    "ServiceName,BillingAccountId,ProviderName,ResourceId\n"
                    f"168.00,168.00,USD,{DAY}T00:00:00Z,{DAY + timedelta(days=1)}T00:00:00Z,Usage,EC2,acct,AWS,i-mig\n")
    [r] = ingest_focus(store, rules, [bill])
    assert r.status == "succeeded"
    start = datetime.combine(DAY, datetime.min.time())
    rows = [{"hour_start": start + timedelta(hours=h), "host": "host-i-mig", "resource_id": "i-mig",
             "resource_key": "i-mig", "gpu_uuid": "GPU-m", "gpu_index": "0", "gpu_model": A100, "busy": busy,
             "samples": 60, "mig_profile": profile, "mig_instance": instance, "project": "p", "team": team,
             "environment": "prod", "model_id": "m"}
            for res, uuid, profile, instance, busy, team in GPUS[:3] for h in range(24)]
    task = Task("mig", Window(start, start + timedelta(days=1)), lambda: Batch(facts={"gpu_hours": pa.Table.from_pylist(rows)}))
    assert run_task(store, "prometheus", task).status == "succeeded"
    params = build_params(start=DAY, end=DAY + timedelta(days=1), group_by="team")
    cost = {r["team"]: r["cost"] for r in get("unit-economics")(store, settings, params).rows}
    assert cost == {"alpha": Decimal("120"), "beta": Decimal("48")}
