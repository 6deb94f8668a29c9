"""The reports (docs/definitions.md sections 5-6): one module each, named once in `CATALOG`.

The CLI, the API's routes and OpenAPI summaries, the terminal table and the weekly job all take the
report names from here. Builders are imported when asked for (`get`), so the CLI starts fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from finops.reports.model import Report
    from finops.reports.params import ReportParams
    from finops.settings import Settings
    from finops.store import Store

    ReportFn = Callable[[Store, Settings, ReportParams], Report]


@dataclass(frozen=True)
class ReportInfo:
    builder: str  # "module:function" under finops.reports
    summary: str
    columns: tuple[str, ...]  # the columns worth a terminal's width; exports carry every field


CATALOG: dict[str, ReportInfo] = {
    "unit-economics": ReportInfo(
        "unit_economics:unit_economics",
        "Unit economics: cost, tokens and GPU-hours per group and period (docs/definitions.md 6.1)",
        ("period_start", "project", "team", "environment", "model_id", "cost", "generation_tokens",
         "cost_per_1k_generated_tokens", "gpu_hours", "avg_gpu_busy", "idle_cost", "note")),
    "idle-gpus": ReportInfo(
        "idle_gpus:idle_gpus", "Idle GPUs: idle hours and their cost per GPU (docs/definitions.md 6.2)",
        ("host", "gpu_uuid", "team", "model_id", "hours_observed", "idle_hours", "idle_cost",
         "longest_idle_streak_hours", "no_tokens_served")),
    "untagged-spend": ReportInfo(
        "untagged:untagged_spend",
        "Untagged spend: cost missing required tags, and what rules recover (docs/definitions.md 6.3)",
        ("provider", "account", "service", "resource_id", "cost", "untagged_cost", "recoverable_cost",
         "missing_tags")),
    "weekly": ReportInfo(
        "weekly:weekly",
        "Weekly finance report for one ISO week against the week before (docs/definitions.md 6.4; finance keys)",
        ("project", "team", "environment", "model_id", "cost", "previous_cost", "change")),
    "recommendations": ReportInfo(
        "recommendations:recommendations",
        "Savings recommendations with their monthly saving, evidence and assumptions (docs/recommendations.md)",
        ("kind", "resource", "team", "model_id", "monthly_saving", "confidence", "action")),
    "anomalies": ReportInfo(
        "anomalies:anomalies",
        "Anomalies: days whose cost or cost per 1k generated tokens left their group's usual range "
        "(docs/definitions.md 6.6)",
        ("day", "project", "team", "model_id", "metric", "value", "baseline", "score", "deviation_cost")),
    "forecast": ReportInfo(
        "forecast:forecast_report",
        "Forecast: daily cost and generated tokens per group with an interval, from the history before the "
        "window (docs/definitions.md 6.7)",
        ("day", "team", "model_id", "method", "cost", "cost_low", "cost_high", "actual_cost", "generation_tokens")),
    "build-vs-buy": ReportInfo(
        "build_vs_buy:build_vs_buy",
        "Build vs buy: per model, self-hosting's cost per 1M prompt and generated tokens beside each API offering's "
        "price for the same tokens, the saving and the break-even GPU busy fraction (docs/definitions.md 6.9)",
        ("model_id", "provider", "api_model", "cost", "api_cost", "saving", "cost_per_1m_prompt_tokens",
         "cost_per_1m_generation_tokens", "avg_gpu_busy", "break_even_busy")),
    "budgets": ReportInfo(
        "budgets:budgets",
        "Budgets: spend to date, forecast to the period's end, burn rate and status of each budget "
        "(docs/definitions.md 6.8)",
        ("budget", "team", "period_start", "amount", "actual_cost", "actual_pct", "forecast_cost", "forecast_pct",
         "days_left", "status")),
    "bill-check": ReportInfo(
        "bill_check:bill_check",
        "Bill check: corrections of earlier periods, unused commitment, and GPU instance-hours billed that "
        "telemetry does not show (docs/definitions.md 6.10)",
        ("provider", "account", "period_start", "currency", "cost", "corrections_cost", "unused_commitment_cost",
         "lines", "correction_lines")),
}
NAMES = tuple(CATALOG)


def get(name: str) -> ReportFn:
    """The builder of the report called `name` (one of NAMES); KeyError for any other name."""
    module, function = CATALOG[name].builder.split(":")
    fn: ReportFn = getattr(importlib.import_module(f"finops.reports.{module}"), function)
    return fn
