"""`finops simulate bill`: the simulated node's FOCUS bill, as the drop folder ingests it."""

from __future__ import annotations

import os
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from finops.collect import ingest_focus
from finops.simulate.bill import BillConfig, write_bill
from finops.store import Store
from finops.tags import TagRules

START = datetime(2026, 11, 10, 9, 40)
CFG = BillConfig(hourly_cost=Decimal("4.10"), tags={"project": "chatbot", "team": "coreai", "environment": "dev",
                                                    "model_id": "qwen2.5-7b-instruct"})


def test_the_bill_grows_by_the_hour_keeps_its_start_and_ingests_whole(tmp_path: Path, store: Store,
                                                                       rules: TagRules) -> None:
    path = tmp_path / "bills" / "simulated-node.csv"
    assert write_bill(path, CFG, START) == 1  # the current hour, 09:00-10:00
    os.utime(path, (1, 1))
    assert write_bill(path, CFG, START.replace(minute=59)) == 1
    assert path.stat().st_mtime == 1  # unchanged: not rewritten, so not ingested again
    assert write_bill(path, CFG, START.replace(hour=12, minute=5)) == 4  # 09:00 to 13:00, the start kept
    assert not list(path.parent.glob(".*.tmp"))
    [run] = ingest_focus(store, rules, [path])
    assert (run.status, run.rows, run.quarantined) == ("succeeded", 4, 0)
    assert store.query("SELECT sum(billed_cost), min(charge_period_start), any_value(resource_key), "
                       "any_value(team) FROM cost_lines") == [(Decimal("16.40"), datetime(2026, 11, 10, 9),
                                                               "local-gpu-node-1", "coreai")]
