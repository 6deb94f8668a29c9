"""What an alert evaluation finds: one `Finding` per condition that holds, with a stable key.

The rules themselves are configuration (`finops.settings.alerts`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One alert condition that holds now. `key` is stable across evaluations while it holds;
    `dims` are its identity labels (stable), `details` the changing figures behind the summary."""

    key: str
    rule: str
    severity: str
    summary: str
    dims: dict[str, str]
    link: str
    amount: Decimal | None = None
    currency: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def alert_key(rule_name: str, identity: dict[str, str]) -> str:
    """`idle_gpu|gpu_uuid=GPU-1`: the rule name and the identity labels in a fixed order."""
    return "|".join([rule_name, *(f"{k}={identity[k]}" for k in sorted(identity))])
