"""Forecast one daily series (docs/definitions.md 6.7): a point per day and an interval, by the
best method the history allows.

- `ets`: exponential smoothing with a damped additive trend and additive weekly seasonality
  (statsmodels' ETSModel), when the history holds `min_seasonal_days` and is not constant. The
  interval comes from simulated paths (seeded), so the interval of a period's total is that of
  the sum of the days, not the sum of the days' intervals.
- `weekday_mean`: each weekday's mean over the last four weeks, when two weeks are known or the
  smoothing cannot be fitted; the interval assumes independent daily errors (their spread in
  the history).
- `mean`: the mean of the last seven days, for shorter histories; `none`: no history, zero.

Forecasts are estimates in floats; callers round them to cents and whole tokens. Values never go
below zero (cost and tokens do not).
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import NormalDist

from finops.settings.forecast import ForecastSettings

WEEK = 7


@dataclass(frozen=True)
class Forecast:
    """Per horizon day: point, low, high; and the same for the total over the horizon."""

    method: str
    point: list[float]
    low: list[float]
    high: list[float]
    total: float
    total_low: float
    total_high: float


def _clip(xs: list[float]) -> list[float]:
    return [max(x, 0.0) for x in xs]


def _independent(point: list[float], sigma: float, method: str, level: float) -> Forecast:
    z = NormalDist().inv_cdf(0.5 + level / 2)
    total, spread = sum(point), z * sigma * math.sqrt(len(point))
    return Forecast(method, _clip(point), _clip([p - z * sigma for p in point]), _clip([p + z * sigma for p in point]),
                    max(total, 0.0), max(total - spread, 0.0), max(total + spread, 0.0))


def _weekday_mean(history: list[float], first: date, horizon: int, level: float) -> Forecast:
    by_day: dict[int, list[float]] = {}
    for i, v in enumerate(history):
        by_day.setdefault((first + timedelta(days=i)).weekday(), []).append(v)
    means = {wd: statistics.fmean(vs[-4:]) for wd, vs in by_day.items()}
    residuals = [v - means[(first + timedelta(days=i)).weekday()] for i, v in enumerate(history)]
    sigma = statistics.pstdev(residuals) if len(residuals) > 1 else 0.0
    start = first + timedelta(days=len(history))
    point = [means[(start + timedelta(days=h)).weekday()] for h in range(horizon)]
    return _independent(point, sigma, "weekday_mean", level)


def _ets(history: list[float], horizon: int, cfg: ForecastSettings) -> Forecast | None:
    """Exponential smoothing, or None when it cannot be fitted cleanly (then a simpler method is used)."""
    import numpy as np
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        warnings.simplefilter("error", RuntimeWarning)
        try:
            fit = ETSModel(np.asarray(history, dtype=float), error="add", trend="add", damped_trend=True,
                           seasonal="add", seasonal_periods=WEEK).fit(disp=False)
            point = [float(x) for x in fit.forecast(horizon)]
            paths = fit.simulate(horizon, anchor="end", repetitions=cfg.repetitions, rng=np.random.default_rng(0))
        except (ConvergenceWarning, RuntimeWarning, ValueError, np.linalg.LinAlgError):
            return None
    paths = np.maximum(np.asarray(paths, dtype=float).reshape(horizon, -1), 0.0)
    if not np.isfinite(paths).all() or not all(map(math.isfinite, point)):
        return None
    lo, hi = 50 * (1 - cfg.level), 50 * (1 + cfg.level)
    totals = paths.sum(axis=0)
    return Forecast("ets", _clip(point), [float(x) for x in np.percentile(paths, lo, axis=1)],
                    [float(x) for x in np.percentile(paths, hi, axis=1)], max(sum(point), 0.0),
                    float(np.percentile(totals, lo)), float(np.percentile(totals, hi)))


def forecast(history: list[float], first: date, horizon: int, cfg: ForecastSettings) -> Forecast:
    """Forecast the `horizon` days after `history` (consecutive daily values, the first on `first`)."""
    if horizon <= 0 or not history:  # nothing to forecast, or nothing to learn from
        zeros = [0.0] * max(horizon, 0)
        return Forecast("none", zeros, zeros, zeros, 0.0, 0.0, 0.0)
    if len(history) >= cfg.min_seasonal_days and max(history) != min(history):
        found = _ets(history, horizon, cfg)
        if found is not None:
            return found
    if len(history) >= 2 * WEEK:
        return _weekday_mean(history, first, horizon, cfg.level)
    recent = history[-WEEK:]
    sigma = statistics.pstdev(recent) if len(recent) > 1 else 0.0
    return _independent([statistics.fmean(recent)] * horizon, sigma, "mean", cfg.level)
