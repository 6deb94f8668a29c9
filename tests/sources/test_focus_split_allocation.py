"""FOCUS 1.3 split cost allocation: a node's cost the provider split per pod is attributed by each
pod's allocated tags, and the node's origin row, kept beside its split, is counted once.

FOCUS keeps the origin row (AllocatedMethodId set, no AllocatedResourceId) beside the allocated rows
split from it, often zeroed and not always; the unallocated remainder is a row without
AllocatedResourceId too, but it is part of the split (docs/definitions.md 3).
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from finops.collect import ingest_focus
from finops.reports import get
from finops.reports.params import build_params
from finops.settings import Settings
from finops.store import Store
from finops.tags import UNALLOCATED, TagRules

HEADER = ["BillingAccountId", "ServiceProviderName", "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd",
          "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ServiceName", "ResourceId", "BilledCost",
          "EffectiveCost", "Tags", "AllocatedMethodId", "AllocatedResourceId", "AllocatedTags"]
NODE_TAGS = {"cluster": "prod-eks"}
CHATBOT = {"project": "chatbot", "team": "coreai", "environment": "prod", "modelid": "llama-70b"}
SEARCH = {"project": "search", "team": "search", "environment": "prod", "modelid": "qwen-7b"}


def bill(origin: str, split: list[tuple[str | None, str, dict[str, str] | None]]) -> str:
    """One node-day: the origin row at `origin`, then its split rows (pod, cost, allocated tags)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(HEADER)
    common = ["acct-1", "AWS", "USD", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", "2026-11-02T00:00:00Z",
              "2026-11-03T00:00:00Z", "Usage", "Amazon EKS", "arn:aws:ec2:us-east-1:1:instance/i-node1"]
    w.writerow([*common, origin, origin, json.dumps(NODE_TAGS), "eks-split-cost", "", ""])
    for pod, cost, tags in split:
        w.writerow([*common, cost, cost, json.dumps(NODE_TAGS), "eks-split-cost", pod or "",
                    json.dumps(tags) if tags else ""])
    return out.getvalue()


SPLIT = [("pod/chat-0", "50.00", CHATBOT), ("pod/search-0", "30.00", SEARCH), (None, "20.00", None)]


@pytest.mark.parametrize("origin", ["100.00", "0"], ids=["origin-kept-whole", "origin-zeroed"])
def test_a_split_node_is_attributed_by_pod_and_counted_once(store: Store, settings: Settings, rules: TagRules,
                                                            tmp_path: Path, origin: str) -> None:
    (tmp_path / "eks.csv").write_text(bill(origin, SPLIT))
    [r] = ingest_focus(store, rules, [tmp_path / "eks.csv"])
    assert (r.status, r.rows, r.quarantined) == ("succeeded", 4, 0), r.error
    # Every row is kept; only the origin whose dollars its split carries is marked.
    flagged = store.query("SELECT billed_cost FROM cost_lines WHERE split_origin")
    assert flagged == ([(Decimal(origin),)] if Decimal(origin) else [])
    params = build_params(start="2026-11-02", end="2026-11-03")
    ue = get("unit-economics")(store, settings, params)
    cost = {(r["project"], r["team"], r["model_id"]): r["cost"] for r in ue.rows}
    assert cost == {("chatbot", "coreai", "llama-70b"): Decimal("50.00"),
                    ("search", "search", "qwen-7b"): Decimal("30.00"),
                    (UNALLOCATED, UNALLOCATED, UNALLOCATED): Decimal("20.00")}  # the remainder: no pod's
    assert ue.totals["ingested_total"] == Decimal("100.00")
    check = get("bill-check")(store, settings, params)
    assert check.totals["cost"] == Decimal("100.00")


def test_a_remainder_equal_to_the_rest_is_not_taken_for_the_origin(store: Store, settings: Settings,
                                                                  rules: TagRules, tmp_path: Path) -> None:
    # The origin was zeroed, and the remainder (40) happens to equal the split's other rows (40):
    # nothing equals the sum of its group's other rows but the zeroed origin, so all of it counts.
    split = [("pod/chat-0", "25.00", CHATBOT), ("pod/search-0", "15.00", SEARCH), (None, "40.00", None)]
    (tmp_path / "eks.csv").write_text(bill("0", split))
    [r] = ingest_focus(store, rules, [tmp_path / "eks.csv"])
    assert r.status == "succeeded", r.error
    assert store.query("SELECT count(*) FROM cost_lines WHERE split_origin")[0][0] == 0
    ue = get("unit-economics")(store, settings, build_params(start="2026-11-02", end="2026-11-03"))
    assert ue.totals["ingested_total"] == Decimal("80.00")
