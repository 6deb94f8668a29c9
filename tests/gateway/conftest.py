"""Fixtures: the fake upstream and the gateway, each under a real uvicorn on 127.0.0.1 and a free port."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from finops.gateway import CallerTags, GatewaySettings, create_app
from tests.gateway.upstream import FakeUpstream
from tests.support.uvicorn_server import serve

ALPHA_KEY = "sk-alpha-0123456789"
BETA_KEY = "sk-beta-9876543210"
# Beta's key is configured by its hash only: the gateway never needs to hold it.
KEYS = {
    ALPHA_KEY: CallerTags(project="Chatbot", team="Alpha", environment="Prod"),
    "sha256:" + hashlib.sha256(BETA_KEY.encode()).hexdigest(): CallerTags(project="search", team="beta"),
}
ALPHA = {"project": "chatbot", "team": "alpha", "environment": "prod"}
BETA = {"project": "search", "team": "beta", "environment": "__untagged__"}
UNTAGGED = {"project": "__untagged__", "team": "__untagged__", "environment": "__untagged__"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Upstream:
    def __init__(self, fake: FakeUpstream, url: str) -> None:
        self.fake, self.url = fake, url


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    fake = FakeUpstream()
    with serve(fake) as url:
        yield Upstream(fake, url)


@pytest.fixture
def start_gateway(upstream: Upstream) -> Iterator[Callable[..., str]]:
    """Start a gateway in front of ``upstream`` with settings overrides; returns its base URL."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> str:
            fields: dict[str, Any] = {"upstream_url": upstream.url, "keys": KEYS, **overrides}
            return stack.enter_context(serve(create_app(GatewaySettings(**fields))))

        yield start


def scrape(gateway_url: str) -> Samples:
    text = httpx.get(gateway_url + "/metrics", timeout=5).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of ``name`` over the series whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def wait_for(gateway_url: str, name: str, timeout: float = 5.0, **labels: str) -> Samples:
    """Scrape until a series matching ``labels`` exists (the gateway records a request as it ends)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(gateway_url)
        want = set(labels.items())
        if any(n == name and want <= ls for (n, ls) in samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"no {name} series with {labels}")
        time.sleep(0.02)


def wait_total(gateway_url: str, name: str, value: float, timeout: float = 5.0, **labels: str) -> Samples:
    """Scrape until ``total(name, labels)`` reaches ``value`` (a positive barrier: it must happen)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(gateway_url)
        if total(samples, name, **labels) >= value:
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} {labels} stayed below {value}: {total(samples, name, **labels)}")
        time.sleep(0.02)
