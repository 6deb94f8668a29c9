"""The API offerings the build-vs-buy report compares self-hosting with (docs/definitions.md 6.9).

The default table is EXAMPLES: round illustrative prices for hosted open-weight models, dated
2026-12-01, so the report has something to show. Replace it with your providers' prices:

    [[build_vs_buy.offerings]]
    model_id = "llama-70b"            # the model_id of ours it replaces
    provider = "acme-ai"
    model = "llama-3.3-70b-instruct"
    input_per_1m = "0.60"
    cached_input_per_1m = "0.30"
    output_per_1m = "0.80"
    effective_from = 2026-12-01       # prices are effective-dated: history re-prices correctly
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Price = Decimal


class Offering(BaseModel):
    """One API price, valid on the days [effective_from, effective_to)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_id: str = Field(min_length=1, max_length=256)
    provider: str = Field(min_length=1, max_length=100)
    model: str = Field(min_length=1, max_length=200)
    input_per_1m: Price = Field(ge=0, lt=Decimal(1_000_000))
    cached_input_per_1m: Price | None = Field(default=None, ge=0, lt=Decimal(1_000_000))
    output_per_1m: Price = Field(ge=0, lt=Decimal(1_000_000))
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    effective_from: date = date(1970, 1, 1)
    effective_to: date | None = None
    example: bool = False  # shipped as an illustration, not a real price list

    @model_validator(mode="after")
    def _dates(self) -> Offering:
        if self.effective_to is not None and self.effective_to <= self.effective_from:
            raise ValueError("effective_to must be after effective_from")
        return self

    def valid_on(self, day: date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day < self.effective_to)


def _example(model_id: str, model: str, inp: str, cached: str, out: str) -> Offering:
    return Offering(model_id=model_id, provider="example-hosted-api", model=model, input_per_1m=Decimal(inp),
                    cached_input_per_1m=Decimal(cached), output_per_1m=Decimal(out),
                    example=True)  # valid on every day: an illustration, dated by the table


def example_offerings() -> list[Offering]:
    """Illustrative prices (not any provider's): the same order of magnitude as hosted open-weight models."""
    return [_example("llama-70b", "llama-70b-instruct", "0.60", "0.30", "0.80"),
            _example("llama-8b", "llama-8b-instruct", "0.10", "0.05", "0.10"),
            _example("mistral-7b", "mistral-7b-instruct", "0.10", "0.05", "0.20"),
            _example("qwen-7b", "qwen-7b-instruct", "0.10", "0.05", "0.20")]


class BuildVsBuySettings(BaseModel):
    """The offerings table (replace the examples with your prices)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    offerings: list[Offering] = Field(default_factory=example_offerings, max_length=1000)

    @model_validator(mode="after")
    def _one_price_a_day(self) -> BuildVsBuySettings:
        by: dict[tuple[str, str, str], list[Offering]] = {}
        for o in self.offerings:
            by.setdefault((o.model_id, o.provider, o.model), []).append(o)
        for (model_id, provider, model), prices in by.items():
            spans = sorted((p.effective_from, p.effective_to or date.max) for p in prices)
            if any(a[1] > b[0] for a, b in zip(spans, spans[1:], strict=False)):
                raise ValueError(f"{provider} {model} for {model_id}: effective dates overlap")
            if len({p.currency for p in prices}) > 1:
                raise ValueError(f"{provider} {model} for {model_id}: one currency per offering")
        return self
