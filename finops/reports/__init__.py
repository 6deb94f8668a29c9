"""docs/definitions.md section 5-6: one module per report, plus exports. `get(name)` gives a report's builder."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily: attribution imports reports.params
    from finops.reports.model import Report
    from finops.reports.params import ReportParams
    from finops.settings import Settings
    from finops.store import Store

    ReportFn = Callable[[Store, Settings, ReportParams], Report]

NAMES = ("unit-economics", "idle-gpus", "untagged-spend", "weekly", "recommendations")


def get(name: str) -> ReportFn:
    """The builder for a report name (`unit-economics`, `idle-gpus`, `untagged-spend`, `weekly`)."""
    from finops.reports.idle_gpus import idle_gpus
    from finops.reports.recommendations import recommendations
    from finops.reports.unit_economics import unit_economics
    from finops.reports.untagged import untagged_spend
    from finops.reports.weekly import weekly

    table: dict[str, ReportFn] = {
        "unit-economics": unit_economics, "idle-gpus": idle_gpus,
        "untagged-spend": untagged_spend, "weekly": weekly, "recommendations": recommendations,
    }
    return table[name]
