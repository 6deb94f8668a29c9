"""Land a synthetic daily history: one FOCUS line per team and day (resource i-<team>) and one
token row per team and day, through the real ingest paths."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from finops.batch import Batch, Task
from finops.collect import ingest_focus, run_task
from finops.resources import resource_key
from finops.store import Store
from finops.tags import TagRules
from finops.timeutil import Window

Series = dict[tuple[str, date], Decimal]


def land_daily(store: Store, rules: TagRules, tmp: Path, cost: Series, tokens: dict[tuple[str, date], int],
               name: str = "bill.csv") -> None:
    """`cost` and `tokens` map (team, day) to the day's cost and generated tokens."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["BilledCost", "EffectiveCost", "BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd",
                "ChargeCategory", "ServiceName", "BillingAccountId", "ProviderName", "ResourceId", "Tags"])
    for (team, day), c in sorted(cost.items()):
        tags = {"project": "p", "team": team, "environment": "prod", "model_id": "m"}
        w.writerow([c, c, "USD", f"{day:%Y-%m-%d}T00:00:00Z", f"{day + timedelta(days=1):%Y-%m-%d}T00:00:00Z",
                    "Usage", "EC2", "acct", "AWS", f"i-{team}", json.dumps(tags)])
    path = tmp / name
    path.write_text(out.getvalue())
    [r] = ingest_focus(store, rules, [path])
    assert r.status == "succeeded" and r.quarantined == 0, r.error
    if not tokens:
        return
    rows = [{"hour_start": datetime.combine(day, datetime.min.time()), "instance": f"{team}:8000",
             "resource_id": f"i-{team}", "resource_key": resource_key(f"i-{team}"), "model_name": "m", "project": "p",
             "team": team, "environment": "prod", "model_id": "m", "prompt_tokens": n, "generation_tokens": n,
             "requests": 1} for (team, day), n in tokens.items()]
    days = sorted(d for _, d in tokens)
    window = Window(datetime.combine(days[0], datetime.min.time()),
                    datetime.combine(days[-1] + timedelta(days=1), datetime.min.time()))
    task = Task("synthetic", window, lambda: Batch(facts={"token_hours": pa.Table.from_pylist(rows)}))
    assert run_task(store, "prometheus", task).status == "succeeded"
