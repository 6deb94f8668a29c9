"""A FOCUS bill for the simulated node (`finops simulate bill`), so the CPU stack has cost to attribute.

The bill has one line per hour from the node's first run (kept from an existing file, so a restart
does not shorten the bill; hours the stack was down are billed too, as a cloud bills a VM that is
kept) to the end of the current UTC hour, each `hourly_cost` in the
node's currency, with the node's resource id (the `instance_id` label Prometheus attaches to its
telemetry) and tags. The file is rewritten whole and atomically, so a drop folder never sees half of
it, and a re-ingest replaces the previous version (the file is its own scope); an unchanged bill
is not rewritten, so a drop folder does not ingest it again.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from finops.timeutil import utcnow

HOUR = timedelta(hours=1)
COLUMNS = ("BilledCost", "EffectiveCost", "ListCost", "BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd",
           "ChargeCategory", "ServiceName", "ServiceCategory", "BillingAccountId", "ProviderName", "ResourceId",
           "ResourceType", "Tags")
STAMP = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class BillConfig:
    """The simulated node: what it is called on the bill, what an hour of it costs, its tags."""

    resource_id: str = "local-gpu-node-1"
    hourly_cost: Decimal = Decimal("4.10")
    currency: str = "USD"
    provider: str = "Simulated Cloud"
    account: str = "sim-account"
    tags: dict[str, str] = field(default_factory=dict)


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def bill_csv(cfg: BillConfig, since: datetime, until: datetime) -> str:
    """FOCUS CSV: one line per hour of `[floor(since), until)` (naive UTC)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    tags = json.dumps(cfg.tags, sort_keys=True) if cfg.tags else ""
    hour = floor_hour(since)
    while hour < until:
        cost = str(cfg.hourly_cost)
        w.writerow([cost, cost, cost, cfg.currency, hour.strftime(STAMP), (hour + HOUR).strftime(STAMP), "Usage",
                    "Virtual Machines", "Compute", cfg.account, cfg.provider, cfg.resource_id, "GPU instance", tags])
        hour += HOUR
    return out.getvalue()


def first_hour(path: Path) -> datetime | None:
    """The first ChargePeriodStart of a bill this command wrote before, if any."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            row = next(csv.DictReader(f), None)
    except OSError:
        return None
    try:
        return datetime.strptime(row["ChargePeriodStart"], STAMP) if row else None
    except (KeyError, ValueError):
        return None


def write_bill(path: Path, cfg: BillConfig, now: datetime | None = None) -> int:
    """Write the bill up to the end of `now`'s hour, keeping the start of an earlier one; its lines."""
    now = now or utcnow()
    since = first_hour(path) or floor_hour(now)
    text = bill_csv(cfg, since, floor_hour(now) + HOUR)
    lines = text.count("\n") - 1
    try:
        if path.read_text(encoding="utf-8") == text:
            return lines
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")  # outside the drop folder's patterns until renamed
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return lines
