"""The suite's clock: a fixed "now" that never comes from the machine's calendar.

`TEST_NOW` defaults to a fixed instant; `FINOPS_TEST_NOW=2028-02-29T12:00:00` moves it, so that
the date-sensitive tests (marked `clock`) can be run at a month start, a month end, a year end or a
leap day (`make test-dates`). Tests whose logic depends on "now" place their data relative to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta

TEST_NOW = datetime.fromisoformat(os.environ.get("FINOPS_TEST_NOW", "2026-11-20T12:00:00"))
TODAY: date = TEST_NOW.date()


def month_start(d: date, months_back: int = 0) -> date:
    """The first day of the month `months_back` months before the month of `d`."""
    first = d.replace(day=1)
    for _ in range(months_back):
        first = (first - timedelta(days=1)).replace(day=1)
    return first


@dataclass
class FixedClock:
    """A clock that stands still until a test moves it."""

    now: datetime = TEST_NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now
