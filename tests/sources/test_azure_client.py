"""Throttling, pacing, credentials and link checks of the Azure collector, through the real SDK."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import DefaultAzureCredential
from typer.testing import CliRunner

from finops.cli import app
from finops.collect import RunResult, collect, run_tasks
from finops.settings import AzureSettings, Settings
from finops.sources.azure import cost as azure_cost
from finops.sources.azure.client import make_client
from finops.store import Store
from finops.timeutil import Window
from tests.support.azure_fake import (
    QPU_HEADER,
    THROTTLED,
    Atom,
    AzureFake,
    Clock,
    FakeCredential,
    Reply,
    Seen,
    make_cert,
)

SCOPE = "subscriptions/33333333-3333-3333-3333-333333333333"
VM = "/subscriptions/33333333-3333-3333-3333-333333333333/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm-1"
WINDOW = Window(datetime(2026, 11, 1), datetime(2026, 11, 3))
QUERIES = 5 * 2  # (4 tags + service) x (actual, amortised), one month
PREFIX = "x-ms-ratelimit-microsoft.costmanagement-"
FACT_TABLES = ["cost_lines", "cost_daily", "quarantine", "gpu_hours", "token_hours", "inventory"]


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("azure-tls"))


@pytest.fixture
def fake(cert: tuple[Path, Path]) -> Iterator[AzureFake]:
    with AzureFake(*cert, page_size=1) as f:
        for cost_type in ("ActualCost", "AmortizedCost"):
            f.add(SCOPE, cost_type, [Atom(VM, date(2026, 11, d), 10.5 * d, tags={"Project": "chatbot"})
                                     for d in (1, 2)])
        yield f


def azure_settings(settings: Settings, fake: AzureFake, cert: tuple[Path, Path], **extra: Any) -> Settings:
    base: dict[str, Any] = {"scopes": [SCOPE], "base_url": fake.base_url, "verify_tls": str(cert[0]),
                            "min_seconds_between_queries": 0}
    return settings.model_copy(update={"azure": AzureSettings(**{**base, **extra})})


def run(store: Store, s: Settings, clock: Clock, credential: Any = None) -> RunResult:
    tasks = azure_cost.tasks(s, WINDOW, credential=credential or FakeCredential(), sleep=clock.sleep,
                             clock=clock.time, now=datetime(2026, 11, 23))
    [result] = run_tasks(store, "azure", tasks)
    return result


def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    return {t: store.query(f"SELECT * FROM {t} ORDER BY ALL") for t in FACT_TABLES}


def first_queries(fake: AzureFake) -> list[Seen]:
    return [q for q in fake.requests if "$skiptoken" not in q.query]


def test_a_429_sequence_is_waited_out_as_told(store: Store, settings: Settings, fake: AzureFake,
                                              cert: tuple[Path, Path]) -> None:
    fake.script(Reply(429, {QPU_HEADER: "3"}, THROTTLED))
    fake.script(Reply(429, {f"{PREFIX}entity-retry-after": "2", f"{PREFIX}tenant-retry-after": "7",
                            f"{PREFIX}clienttype-retry-after": "1"}, THROTTLED))
    # Plain Retry-After only: azure-core would sleep and retry by itself; the collector must do it.
    fake.script(Reply(429, {"Retry-After": "4"}, THROTTLED))
    fake.script(Reply(429, {}, THROTTLED))  # no header at all: the default wait
    # a throttled follow-up page (the nextLink path goes through the same loop)
    fake.script(Reply(429, {QPU_HEADER: "5"}, THROTTLED), when=lambda s: "$skiptoken" in s.query)
    clock = Clock()
    started = time.monotonic()
    result = run(store, azure_settings(settings, fake, cert), clock)
    assert result.status == "succeeded", result.error
    assert clock.sleeps == [3, 7, 4, 80, 5]  # the 4th 429 in a row: 10 s doubled three times
    assert time.monotonic() - started < 3  # nobody really slept
    assert result.requests == len(fake.requests) == len([q for q in fake.requests if q.status == 200]) + 5
    assert store.query("SELECT sum(billed_cost) FROM cost_lines")[0][0] == fake.total(SCOPE, "ActualCost")
    assert fake.violations == []


def test_endless_429_fails_the_run_and_leaves_the_store_as_it_was(store: Store, settings: Settings,
                                                                  fake: AzureFake, cert: tuple[Path, Path]) -> None:
    s = azure_settings(settings, fake, cert, max_attempts=4)
    assert run(store, s, Clock()).status == "succeeded"
    before = snapshot(store)
    assert before["cost_lines"]
    fake.requests.clear()
    fake.script(Reply(429, {QPU_HEADER: "2"}, THROTTLED), times=None)
    clock = Clock()
    result = run(store, s, clock)
    assert result.status == "failed"
    assert "throttled by Azure (HTTP 429 429: Too many requests. Please retry.)" in (result.error or "")
    assert "all 4 attempts" in (result.error or "")
    assert clock.sleeps == [2, 2, 2]
    assert result.requests == len(fake.requests) == 4
    assert snapshot(store) == before
    assert store.query("SELECT status, requests, error FROM source_runs ORDER BY run_id")[-1] == (
        "failed", 4, result.error)


def test_a_wait_longer_than_allowed_fails_at_once(store: Store, settings: Settings, fake: AzureFake,
                                                  cert: tuple[Path, Path]) -> None:
    fake.script(Reply(429, {"Retry-After": "3600"}, THROTTLED), times=None)
    clock = Clock()
    result = run(store, azure_settings(settings, fake, cert, max_wait_seconds=60), clock)
    assert result.status == "failed" and clock.sleeps == []
    assert "asks to wait 3600 s, more than azure.max_wait_seconds = 60" in (result.error or "")


def test_queries_are_spaced(store: Store, settings: Settings, fake: AzureFake, cert: tuple[Path, Path]) -> None:
    clock = Clock()
    result = run(store, azure_settings(settings, fake, cert, min_seconds_between_queries=2.5), clock)
    assert result.status == "succeeded"
    assert len(first_queries(fake)) == QUERIES and len(fake.requests) > QUERIES  # pages are spaced too
    assert clock.sleeps == [2.5] * (len(fake.requests) - 1)


def test_a_next_link_to_another_host_is_not_followed(store: Store, settings: Settings, fake: AzureFake,
                                                     cert: tuple[Path, Path]) -> None:
    page = {"properties": {"nextLink": "https://attacker.example/q?$skiptoken=1", "columns": [], "rows": []}}
    fake.script(Reply(200, body=page))
    result = run(store, azure_settings(settings, fake, cert), Clock())
    assert result.status == "failed" and "nextLink points outside" in (result.error or "")
    assert len(fake.requests) == 1


def test_http_errors_name_the_status_and_azure_message(store: Store, settings: Settings, fake: AzureFake,
                                                       cert: tuple[Path, Path]) -> None:
    fake.script(Reply(403, body={"error": {"code": "AuthorizationFailed", "message": "no access to scope"}}))
    result = run(store, azure_settings(settings, fake, cert), Clock())
    assert result.status == "failed"
    assert result.error == f"ActualCost query on {SCOPE} failed: HTTP 403 AuthorizationFailed: no access to scope"


def test_a_credential_failure_fails_the_run_without_secrets(store: Store, settings: Settings, fake: AzureFake,
                                                            cert: tuple[Path, Path]) -> None:
    class Refusing:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise ClientAuthenticationError("tenant refused client 0000 (AADSTS7000215)")

    result = run(store, azure_settings(settings, fake, cert), Clock(), credential=Refusing())
    assert result.status == "failed"
    assert result.error == "Azure authentication failed: tenant refused client 0000 (AADSTS7000215)"
    assert fake.requests == []


def test_a_wrong_certificate_is_refused(store: Store, settings: Settings, fake: AzureFake,
                                        tmp_path: Path) -> None:
    other, _ = make_cert(tmp_path)
    result = run(store, azure_settings(settings, fake, (other, other)), Clock())
    assert result.status == "failed" and "cannot reach" in (result.error or "")
    assert fake.requests == []


def test_client_is_https_only_with_default_credential_and_scope_from_base_url() -> None:
    with pytest.raises(ValueError, match="must be an https:// URL"):
        make_client(AzureSettings(base_url="http://127.0.0.1:1"), FakeCredential())
    client = make_client(AzureSettings(base_url="https://management.chinacloudapi.cn/"))
    try:
        assert isinstance(client._config.credential, DefaultAzureCredential)
        assert client._config.credential_scopes == ["https://management.chinacloudapi.cn/.default"]
    finally:
        client.close()


def test_collect_records_planning_errors_as_failed_runs(store: Store, settings: Settings) -> None:
    [result] = collect(store, settings, "azure", WINDOW)
    assert result.status == "failed" and (result.error or "").startswith("azure.scopes is empty: set FINOPS_AZURE_SCOPES")
    bad = settings.model_copy(update={"azure": AzureSettings(scopes=["subscriptions/a", "subscriptions/a/resourceGroups/b"])})
    [result] = collect(store, bad, "azure", WINDOW)
    assert result.status == "failed" and "counted twice" in (result.error or "")
    http = settings.model_copy(update={"azure": AzureSettings(scopes=[SCOPE], base_url="http://127.0.0.1:9")})
    [result] = collect(store, http, "azure", WINDOW)
    assert result.error == "azure.base_url must be an https:// URL, got 'http://127.0.0.1:9'"
    assert store.query("SELECT count(*) FROM cost_lines")[0][0] == 0


def test_progress_counts_queries_across_scopes(settings: Settings, fake: AzureFake, cert: tuple[Path, Path]) -> None:
    seen: list[tuple[int, int]] = []
    s = azure_settings(settings, fake, cert, scopes=[SCOPE, "subscriptions/44444444-4444-4444-4444-444444444444"])
    clock = Clock()
    tasks = azure_cost.tasks(s, WINDOW, lambda done, total: seen.append((done, total)), credential=FakeCredential(),
                             sleep=clock.sleep, clock=clock.time, now=datetime(2026, 11, 23))
    for t in tasks:
        t.fetch()
    assert seen == [(n, 2 * QUERIES) for n in range(1, 2 * QUERIES + 1)]


def test_cli_collect_azure_reads_scopes_and_endpoint_from_the_environment(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_DB", str(tmp_path / "cli.duckdb"))
    monkeypatch.setenv("FINOPS_AZURE_SCOPES", json.dumps([SCOPE]))
    monkeypatch.setenv("FINOPS_AZURE_BASE_URL", "http://management.example")
    result = CliRunner().invoke(app, ["collect", "azure", "--start", "2026-11-01", "--end", "2026-11-03"])
    assert result.exit_code == 1
    output = " ".join(result.output.split())  # rich wraps long lines
    assert "azure: failed: azure.base_url must be an https:// URL, got 'http://management.example'" in output
