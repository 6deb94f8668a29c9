"""How daily cost and tokens are forecast (docs/definitions.md 6.7), for budgets and the forecast report."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ForecastSettings(BaseModel):
    """The history a forecast learns from, the method's thresholds and the interval's coverage."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Days of history before the forecast's first day (8 weeks: enough for a weekly pattern).
    history_days: int = Field(default=56, ge=7, le=366)
    # Exponential smoothing (with weekly seasonality) needs at least this many days of history;
    # below it, the weekday mean (two weeks or more) or the recent mean is used.
    min_seasonal_days: int = Field(default=21, ge=14, le=366)
    # The interval's coverage: 0.8 gives the 10th and 90th percentiles.
    level: float = Field(default=0.8, gt=0, lt=1)
    # Simulated paths behind the interval of exponential smoothing (seeded: same data, same answer).
    repetitions: int = Field(default=1000, ge=100, le=20000)
