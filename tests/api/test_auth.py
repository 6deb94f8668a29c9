"""Bearer keys: missing, wrong, malformed and revoked keys; the failed-attempt limit; keys never logged."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finops.cli import app as cli_app
from finops.settings import Settings
from finops.store import open_store
from finops.store.keys import FailureLimiter, list_keys, verify_key
from tests.api.conftest import Api, Keys

REPORT = "/v1/reports/unit-economics"


def test_no_key(api: Api) -> None:
    r = api.get(REPORT)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["param"] == "authorization"
    with api.client() as c:
        assert c.get(REPORT, headers={"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401


@pytest.mark.parametrize("make_bad", [
    lambda k: "fk_0123456789abcdef_" + "x" * 43,  # well formed, unknown id
    lambda k: k[:-4] + "AAAA",  # a real key id with a wrong secret
    lambda k: "not-a-key",
    lambda k: k + "x" * 200,
])
def test_wrong_keys(api: Api, keys: Keys, make_bad: Callable[[str], str]) -> None:
    r = api.get(REPORT, make_bad(keys.viewer))
    assert r.status_code == 401
    assert r.json() == {"error": {"param": "authorization", "message": "authorization: the key is not valid"}}


def test_failed_attempts_are_limited_per_address(start_api: Callable[..., Api], keys: Keys) -> None:
    api = start_api(auth_failures_per_minute=5)
    with api.client("fk_0123456789abcdef_" + "y" * 43) as bad:
        assert [bad.get(REPORT).status_code for _ in range(5)] == [401] * 5
        limited = bad.get(REPORT)
    assert limited.status_code == 429
    assert 0 < int(limited.headers["retry-after"]) <= 60
    # While limited, even the right key is refused from this address: guessing gains nothing.
    assert api.get(REPORT, keys.viewer).status_code == 429
    assert api.get("/healthz").status_code == 200  # open endpoints are unaffected


def test_keys_never_in_logs(start_api: Callable[..., Api], keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api = start_api(key_cache_seconds=0)
    wrong = keys.finance[:-6] + "ZZZZZZ"
    assert api.get(REPORT, wrong).status_code == 401
    assert api.get(REPORT, keys.viewer).status_code == 200
    assert api.get("/v1/reports/weekly", keys.viewer).status_code == 403
    with api.client(keys.admin) as c:
        created = c.post("/v1/keys", json={"role": "viewer"}).json()["key"]
    assert api.get(REPORT, created).status_code == 200
    time.sleep(0.2)  # let background writes (last use) log, if they did
    text = caplog.text
    assert "authentication failed from 127.0.0.1: wrong secret" in text  # the failure is logged...
    for key in (keys.viewer, keys.finance, keys.admin, wrong, created):
        secret = key.split("_", 2)[2]
        assert secret not in text and secret[:12] not in text  # ...but no key, not even in part
        assert hashlib.sha256(key.encode()).hexdigest() not in text


def test_revoked_key_is_refused_at_once(api: Api, keys: Keys) -> None:
    with api.client(keys.admin) as admin:
        r = admin.post("/v1/keys", json={"role": "finance", "team": "Platform", "name": "ci"})
        assert r.status_code == 201
        new = r.json()
        assert new["team"] == "platform" and new["role"] == "finance"
        assert api.get("/v1/reports/weekly", new["key"]).status_code == 200  # verified, now cached
        listed = admin.get("/v1/keys").json()
        assert new["key_id"] in {k["key_id"] for k in listed}
        assert all("key" not in k and "key_hash" not in k for k in listed)
        assert admin.delete(f"/v1/keys/{new['key_id']}").status_code == 204
        assert admin.delete(f"/v1/keys/{new['key_id']}").status_code == 404
    assert api.get("/v1/reports/weekly", new["key"]).status_code == 401


@pytest.mark.parametrize(("body", "param"), [
    ({"role": "admin", "team": "coreai"}, "team"),
    ({"role": "viewer", "team": "__unallocated__"}, "team"),
    ({"role": "viewer", "team": "none"}, "team"),
    ({"role": "owner"}, "role"),
])
def test_bad_key_requests(api: Api, keys: Keys, body: dict[str, str], param: str) -> None:
    with api.client(keys.admin) as admin:
        r = admin.post("/v1/keys", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["param"] == param


def test_only_admins_manage_keys(api: Api, keys: Keys) -> None:
    for key in (keys.viewer, keys.finance, keys.coreai):
        with api.client(key) as c:
            assert c.post("/v1/keys", json={"role": "viewer"}).status_code == 403
            assert c.get("/v1/keys").status_code == 403


def test_last_use_is_recorded(api: Api, keys: Keys) -> None:
    assert api.get(REPORT, keys.viewer).status_code == 200
    deadline = time.monotonic() + 5
    while True:
        used = {k.key_id: k.last_used_at for k in list_keys(api.store)}
        if used[keys.viewer.split("_")[1]] is not None:
            break
        assert time.monotonic() < deadline, "last_used_at was not written"
        time.sleep(0.02)
    assert used[keys.admin.split("_")[1]] is None


def test_cli_creates_lists_and_revokes(tmp_path: Path) -> None:
    env = {"FINOPS_DB": str(tmp_path / "keys.duckdb"), "COLUMNS": "200"}
    runner = CliRunner()
    created = runner.invoke(cli_app, ["keys", "create", "--role", "finance", "--team", "Platform", "--name", "bi"],
                            env=env)
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("fk_")
    key_id = key.split("_")[1]
    store = open_store(Settings(db=tmp_path / "keys.duckdb").db)
    try:
        principal = verify_key(store, key).principal
    finally:
        store.close()
    assert principal is not None and (principal.role, principal.team, principal.name) == ("finance", "platform", "bi")
    listed = runner.invoke(cli_app, ["keys", "list"], env=env)
    assert key_id in listed.stdout and key.split("_", 2)[2] not in listed.stdout
    assert runner.invoke(cli_app, ["keys", "create", "--role", "root"], env=env).exit_code != 0
    assert runner.invoke(cli_app, ["keys", "revoke", key_id], env=env).exit_code == 0
    assert runner.invoke(cli_app, ["keys", "revoke", key_id], env=env).exit_code == 1
    store = open_store(Settings(db=tmp_path / "keys.duckdb").db)
    try:
        verdict = verify_key(store, key)
    finally:
        store.close()
    assert verdict.principal is None and verdict.reason == "revoked key"


def test_failure_limiter_window() -> None:
    limiter = FailureLimiter(limit=2, window_seconds=60)
    assert limiter.failed("10.0.0.1", 0.0) == 1 and limiter.retry_after("10.0.0.1", 0.5) is None
    assert limiter.failed("10.0.0.1", 1.0) == 2
    assert limiter.retry_after("10.0.0.1", 2.0) == pytest.approx(58.0)
    assert limiter.retry_after("10.0.0.2", 2.0) is None  # per address
    assert limiter.retry_after("10.0.0.1", 60.5) is None  # the first failure has aged out
    small = FailureLimiter(limit=1, max_clients=3)
    for i in range(10):
        small.failed(f"10.0.1.{i}", 0.0)
    assert len(small._fails) == 3  # memory stays bounded under an address sweep
