"""Worked example A of docs/definitions.md section 9, fed through the real ingest path and the collector contract."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa

from finops.batch import Batch, Task
from finops.collect import ingest_focus, run_task
from finops.resources import resource_key
from finops.store import Store
from finops.tags import TagRules
from finops.timeutil import Window

DAY = datetime(2026, 11, 2)
AZURE_VM3 = "/subscriptions/0000/resourceGroups/rg-search/providers/Microsoft.Compute/virtualMachines/vm-3"

# (provider, service, resource_id, tags, cost)
BILL = [
    ("AWS", "Amazon Elastic Compute Cloud", "i-gpu1",
     {"Project": "chatbot", "Team": "coreai", "Environment": "prod", "ModelID": "llama-70b"}, "240.00"),
    ("AWS", "Amazon Elastic Compute Cloud", "i-gpu2",
     {"project": "Chatbot", "team": "CoreAI", "environment": "prod"}, "120.00"),
    ("Microsoft", "Virtual Machines (NC)", AZURE_VM3,
     {"Project": "search", "Team": "platform", "Environment": "prod", "ModelID": "mistral-7b"}, "96.00"),
    ("AWS", "Amazon Simple Storage Service", "bucket-logs", None, "30.00"),
    ("AWS", "Amazon Elastic Compute Cloud", "i-gpu4", None, "48.00"),
]

# resource -> list of per-GPU hourly busy fractions (24 values each)
GPUS = {
    "i-gpu1": [[0.60] * 24, [0.50] * 24],
    "i-gpu2": [[0.90] * 12 + [0.02] * 12],
    "vm-3": [[0.30] * 24],
    "i-gpu4": [[0.00] * 24],
}
# (resource, model_name, prompt, generation) for the day
TOKENS = [
    ("i-gpu1", "llama-70b", 12_000_000, 4_000_000),
    ("i-gpu2", "mistral-7b", 6_000_000, 3_000_000),
    ("vm-3", "mistral-7b", 2_400_000, 1_200_000),
]
# Example A with vLLM V1 signals (docs/definitions.md 9.6): resource -> (hours that expose them,
# prefill ms, decode ms and cached prompt tokens over those hours). i-gpu2 runs an older vLLM.
V1 = {
    "i-gpu1": (range(24), 2_400_000, 7_200_000, 3_000_000),
    "vm-3": (range(24), 600_000, 1_800_000, 600_000),
}


def focus_csv(day: datetime = DAY, bill: list = BILL, currency: str = "USD") -> str:  # type: ignore[type-arg]
    import json

    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["BilledCost", "EffectiveCost", "BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd",
                "ChargeCategory", "ServiceName", "BillingAccountId", "ProviderName", "ResourceId", "Tags"])
    for provider, service, rid, tags, cost in bill:
        w.writerow([cost, cost, currency, f"{day:%Y-%m-%d}T00:00:00Z", f"{day + timedelta(days=1):%Y-%m-%d}T00:00:00Z",
                    "Usage", service, "acct-1", provider, rid, json.dumps(tags) if tags else "NULL"])
    return out.getvalue()


def _split(total: int, parts: int = 24) -> list[int]:
    base = [total // parts] * parts
    base[0] += total - sum(base)
    return base


def telemetry(day: datetime = DAY, v1: bool = False) -> dict[str, pa.Table]:
    gpu_rows, tok_rows = [], []
    for res, gpus in GPUS.items():
        for i, series in enumerate(gpus):
            for h, busy in enumerate(series):
                gpu_rows.append({"hour_start": day + timedelta(hours=h), "host": f"host-{res}", "resource_id": res,
                                 "resource_key": resource_key(res), "gpu_uuid": f"GPU-{res}-{i}", "gpu_index": str(i),
                                 "gpu_model": "NVIDIA H100 80GB HBM3", "busy": busy, "samples": 60})
    for res, model, prompt, gen in TOKENS:
        hours, prefill, decode, cached = V1.get(res, (range(0), 0, 0, 0))
        signals = [_split(x, len(hours)) if hours else [] for x in (prefill, decode, cached)]
        for h, (p, g) in enumerate(zip(_split(prompt), _split(gen), strict=True)):
            row = {"hour_start": day + timedelta(hours=h), "instance": f"host-{res}:8000", "resource_id": res,
                   "resource_key": resource_key(res), "model_name": model, "prompt_tokens": p, "generation_tokens": g,
                   "requests": 100}
            if v1:
                known = h in hours
                row.update({k: s[h] if known else None
                            for k, s in zip(("prefill_ms", "decode_ms", "cached_prompt_tokens"), signals, strict=True)})
            tok_rows.append(row)
    return {"gpu_hours": pa.Table.from_pylist(gpu_rows), "token_hours": pa.Table.from_pylist(tok_rows)}


def load(store: Store, rules: TagRules, tmp: Path, day: datetime = DAY, v1: bool = False) -> None:
    path = tmp / f"example-a-{day:%Y%m%d}.csv"
    path.write_text(focus_csv(day))
    [r] = ingest_focus(store, rules, [path])
    assert r.status == "succeeded", r.error
    facts = telemetry(day, v1)
    task = Task("example-a", Window(day, day + timedelta(days=1)), lambda: Batch(facts=facts))
    t = run_task(store, "prometheus", task)
    assert t.status == "succeeded", t.error
