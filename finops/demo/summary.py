"""The demo's summary: what the reports say about the demo database, next to the generated bill."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import simplejson

from finops import reports
from finops.demo.fleet import Fleet
from finops.reports.params import build_params
from finops.settings import Settings
from finops.store import Store

CENT = Decimal("0.01")


@dataclass(frozen=True)
class ModelLine:
    model_id: str
    cost: Decimal
    generation_tokens: int
    cost_per_1k_generated_tokens: Decimal | None
    usage_cost: Decimal
    idle_cost: Decimal
    cost_per_1k_prompt_tokens: Decimal | None
    cost_per_1k_generation_tokens: Decimal | None
    cache_hit_rate: Decimal | None
    cache_savings: Decimal | None
    split_basis: str | None


@dataclass(frozen=True)
class OfferingLine:
    model_id: str
    api_model: str | None
    cost: Decimal
    api_cost: Decimal | None
    saving: Decimal | None
    avg_gpu_busy: float | None
    break_even_busy: float | None


@dataclass(frozen=True)
class BudgetLine:
    budget: str
    status: str
    amount: Decimal
    actual_cost: Decimal
    forecast_cost: Decimal
    forecast_cost_low: Decimal
    forecast_cost_high: Decimal


@dataclass(frozen=True)
class AnomalyLine:
    day: date
    team: str
    metric: str
    value: Decimal
    baseline: Decimal
    score: float
    top_resource: str | None


@dataclass(frozen=True)
class MigLine:
    """A MIG instance of the fleet, from the idle GPUs report: its idle hours cost its slices' share."""

    host: str | None
    mig_instance: str
    mig_profile: str | None
    model_id: str
    avg_busy: float
    hours_observed: int
    idle_hours: int
    idle_cost: Decimal


@dataclass(frozen=True)
class Summary:
    start: date
    end: date
    bill_total: Decimal  # generated: Fleet.total_cost()
    control_total: Decimal  # sum of the unit-economics rows (all four dims, whole window)
    ingested_total: Decimal
    gpu_hours: int
    prompt_tokens: int
    generation_tokens: int
    idle_gpu_cost: Decimal
    idle_gpu_hours: int
    untagged_cost: Decimal
    untagged_share: Decimal | None
    by_model: list[ModelLine]
    budgets: list[BudgetLine]
    anomalies: list[AnomalyLine]  # over the last week
    build_vs_buy: list[OfferingLine]  # over the last week, at the example prices
    mig: list[MigLine]  # the MIG instances, over the whole window

    @property
    def matches(self) -> bool:
        return self.control_total.quantize(CENT) == self.bill_total.quantize(CENT)

    def to_json(self) -> str:
        """JSON with money as exact decimal numbers (parse with `parse_float=Decimal`)."""
        doc = asdict(self) | {"control_total_matches_bill": self.matches}
        return str(simplejson.dumps(doc, use_decimal=True, default=str, indent=2))


def summarize(store: Store, settings: Settings, fleet: Fleet) -> Summary:
    """Run the reports over the fleet's whole window and pick the headline numbers."""

    def report(name: str, **kw: Any) -> Any:
        params = build_params(start=fleet.start, end=fleet.end, default_required=settings.required_tags,
                              idle_threshold=settings.idle_threshold, shared_cost_key=settings.shared_cost_key,
                              generation_weight=settings.generation_weight, **kw)
        return reports.get(name)(store, settings, params)

    ue = report("unit-economics", granularity="total")
    by_model = report("unit-economics", granularity="total", group_by="model_id")
    idle = report("idle-gpus")
    untagged = report("untagged-spend")
    budgets = report("budgets")
    week = build_params(start=fleet.end - timedelta(days=7), end=fleet.end, group_by="team",
                        shared_cost_key=settings.shared_cost_key)
    anomalies = reports.get("anomalies")(store, settings, week)
    offerings = reports.get("build-vs-buy")(store, settings, week)
    return Summary(
        start=fleet.start, end=fleet.end, bill_total=fleet.total_cost(),
        control_total=sum((r["cost"] for r in ue.rows), Decimal(0)),
        ingested_total=ue.totals["ingested_total"],
        gpu_hours=ue.totals["gpu_hours"], prompt_tokens=ue.totals["prompt_tokens"],
        generation_tokens=ue.totals["generation_tokens"],
        idle_gpu_cost=idle.totals["idle_cost"], idle_gpu_hours=idle.totals["idle_hours"],
        untagged_cost=untagged.totals["untagged_cost"], untagged_share=untagged.totals["untagged_share"],
        by_model=[ModelLine(r["model_id"], r["cost"], r["generation_tokens"], r["cost_per_1k_generated_tokens"],
                            r["usage_cost"], r["idle_cost"], r["cost_per_1k_prompt_tokens"],
                            r["cost_per_1k_generation_tokens"], r["cache_hit_rate"], r["cache_savings"],
                            r["split_basis"]) for r in by_model.rows],
        mig=sorted((MigLine(r["host"], r["mig_instance"], r["mig_profile"], r["model_id"], r["avg_busy"],
                            r["hours_observed"], r["idle_hours"], r["idle_cost"])
                    for r in idle.rows if r["mig_instance"] is not None), key=lambda m: (m.host or "", m.mig_instance)),
        build_vs_buy=[OfferingLine(r["model_id"], r["api_model"], r["cost"], r["api_cost"], r["saving"],
                                   r["avg_gpu_busy"], r["break_even_busy"]) for r in offerings.rows],
        budgets=[BudgetLine(r["budget"], r["status"], r["amount"], r["actual_cost"], r["forecast_cost"],
                            r["forecast_cost_low"], r["forecast_cost_high"]) for r in budgets.rows],
        anomalies=[AnomalyLine(r["day"], r["team"], r["metric"], r["value"], r["baseline"], r["score"],
                               r["contributors"][0]["resource"] if r["contributors"] else None)
                   for r in anomalies.rows],
    )
