"""What one app instance holds: settings, the store, the clock, caches, limits and runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from finops.api.cache import DataVersion, ReportCache
from finops.api.keystore import KeyCache, LastUsed
from finops.api.runs import RunRegistry
from finops.settings import Settings
from finops.settings.api import ApiSettings
from finops.store import Store
from finops.store.keys import FailureLimiter
from finops.tags import TagRules

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class AppState:
    """Per-app state (never module-level): two apps in one process share nothing.

    `store`, `runs` and `last_used` exist from startup to shutdown (the store is opened at startup
    unless the caller passed one).
    """

    settings: Settings
    api: ApiSettings
    clock: Clock
    rules: TagRules
    cache: ReportCache
    limiter: FailureLimiter
    keys: KeyCache
    # The API's own request metrics (open on /metrics by default) and the FinOps KPIs (every team's
    # costs: an unscoped key only, unless `open_metrics_kpis`), kept apart so each can be served alone.
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    kpis: CollectorRegistry = field(default_factory=CollectorRegistry)
    store: Store | None = None
    runs: RunRegistry | None = None
    last_used: LastUsed | None = None
    version: DataVersion | None = None

    def db(self) -> Store:
        if self.store is None:
            raise RuntimeError("the store is not open (the app has not started)")
        return self.store

    def data_version(self) -> DataVersion:
        if self.version is None:
            raise RuntimeError("the app has not started")
        return self.version

    def jobs(self) -> RunRegistry:
        if self.runs is None:
            raise RuntimeError("the app has not started")
        return self.runs

    def now(self) -> datetime:
        """The clock's time as aware UTC."""
        t = self.clock()
        return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
