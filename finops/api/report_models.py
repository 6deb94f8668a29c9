"""Report response models: what the OpenAPI document promises for each report, field by field.

Report bodies are produced by `finops.reports.export.to_json` (exact decimals), not by these
models; they describe that output so clients and schemathesis can check it. Money and exact
ratios are JSON numbers with every digit kept (parse them as decimals).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema

Money = Annotated[Decimal, WithJsonSchema({"type": "number", "description": "exact decimal, report currency"})]
Num = Annotated[Decimal, WithJsonSchema({"type": "number", "description": "exact decimal"})]
# Report timestamps are naive UTC in ISO 8601 (no offset), e.g. 2026-11-02T11:00:00.
Stamp = Annotated[str, WithJsonSchema({"type": "string", "description": "UTC time, ISO 8601 without offset"})]
Dim = Annotated[str | None, Field(description="present when `group_by` includes this dim; "
                                              "`__untagged__` or `__unallocated__` for those groups")]


class ParamsOut(BaseModel):
    """The parameters a report was computed with (after defaults)."""

    start: date
    end: date
    group_by: list[str]
    granularity: str
    cost_basis: str
    idle_threshold: float
    required_tags: list[str]
    scope: str
    shared_cost_key: str
    currency: str
    generation_weight: Num = Field(description="prompt tokens a generated token weighs where vLLM gave no "
                                               "prefill and decode time (unit economics' split)")
    filters: dict[str, str] = Field(description="dims rows are restricted to (a team-scoped key adds its team)")


class Grouped(BaseModel):
    project: Dim = None
    team: Dim = None
    environment: Dim = None
    model_id: Dim = None


class UnitMeasures(BaseModel):
    cost: Money
    prompt_tokens: int
    generation_tokens: int
    total_tokens: int
    requests: int
    gpu_hours: int
    avg_gpu_busy: float | None = Field(description="GPU-hour weighted busy fraction; null without GPU metrics")
    cost_per_1k_generated_tokens: Money | None
    cost_per_1k_tokens: Money | None
    cost_per_request: Money | None
    usage_cost: Money
    idle_cost: Money
    cached_prompt_tokens: int | None = Field(description="prompt tokens vLLM served from its prefix cache; "
                                                         "null where the servers do not expose it")
    prompt_cost: Money | None = Field(description="the cost's prompt part (prompt_cost + generation_cost = cost)")
    generation_cost: Money | None
    cost_per_1k_prompt_tokens: Money | None
    cost_per_1k_generation_tokens: Money | None
    cache_hit_rate: Num | None = Field(description="cached_prompt_tokens / prompt_tokens")
    cache_savings: Money | None = Field(description="what the cached prompt tokens would have cost to compute")
    split_basis: Literal["prefill_decode_time", "token_weight", "mixed"] | None = Field(
        description="how the cost was split: vLLM's prefill vs decode time, the token weight, or both")


class UnitRow(Grouped, UnitMeasures):
    period_start: date
    period_end: date
    note: Literal["no_tokens", "no_gpu_metrics"] | None = Field(description="why a ratio is null")


class UnitTotals(UnitMeasures):
    ingested_total: Money = Field(description="cost ingested in the window (within the filters)")


class BoughtModelRow(BaseModel):
    provider: str = Field(description="who sold the tokens (FOCUS ServiceProviderName)")
    host_provider: str | None = Field(description="whose infrastructure served them (FOCUS HostProviderName)")
    api_model: str | None = Field(description="the model: SkuPriceDetails' ModelId, else SkuMeter, else SkuId")
    currency: str = Field(description="the lines' billing currency")
    cost: Money
    prompt_tokens: int = Field(description="input tokens, cache reads and writes included")
    cached_prompt_tokens: int = Field(description="input tokens read from the provider's prompt cache")
    generation_tokens: int
    prompt_cost: Money | None
    generation_cost: Money | None
    cost_per_1k_generated_tokens: Money | None
    cost_per_1k_prompt_tokens: Money | None
    cost_per_1k_generation_tokens: Money | None


class UnitEconomicsReport(BaseModel):
    rows: list[UnitRow]
    totals: UnitTotals
    params: ParamsOut
    bought_models: list[BoughtModelRow] = Field(
        default_factory=list, description="models bought per token on the bill (FOCUS token billing), beside the "
                                          "self-hosted rows")


class IdleRow(BaseModel):
    host: str | None
    gpu_uuid: str
    mig_instance: str | None
    mig_profile: str | None
    gpu_model: str | None
    project: str
    team: str
    environment: str
    model_id: str
    hours_observed: int
    idle_hours: int
    avg_busy: float | None
    idle_cost: Money
    longest_idle_streak_hours: int
    last_busy_at: Stamp | None
    no_tokens_served: bool | None = Field(description="the GPU's resource served no generated tokens")
    idle_fraction: float | None


class IdleTotals(BaseModel):
    gpus: int
    hours_observed: int
    idle_hours: int
    idle_fraction: float | None
    idle_cost: Money
    gpus_without_tokens: int


class IdleGpusReport(BaseModel):
    rows: list[IdleRow]
    totals: IdleTotals
    params: ParamsOut


class UntaggedRow(BaseModel):
    provider: str | None
    account: str | None
    service: str | None
    resource_id: str | None
    cost: Money
    untagged_cost: Money
    recoverable_cost: Money = Field(description="untagged cost that telemetry or the shared split attributes")
    missing_tags: str | None = Field(description="comma-separated required dims missing on the bill")


class TrendRow(BaseModel):
    day: date
    total_cost: Money
    untagged_cost: Money
    untagged_share: Num | None


class UntaggedTotals(BaseModel):
    total_cost: Money
    untagged_cost: Money
    untagged_share: Num | None
    recoverable_cost: Money
    cost: Money


class UntaggedSpendReport(BaseModel):
    rows: list[UntaggedRow]
    totals: UntaggedTotals
    params: ParamsOut
    top_resources: list[UntaggedRow]
    trend: list[TrendRow]


class Change(BaseModel):
    cost: Money
    previous_cost: Money
    change: Money | None
    change_pct: Num | None


class WeeklyRow(Grouped, Change):
    pass


class SummaryRow(BaseModel):
    metric: str
    unit: Literal["money", "ratio", "tokens"]
    this_week: Num | None
    previous_week: Num | None
    change: Num | None
    change_pct: Num | None


class TeamRow(Change):
    team: str


class ProjectRow(Change):
    project: str


class ModelRow(Change):
    model_id: str
    generation_tokens: int | None
    previous_generation_tokens: int | None
    generation_tokens_change: int | None
    generation_tokens_change_pct: Num | None
    cost_per_1k_generated_tokens: Money | None
    previous_cost_per_1k_generated_tokens: Money | None
    cost_per_1k_generated_tokens_change: Money | None
    cost_per_1k_generated_tokens_change_pct: Num | None


class WeeklyIdleRow(IdleRow):
    previous_idle_cost: Money


class ReconciliationRow(BaseModel):
    item: str
    amount: Money


class WeeklyTotals(BaseModel):
    cost: Money
    previous_cost: Money
    ingested_total: Money
    control_total_matches: bool
    week: str | None = Field(description="the ISO week when the window is one, e.g. 2026-W45")


class WeeklyReport(BaseModel):
    rows: list[WeeklyRow]
    totals: WeeklyTotals
    params: ParamsOut
    summary: list[SummaryRow]
    chargeback_team: list[TeamRow]
    chargeback_project: list[ProjectRow]
    unit_economics_by_model: list[ModelRow]
    idle_gpus: list[WeeklyIdleRow]
    untagged_spend: list[UntaggedRow]
    reconciliation: list[ReconciliationRow]


class RecommendationRow(Grouped):
    kind: Literal["idle_shutdown", "consolidation", "spot", "commitment", "unit_cost_outlier"]
    resource: str | None = Field(description="the resource the action is about; null for a group")
    monthly_saving: Money
    confidence: Literal["high", "medium", "low"]
    action: str = Field(description="what to do, in one sentence")
    evidence: dict[str, Any] = Field(description="the numbers behind the estimate and their window")
    assumptions: str


class RecommendationTotals(BaseModel):
    recommendations: int
    monthly_saving: Money
    by_kind: dict[str, Money]


class RecommendationsReport(BaseModel):
    rows: list[RecommendationRow]
    totals: RecommendationTotals
    params: ParamsOut


class Contributor(BaseModel):
    resource: str | None = Field(description="a resource of the group (billed, or serving its tokens)")
    measure: Literal["cost", "generation_tokens"] = Field(
        description="what moved: its cost, or (for cost per 1k tokens) the tokens it generated")
    value: Num = Field(description="the measure that day")
    baseline: Num = Field(description="its median on the same weekday in the history")
    change: Num


class AnomalyRow(Grouped):
    day: date
    metric: Literal["cost", "cost_per_1k_generated_tokens"]
    value: Num
    baseline: Num = Field(description="median of the same weekday in the history before the window")
    expected_low: Num
    expected_high: Num
    score: float = Field(description="(value - baseline) / robust scale; |score| >= min_score here")
    deviation: Num
    deviation_cost: Money = Field(description="the deviation in money (for cost per 1k: at the day's tokens)")
    contributors: list[Contributor]


class AnomalyTotals(BaseModel):
    anomalies: int
    deviation_cost: Money
    history_start: date
    groups: int


class AnomaliesReport(BaseModel):
    rows: list[AnomalyRow]
    totals: AnomalyTotals
    params: ParamsOut


class ForecastRow(Grouped):
    day: date
    method: Literal["ets", "weekday_mean", "mean", "none"] = Field(
        description="ets: exponential smoothing with weekly seasonality; weekday_mean; mean; none: no history")
    cost: Money = Field(description="forecast cost of the day (an estimate, to the cent)")
    cost_low: Money = Field(description="lower end of the interval (forecast.level, 80% by default)")
    cost_high: Money
    generation_tokens: int
    generation_tokens_low: int
    generation_tokens_high: int
    actual_cost: Money | None = Field(description="the day's attributed cost, where the store has it")
    actual_generation_tokens: int | None


class ForecastTotals(BaseModel):
    cost: Money
    actual_cost: Money | None
    history_start: date
    history_end: date = Field(description="the day after the last day of history (where the data ends)")
    groups: int
    methods: str = Field(description="groups per method, e.g. 'ets 3, mean 1'")


class ForecastReport(BaseModel):
    rows: list[ForecastRow]
    totals: ForecastTotals
    params: ParamsOut


class BudgetRow(Grouped):
    budget: str
    period: Literal["month", "quarter"]
    period_start: date
    period_end: date = Field(description="the day after the period's last day")
    amount: Money
    budget_currency: str
    actual_cost: Money = Field(description="the period's cost before actual_through")
    actual_through: date = Field(description="the day after the newest billed day (at most the report's end); "
                                             "later days are forecast")
    actual_share: Num | None = Field(description="actual cost / amount (0.85 is 85 %); null on a currency mismatch")
    forecast_cost: Money = Field(description="actual cost plus the forecast of the period's remaining days")
    forecast_cost_low: Money
    forecast_cost_high: Money
    forecast_share: Num | None = Field(description="forecast cost / amount; null on a currency mismatch")
    forecast_method: str
    burn_rate_per_day: Money | None
    days_left: Num | None = Field(description="days until the amount is spent at the burn rate")
    days_to_period_end: int
    generation_tokens: int
    forecast_generation_tokens: int
    cost_per_1k_generated_tokens: Money | None
    forecast_cost_per_1k_generated_tokens: Money | None
    max_cost_per_1k_generated_tokens: Money | None
    actual_threshold_crossed: Num | None
    forecast_threshold_crossed: Num | None
    ceiling_exceeded: bool
    status: Literal["ok", "at_risk", "over", "currency_mismatch"]


class BuildVsBuyRow(BaseModel):
    model_id: str
    cost: Money = Field(description="self-hosting's cost of the model over the window")
    prompt_tokens: int
    generation_tokens: int
    cached_prompt_tokens: int | None
    cost_per_1m_prompt_tokens: Money | None = Field(description="the prompt part of cost per 1M prompt tokens")
    cost_per_1m_generation_tokens: Money | None
    avg_gpu_busy: float | None
    provider: str | None = Field(description="the API offering (null: none configured for this model)")
    api_model: str | None
    example_prices: bool | None = Field(description="true for the shipped illustrative prices")
    api_currency: str | None
    priced_days: int = Field(description="days of the window the offering had a price for")
    api_cost: Money | None = Field(description="the same tokens at the offering's prices (null: other currency)")
    saving: Money | None = Field(description="api_cost - cost: positive when self-hosting is cheaper")
    break_even_busy: float | None = Field(description="the GPU busy fraction at which self-hosting costs what "
                                                      "the API would (above 1: never)")


class BuildVsBuyTotals(BaseModel):
    cost: Money
    models: int
    offerings: int


class BuildVsBuyReport(BaseModel):
    rows: list[BuildVsBuyRow]
    totals: BuildVsBuyTotals
    params: ParamsOut


class BudgetTotals(BaseModel):
    budgets: int
    as_of: date
    ok: int
    at_risk: int
    over: int
    currency_mismatch: int


class BudgetsReport(BaseModel):
    rows: list[BudgetRow]
    totals: BudgetTotals
    params: ParamsOut


class BillPeriodRow(BaseModel):
    provider: str
    account: str | None
    period_start: date = Field(description="first day of the month the cost was used in")
    currency: str = Field(description="the lines' billing currency (amounts are never converted here)")
    cost: Money
    corrections_cost: Money = Field(description="part of cost on lines correcting this month from a later billing "
                                                "period (FOCUS ChargeClass Correction)")
    unused_commitment_cost: Money = Field(description="part of cost on unused commitment (CommitmentDiscountStatus "
                                                      "Unused)")
    lines: int
    correction_lines: int


class CorrectionRow(BaseModel):
    provider: str
    account: str | None
    period_start: date = Field(description="the month corrected")
    delivered_in: date | None = Field(description="the billing period whose delivery carried the correction")
    service: str | None
    resource_id: str | None
    currency: str
    cost: Money
    lines: int


class GpuHourGapRow(BaseModel):
    day: date
    resource_key: str
    resource_id: str | None
    currency: str
    billed_hours: Num = Field(description="instance-hours the bill charged that day")
    observed_hours: int = Field(description="the most hours any one of the resource's GPUs reported that day")
    gap_hours: Num
    gap_cost: Money = Field(description="the cost of the billed hours x gap_hours / billed_hours")


class BillCheckTotals(BaseModel):
    cost: Money | None = Field(description="null when the rows hold more than one currency")
    corrections_cost: Money | None
    unused_commitment_cost: Money | None
    gap_hours: Num
    gap_cost: Money | None
    currencies: list[str]


class BillCheckReport(BaseModel):
    rows: list[BillPeriodRow]
    totals: BillCheckTotals
    params: ParamsOut
    corrections: list[CorrectionRow]
    gpu_hour_gaps: list[GpuHourGapRow]


REPORT_MODELS: dict[str, type[BaseModel]] = {
    "unit-economics": UnitEconomicsReport, "idle-gpus": IdleGpusReport,
    "untagged-spend": UntaggedSpendReport, "weekly": WeeklyReport,
    "recommendations": RecommendationsReport, "anomalies": AnomaliesReport, "forecast": ForecastReport,
    "budgets": BudgetsReport, "build-vs-buy": BuildVsBuyReport, "bill-check": BillCheckReport,
}
