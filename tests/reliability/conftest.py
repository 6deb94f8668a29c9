"""Fixtures of the reliability suite: one real Prometheus serving the small fleet for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.promfleet import SmallFleet, build
from tests.support.prometheus import PrometheusServer


@pytest.fixture(scope="session")
def small_fleet() -> SmallFleet:
    return build()


@pytest.fixture(scope="session")
def prom(small_fleet: SmallFleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    with PrometheusServer.from_series(tmp_path_factory.mktemp("reliability-prom"), small_fleet.series) as server:
        yield server
