"""Fixtures: worked example A in a real DuckDB file, keys of every role, the API under real uvicorn."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from finops.api import ApiSettings, create_app
from finops.api.state import AppState
from finops.settings import Settings
from finops.store import Store
from finops.store.keys import create_key
from tests.api.fake_prometheus import FakePrometheus, fake_prometheus
from tests.support.uvicorn_server import serve

# The API's clock: a week after example A's day, so the default window [now - 7 days, today) holds it.
NOW = datetime(2026, 11, 9, 12, 0, tzinfo=UTC)
WEEK = "2026-W45"  # Monday 2026-11-02, example A's day


@dataclass
class Keys:
    viewer: str
    finance: str
    admin: str
    coreai: str  # viewer scoped to team coreai
    platform: str  # finance scoped to team platform


@dataclass
class Api:
    url: str
    state: AppState
    store: Store
    settings: Settings

    def client(self, key: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)

    def get(self, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        with self.client(key) as c:
            return c.get(path, **kw)


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    with fake_prometheus() as fake:
        yield fake


@pytest.fixture
def api_settings(settings: Settings, tmp_path: Path, prometheus: FakePrometheus) -> Settings:
    prom = settings.prometheus.model_copy(update={"url": prometheus.url, "max_retries": 0, "timeout_seconds": 5})
    return settings.model_copy(update={"prometheus": prom, "reports_dir": tmp_path / "reports"})


@pytest.fixture
def data(example_a_data: None, store: Store) -> Store:
    """The test's store, holding worked example A (tests/support/example_a.py)."""
    return store


@pytest.fixture
def keys(data: Store) -> Keys:
    def key(role: str, team: str | None = None) -> str:
        return create_key(data, role, team, name=f"{role}-{team or 'all'}")[1]

    return Keys(key("viewer"), key("finance"), key("admin"), key("viewer", "coreai"), key("finance", "platform"))


@pytest.fixture
def start_api(api_settings: Settings, data: Store) -> Iterator[Callable[..., Api]]:
    """Start an API on the example-A store; keyword arguments become ApiSettings fields."""
    with ExitStack() as stack:

        def start(**api: Any) -> Api:
            app = create_app(api_settings, data, clock=lambda: NOW, api=ApiSettings(**api))
            url = stack.enter_context(serve(app))
            return Api(url, app.state.finops, data, api_settings)

        yield start


@pytest.fixture
def api(start_api: Callable[..., Api], keys: Keys) -> Api:
    return start_api()
