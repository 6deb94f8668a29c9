"""UTC time windows `[start, end)`, ISO weeks and the parsing of user-given dates."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True)
class Window:
    """A half-open UTC window `[start, end)`; naive datetimes are UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end:%Y-%m-%d %H:%M}) must be after start ({self.start:%Y-%m-%d %H:%M})")

    @classmethod
    def from_dates(cls, start: date, end: date) -> Window:
        return cls(datetime.combine(start, time()), datetime.combine(end, time()))

    def days(self) -> list[date]:
        d, out = self.start.date(), []
        while datetime.combine(d, time()) < self.end:
            out.append(d)
            d += timedelta(days=1)
        return out

    def __str__(self) -> str:
        return f"[{self.start:%Y-%m-%dT%H:%M}, {self.end:%Y-%m-%dT%H:%M})"


def to_utc_naive(ts: datetime) -> datetime:
    """Store and compare times as naive UTC."""
    if ts.tzinfo is None:
        return ts
    return ts.astimezone(UTC).replace(tzinfo=None)


def parse_date(text: str, name: str = "date") -> date:
    try:
        return date.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise ValueError(f"{name}: {text!r} is not a date (expected YYYY-MM-DD)") from None


def parse_week(text: str) -> Window:
    """`2026-W47` -> the Monday-to-Monday window of that ISO week."""
    m = _WEEK.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"week: {text!r} is not an ISO week (expected YYYY-Www, e.g. 2026-W47)")
    try:
        monday = date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
        return Window.from_dates(monday, monday + timedelta(days=7))
    except (ValueError, OverflowError):  # OverflowError: the week ends after 9999-12-31
        raise ValueError(f"week: {text!r} does not exist") from None


def iso_week(d: date) -> str:
    y, w, _ = d.isocalendar()
    return f"{y}-W{w:02d}"


def utcnow() -> datetime:
    """The system clock, as naive UTC. Built into a `Clock` once at an entry point and passed down;
    nothing below the entry points calls it directly."""
    return datetime.now(UTC).replace(tzinfo=None)


Clock = Callable[[], datetime]
"""Returns the current time as naive UTC. `utcnow` in production; a fixed or stepped clock in tests."""
