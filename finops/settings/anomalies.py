"""How the anomalies report scores a day against its group's history."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field


class AnomalySettings(BaseModel):
    """The baseline, the score that counts as anomalous, and the amounts too small to matter."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Days before the window that form each group's baseline (4 of each weekday by default).
    history_days: int = Field(default=28, ge=7, le=366)
    # A day is anomalous when its robust score reaches this (|value - baseline| / scale).
    min_score: float = Field(default=3.5, gt=0)
    # ... and its deviation is worth at least this much money (report currency), so a small group's
    # noise never pages anyone. For cost per 1k tokens, the deviation is priced at the day's tokens.
    min_deviation: Decimal = Field(default=Decimal("25"), ge=0)
    # The scale never goes below this share of the baseline (a perfectly regular history has MAD 0).
    min_relative_scale: float = Field(default=0.05, gt=0, lt=1)
    # Contributors listed for an anomalous day.
    contributors: int = Field(default=3, ge=1, le=20)
