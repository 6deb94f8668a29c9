"""Worked example B (docs/definitions.md 9.8): a bill that corrects itself, unused commitment and a
GPU billed for hours its metrics do not show. Every figure of the docs' tables is asserted here."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from finops.batch import Batch, Task
from finops.collect import ingest_focus, run_task
from finops.reports import get
from finops.reports.model import Report
from finops.reports.params import build_params
from finops.settings import Settings
from finops.store import Store
from finops.tags import UNUSED_COMMITMENT, TagRules
from finops.timeutil import Window

OCT, NOV, DEC = datetime(2026, 10, 1), datetime(2026, 11, 1), datetime(2026, 12, 1)
TAGS = '{"project": "chatbot", "team": "coreai", "environment": "prod", "modelid": "llama-70b"}'
HEADER = ["BillingAccountId", "ProviderName", "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd",
          "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeClass", "ServiceName", "ResourceId",
          "BilledCost", "EffectiveCost", "ConsumedQuantity", "ConsumedUnit", "CommitmentDiscountStatus", "Tags"]
# (billing period, charge day, resource, billed, effective, hours, class, commitment status, tags)
OCTOBER = [
    (OCT, OCT, "i-gpu1", "48.00", "48.00", "24", "", "", TAGS),  # 24 GPU instance-hours at 2.00
    (OCT, OCT, "ri-1", "0", "12.00", "", "", "Unused", ""),  # a reservation's unused hours that day
]
NOVEMBER = [
    (NOV, NOV, "i-gpu1", "48.00", "48.00", "24", "", "", TAGS),
    (NOV, OCT, "i-gpu1", "-8.00", "-8.00", "", "Correction", "", TAGS),  # a refund of 1 October, billed in November
]
OBSERVED_HOURS = 6  # i-gpu1's one GPU reported 6 hours on 1 October (and 24 on 1 November)


def bill(lines: list[tuple[datetime, datetime, str, str, str, str, str, str, str]]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(HEADER)
    for period, day, rid, billed, effective, hours, cls, status, tags in lines:
        end = (period + timedelta(days=32)).replace(day=1)
        w.writerow(["111", "AWS", "USD", f"{period:%Y-%m-%d}T00:00:00Z", f"{end:%Y-%m-%d}T00:00:00Z",
                    f"{day:%Y-%m-%d}T00:00:00Z", f"{day + timedelta(days=1):%Y-%m-%d}T00:00:00Z", "Usage", cls,
                    "Amazon EC2", rid, billed, effective, hours, "Hours" if hours else "", status, tags])
    return out.getvalue()


def gpu(day: datetime, hours: int) -> pa.Table:
    return pa.Table.from_pylist([
        {"hour_start": day + timedelta(hours=h), "host": "host-1", "resource_id": "i-gpu1", "resource_key": "i-gpu1",
         "gpu_uuid": "GPU-1", "gpu_index": "0", "gpu_model": "NVIDIA H100 80GB HBM3", "busy": 0.5, "samples": 60}
        for h in range(hours)])


@pytest.fixture
def example_b(store: Store, rules: TagRules, tmp_path: Path) -> Store:
    for name, lines in (("october.csv", OCTOBER), ("november.csv", NOVEMBER)):
        (tmp_path / name).write_text(bill(lines))
        [r] = ingest_focus(store, rules, [tmp_path / name])
        assert r.status == "succeeded", r.error
    for day, hours in ((OCT, OBSERVED_HOURS), (NOV, 24)):
        facts = {"gpu_hours": gpu(day, hours)}
        task = Task("example-b", Window(day, day + timedelta(days=1)), lambda facts=facts: Batch(facts=facts))
        assert run_task(store, "prometheus", task).status == "succeeded"
    return store


def october(store: Store, settings: Settings, name: str) -> Report:
    return get(name)(store, settings, build_params(start="2026-10-01", end="2026-11-01"))


def test_bill_check_of_october(example_b: Store, settings: Settings) -> None:
    check = october(example_b, settings, "bill-check")
    [row] = check.rows
    assert (row["period_start"], row["cost"], row["corrections_cost"], row["unused_commitment_cost"],
            row["lines"], row["correction_lines"]) == (OCT.date(), Decimal("52.00"), Decimal("-8.00"),
                                                        Decimal("12.00"), 3, 1)
    [c] = check.tables["corrections"]
    assert (c["resource_id"], c["delivered_in"], c["cost"]) == ("i-gpu1", NOV.date(), Decimal("-8.00"))
    [gap] = check.tables["gpu_hour_gaps"]
    assert (gap["day"], gap["resource_key"], gap["billed_hours"], gap["observed_hours"], gap["gap_hours"],
            gap["gap_cost"]) == (OCT.date(), "i-gpu1", Decimal(24), OBSERVED_HOURS, Decimal(18), Decimal("36.00"))
    assert check.totals["gap_cost"] == Decimal("36.00")


def test_november_has_no_gap_and_no_correction(example_b: Store, settings: Settings) -> None:
    check = get("bill-check")(example_b, settings, build_params(start="2026-11-01", end="2026-12-01"))
    [row] = check.rows
    assert (row["cost"], row["corrections_cost"], row["unused_commitment_cost"]) == (Decimal("48.00"), 0, 0)
    assert check.tables["gpu_hour_gaps"] == []


def test_october_in_unit_economics_and_untagged_spend(example_b: Store, settings: Settings) -> None:
    ue = october(example_b, settings, "unit-economics")
    cost = {(r["team"], r["model_id"]): r["cost"] for r in ue.rows}
    # The correction lowers the month it corrects; the unused reservation is its own group.
    assert cost == {("coreai", "llama-70b"): Decimal("40.00"),
                    (UNUSED_COMMITMENT, UNUSED_COMMITMENT): Decimal("12.00")}
    assert ue.totals["ingested_total"] == Decimal("52.00")
    untagged = october(example_b, settings, "untagged-spend")
    assert (untagged.totals["total_cost"], untagged.totals["untagged_cost"]) == (Decimal("52.00"), Decimal(0))
