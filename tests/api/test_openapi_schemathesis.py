"""schemathesis against /openapi.json of a live server: no 5xx, and every response matches the schema.

The schema is read from the app at import (pytest parametrizes by operation before fixtures
exist); the live server must serve exactly that document at /openapi.json, which is checked.
All of schemathesis's checks run except positive_data_acceptance: some schema-valid requests are
rightly refused with 422 (end before start, an unknown dim in group_by, a window over three years).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from finops.api import ApiSettings, create_app
from finops.settings import Settings
from finops.store import open_store
from finops.store.keys import create_key
from finops.tags import TagRules
from tests.api.conftest import NOW
from tests.api.fake_prometheus import fake_prometheus
from tests.support.example_a import load
from tests.support.uvicorn_server import serve

MAX_EXAMPLES = 25
API = ApiSettings(auth_failures_per_minute=10_000)  # the fuzzer's unauthenticated probes must not lock it out
SPEC = create_app(Settings(db=Path("openapi-only.duckdb")), api=API).openapi()  # opens nothing
schema = schemathesis.openapi.from_dict(SPEC)
# Cases carry the admin key (added at the call); the ignored_auth check still probes without it.
schema.config.generation.update(max_examples=MAX_EXAMPLES, with_security_parameters=False)


@dataclass
class Live:
    url: str
    headers: dict[str, str]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One server for every operation (module scope keeps the suite fast); state carries over."""
    tmp = tmp_path_factory.mktemp("schemathesis")
    patch = pytest.MonkeyPatch()
    # Collections the fuzzer starts stay on loopback: Prometheus is the test double, AWS a closed port.
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_EC2_METADATA_DISABLED", "true")):
        patch.setenv(name, value)
    settings = Settings(db=tmp / "finops.duckdb", reports_dir=tmp / "reports")
    store = open_store(settings.db, settings.duckdb)
    try:
        load(store, TagRules.from_settings(settings), tmp)
        _, admin = create_key(store, "admin")
        with fake_prometheus() as prom:
            settings = settings.model_copy(update={
                "prometheus": settings.prometheus.model_copy(update={"url": prom.url, "max_retries": 0}),
                "aws": settings.aws.model_copy(update={"endpoint_url": "http://127.0.0.1:9", "max_attempts": 1,
                                                       "connect_timeout_seconds": 1, "read_timeout_seconds": 2}),
            })
            with serve(create_app(settings, store, clock=lambda: NOW, api=API)) as url:
                assert httpx.get(f"{url}/openapi.json").json() == SPEC
                yield Live(url, {"Authorization": f"Bearer {admin}"})
    finally:
        store.close()
        patch.undo()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_conformance(case: schemathesis.Case, live: Live) -> None:
    case.call_and_validate(base_url=live.url, headers=live.headers, excluded_checks=[positive_data_acceptance])
