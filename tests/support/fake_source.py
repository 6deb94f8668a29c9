"""A source module for scheduler tests, registered through `finops.collect.SOURCES`: it records every
window it is asked to fetch, can be slow, and can fail the next N fetches of a scope. Its batches are
empty (the ledger is what these tests look at)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from finops.batch import Batch, Progress, SourceFailed, Task
from finops.settings import Settings
from finops.timeutil import Window


@dataclass
class State:
    scopes: list[str] = field(default_factory=lambda: ["fake"])
    fetched: list[tuple[str, Window, float]] = field(default_factory=list)  # (scope, window, monotonic time)
    fail_next: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0
    active: int = 0
    max_active: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def windows(self, scope: str = "fake") -> list[Window]:
        return [w for s, w, _ in self.fetched if s == scope]


STATE = State()


def reset() -> State:
    global STATE
    STATE = State()
    return STATE


def tasks(settings: Settings, window: Window, progress: Progress | None = None, *,
          now: datetime) -> list[Task]:
    state = STATE

    def make(scope: str) -> Task:
        def fetch() -> Batch:
            with state.lock:
                state.fetched.append((scope, window, time.monotonic()))
                state.active += 1
                state.max_active = max(state.max_active, state.active)
                failing = state.fail_next.get(scope, 0) > 0
                if failing:
                    state.fail_next[scope] -= 1
            try:
                time.sleep(state.delay)
                if failing:
                    raise SourceFailed(f"fake source {scope}: connection refused")
                return Batch(facts={})
            finally:
                with state.lock:
                    state.active -= 1

        return Task(scope, window, fetch)

    return [make(s) for s in state.scopes]
