"""What every rule kind is checked with: the store, settings and time of an evaluation, and how
findings word money."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from finops.reports.params import ReportParams, build_params
from finops.settings import Settings
from finops.settings.alerts import Exemptions
from finops.store import Store

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Context:
    store: Store
    settings: Settings
    now: datetime
    exemptions: Exemptions
    link_base: str = ""
    # Sources collected on schedule (None: every source in the ledger), and since when: a watched
    # source with no run yet is measured from then, not reported at once.
    watched: tuple[str, ...] | None = None
    watching_since: datetime | None = None

    def params(self, start: date, end: date, **kw: Any) -> ReportParams:
        s = self.settings
        return build_params(start=start, end=end, default_required=s.required_tags, shared_cost_key=s.shared_cost_key,
                            idle_threshold=s.idle_threshold, currency=s.report_currency,
                            generation_weight=s.generation_weight, **kw)

    def link(self, report: str, params: dict[str, Any]) -> str:
        return f"{self.link_base.rstrip('/')}/v1/reports/{report}?{urlencode(params)}"


def money(x: Decimal) -> str:
    return str(Decimal(x).quantize(CENT))


def pct(share: Decimal) -> str:
    """A fraction as a percentage to the hundredth (0.8512 -> 85.12)."""
    return str((share * 100).quantize(CENT))
