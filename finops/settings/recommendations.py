"""The assumptions of the savings recommendations; every recommendation states the ones it used."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from finops.tags import DIMS


class RecommendationSettings(BaseModel):
    """Assumptions of the estimates; every row states the ones it used."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spot_discount: Decimal = Field(default=Decimal("0.70"), ge=0, lt=1)
    commitment_discount: Decimal = Field(default=Decimal("0.30"), ge=0, lt=1)
    # Share of each GPU kept free when consolidating: target busy is at most 1 - headroom.
    headroom: Decimal = Field(default=Decimal("0.20"), ge=0, lt=1)
    non_production_environments: tuple[str, ...] = ("dev", "test", "staging")
    # Dim values marking batch workloads (spot candidates too), e.g. {"project": ["nightly-eval"]}.
    batch_workloads: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    min_idle_streak_hours: int = Field(default=6, ge=1)
    # Consecutive days of on-demand GPU spend, up to the last day with cost data, before committing.
    commitment_min_days: int = Field(default=7, ge=1)
    outlier_factor: Decimal = Field(default=Decimal(2), gt=1)
    outlier_min_groups: int = Field(default=3, ge=2)
    min_monthly_saving: Decimal = Field(default=Decimal("1.00"), ge=0)
    days_per_month: Decimal = Field(default=Decimal("30.4375"), gt=0)
    weekly_top: int = Field(default=10, ge=1)

    @field_validator("non_production_environments")
    @classmethod
    def _lower(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(e.strip().lower() for e in v)

    @field_validator("batch_workloads")
    @classmethod
    def _dims(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        unknown = [d for d in v if d not in DIMS]
        if unknown:
            raise ValueError(f"unknown dimension(s) {', '.join(map(repr, unknown))}")
        return {d: tuple(x.strip().lower() for x in vals) for d, vals in v.items()}
