"""Report parameters (docs/definitions.md section 5-6), validated against fixed lists before any SQL runs."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from finops.attribution.query import ParamError
from finops.settings import SharedKey
from finops.tags import DIMS
from finops.timeutil import Window, parse_date, parse_week, utcnow

Granularity = Literal["day", "week", "month", "total"]
CostBasis = Literal["effective", "billed"]
Scope = Literal["all", "accelerator"]

# Longest window a report may cover; a bound on work per request.
MAX_DAYS = 3 * 366
# Dates a report may name: no bill lies outside, and reports reach a window back (the previous
# week), which must stay within what a date can hold.
MIN_DATE, MAX_DATE = date(1900, 1, 1), date(2999, 12, 31)


class ReportParams(BaseModel):
    """Everything a report depends on. Built by `build_params`, which names the bad parameter."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: date
    end: date
    group_by: tuple[str, ...] = DIMS
    granularity: Granularity = "total"
    cost_basis: CostBasis = "effective"
    idle_threshold: float = Field(0.05, ge=0.0, le=1.0)
    required_tags: tuple[str, ...] = DIMS
    scope: Scope = "all"
    shared_cost_key: SharedKey = "gpu_hours"
    currency: str | None = None
    # Where vLLM gave no prefill and decode time, a generated token costs this many prompt tokens
    # when unit economics splits cost between prompt and generation (docs/definitions.md 6.1).
    generation_weight: Decimal = Field(Decimal(4), gt=0, le=1000)
    # Row filters on dims, e.g. {"team": "coreai"} for a team-scoped API key.
    filters: dict[str, str] = Field(default_factory=dict)

    @field_validator("start", "end")
    @classmethod
    def _in_range(cls, v: date) -> date:
        if not MIN_DATE <= v <= MAX_DATE:
            raise ValueError(f"{v} is out of range ({MIN_DATE} to {MAX_DATE})")
        return v

    @field_validator("group_by", "required_tags")
    @classmethod
    def _known_dims(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [d for d in v if d not in DIMS]
        if unknown:
            raise ValueError(f"unknown dimension(s) {', '.join(map(repr, unknown))}; choose from {', '.join(DIMS)}")
        if len(set(v)) != len(v):
            raise ValueError("a dimension is repeated")
        # Outputs always list dims in the canonical order.
        return tuple(d for d in DIMS if d in v)

    @field_validator("filters")
    @classmethod
    def _known_filter_dims(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = [d for d in v if d not in DIMS]
        if unknown:
            raise ValueError(f"unknown dimension(s) {', '.join(map(repr, unknown))}")
        return v

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if len(v) != 3 or not v.isalpha():
            raise ValueError(f"{v!r} is not a currency code")
        return v.upper()

    @model_validator(mode="after")
    def _window(self) -> ReportParams:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        if (self.end - self.start).days > MAX_DAYS:
            raise ValueError(f"the window is {(self.end - self.start).days} days; at most {MAX_DAYS} allowed")
        return self

    @property
    def window(self) -> Window:
        return Window.from_dates(self.start, self.end)


def _split(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(i.strip().lower() for i in items if i.strip())


def build_params(*, start: str | date | None = None, end: str | date | None = None, week: str | None = None,
                 group_by: str | list[str] | None = None, required_tags: str | list[str] | None = None,
                 default_required: tuple[str, ...] | list[str] = DIMS,
                 default_window_days: int = 7, today: date | None = None,
                 **other: object) -> ReportParams:
    """Turn user input (strings from CLI or query) into ReportParams, or raise ParamError naming it."""
    if week is not None:
        if start is not None or end is not None:
            raise ParamError("week", "give either week or start/end, not both")
        try:
            w = parse_week(week)
        except ValueError as exc:
            raise ParamError("week", str(exc).split(": ", 1)[1]) from None
        s, e = w.start.date(), w.end.date()
    else:
        today = today or utcnow().date()  # callers with a clock pass `today`; UTC either way
        try:
            e = parse_date(end, "end") if isinstance(end, str) else (end or today)
        except ValueError as exc:
            raise ParamError("end", str(exc).split(": ", 1)[1]) from None
        try:
            s = parse_date(start, "start") if isinstance(start, str) else (start or e - timedelta(days=default_window_days))
        except ValueError as exc:
            raise ParamError("start", str(exc).split(": ", 1)[1]) from None
        except OverflowError:  # the default start, days before an `end` near 0001-01-01
            raise ParamError("end", f"{e} is out of range ({MIN_DATE} to {MAX_DATE})") from None
    values: dict[str, object] = {"start": s, "end": e, **{k: v for k, v in other.items() if v is not None}}
    gb = _split(group_by)
    if gb is not None:
        values["group_by"] = gb
    values["required_tags"] = _split(required_tags) or tuple(default_required)
    try:
        return ReportParams(**values)  # type: ignore[arg-type]
    except Exception as exc:  # pydantic ValidationError: report the first problem by parameter name
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            raise
        # Without context and input: the context holds the raised error, whose traceback would keep
        # this frame alive in a reference cycle for every bad request.
        first = errors(include_url=False, include_context=False, include_input=False)[0]
        loc = [str(p) for p in first.get("loc", ())]
        param = loc[0] if loc else "end"  # model-level checks are about the window
        if week is not None and param in ("start", "end"):
            param = "week"
        msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        raise ParamError(param, msg) from None
