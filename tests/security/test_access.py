"""Access to the HTTP API, swept over every operation its OpenAPI document lists: keys required, roles
enforced, team-scoped keys confined to their team in every report, format, filter and group_by, keys
never in logs, answers or the database file, and failed authentications rate-limited per address.

Runs against what exists of `finops.api` (the API's own test set-up: worked example A, keys of every
role, real uvicorn). An operation added to the API without an entry in ACCESS fails the sweep.
"""

from __future__ import annotations

import io
import itertools
import logging
import zipfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from finops.api import ApiSettings
from finops.collect import run_task
from finops.sources.focus import SOURCE as FOCUS
from finops.sources.focus import file_task
from finops.store.keys import FailureLimiter, hash_key
from finops.tags import TagRules
from tests.api.conftest import WEEK, Api, Keys

# Who may call each operation (the lowest role; None: open without a key by default).
ACCESS: dict[tuple[str, str], str | None] = {
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
    ("GET", "/metrics"): None,
    ("GET", "/v1/reports/unit-economics"): "viewer",
    ("GET", "/v1/reports/idle-gpus"): "viewer",
    ("GET", "/v1/reports/untagged-spend"): "viewer",
    ("GET", "/v1/reports/weekly"): "finance",
    ("GET", "/v1/reports/recommendations"): "viewer",
    ("GET", "/v1/reports/anomalies"): "viewer",
    ("GET", "/v1/reports/forecast"): "viewer",
    ("GET", "/v1/reports/budgets"): "viewer",
    ("GET", "/v1/reports/bill-check"): "viewer",
    ("GET", "/v1/exports/focus"): "finance",
    ("GET", "/v1/reports/build-vs-buy"): "viewer",
    ("GET", "/v1/budgets"): "viewer",
    ("GET", "/v1/budgets/{name}"): "viewer",
    ("POST", "/v1/budgets"): "finance",
    ("PUT", "/v1/budgets/{name}"): "finance",
    ("DELETE", "/v1/budgets/{name}"): "finance",
    ("GET", "/v1/reports/weekly/files"): "finance",
    ("GET", "/v1/reports/weekly/files/{file_id}"): "finance",
    ("GET", "/v1/sources"): "viewer",
    ("POST", "/v1/sources/{name}/runs"): "admin",
    ("POST", "/v1/sources/focus/files"): "admin",
    ("GET", "/v1/sources/runs/{job_id}"): "admin",
    ("GET", "/v1/alerts"): "viewer",
    ("GET", "/v1/keys"): "admin",
    ("POST", "/v1/keys"): "admin",
    ("DELETE", "/v1/keys/{key_id}"): "admin",
}
RANK = {"viewer": 0, "finance": 1, "admin": 2}
CHECKS_A_SENT_KEY = {"/metrics"}  # open operations that refuse a bad key rather than ignore it
# Harmless path values: nothing exists under them, so an allowed call answers 404 or 422, never acts.
PATH_VALUES = {"file_id": "999999", "name": "nosuch", "job_id": "999999", "key_id": "0000000000000000"}
# Refused by validation after the role check.
BODIES = {("POST", "/v1/keys"): {"role": "owner"}, ("POST", "/v1/budgets"): {"name": "x"},
          ("PUT", "/v1/budgets/{name}"): {"amount": "-1"}}
BOGUS = "fk_0123456789abcdef_" + "Q" * 43
OPEN_PAGES = ("/openapi.json", "/docs", "/docs-assets/swagger-ui-bundle.js")


def operations(api: Api) -> list[tuple[str, str]]:
    spec = httpx.get(api.url + "/openapi.json").json()
    return [(method.upper(), path) for path, item in spec["paths"].items() for method in item]


def call(client: httpx.Client, key: str | None, method: str, path: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.request(method, path.format(**PATH_VALUES), json=BODIES.get((method, path)), headers=headers)


def test_the_sweep_knows_every_operation(start_api: Callable[..., Api], keys: Keys) -> None:
    api = start_api()
    assert sorted(operations(api)) == sorted(ACCESS), "classify new operations in ACCESS"


@pytest.mark.parametrize("closed", [False, True], ids=["default", "health-and-metrics-closed"])
def test_every_operation_requires_a_valid_key(start_api: Callable[..., Api], keys: Keys, closed: bool) -> None:
    api = start_api(auth_failures_per_minute=10_000, open_health=not closed, open_metrics=not closed)
    client = api.client()
    for method, path in operations(api):
        open_ = ACCESS[(method, path)] is None and not closed
        for key in (None, BOGUS, "not-a-key", keys.viewer + "x"):
            r = call(client, key, method, path)
            # An open /metrics checks a key that is sent (the key decides whether the KPIs are shown).
            if open_ and (key is None or path not in CHECKS_A_SENT_KEY):
                assert r.status_code == 200, (method, path, key)
            else:
                assert r.status_code == 401, (method, path, key, r.text)
                assert r.headers["www-authenticate"] == "Bearer"
                assert (key or "fk_") not in r.text
    for page in OPEN_PAGES:  # the API's description is public; it holds no data
        assert client.get(page).status_code == 200
    client.close()


def test_roles_are_enforced_on_every_operation(start_api: Callable[..., Api], keys: Keys) -> None:
    api = start_api()
    by_role = {"viewer": keys.viewer, "finance": keys.finance, "admin": keys.admin}
    client = api.client()
    for (method, path), need in ACCESS.items():
        for role, key in by_role.items():
            r = call(client, key, method, path)
            if need is None or RANK[role] >= RANK[need]:
                assert r.status_code not in (401, 403, 429), (method, path, role, r.text)
            else:
                assert r.status_code == 403, (method, path, role, r.text)
                assert need in r.json()["error"]["message"]
    client.close()


# --- team scope ---------------------------------------------------------------------------------

# What a team key must never see: names and resources of other teams, and unattributed spend.
FORBIDDEN = {
    "coreai": ("platform", "vm-3", '"search"', "search,", "i-gpu4", "bucket-logs", "__unallocated__"),
    "platform": ("coreai", "chatbot", "llama-70b", "i-gpu1", "i-gpu2", "i-gpu4", "bucket-logs", "__unallocated__"),
}
# (group_by, query): every dim grouped somewhere, filters on a model both teams serve, on another
# team's project and on a differently spelled value, and a daily granularity.
ASKS: list[tuple[str | None, dict[str, str]]] = [
    (None, {}), ("team", {"model_id": "mistral-7b"}), ("project", {"project": "search"}),
    ("environment,model_id", {"environment": "PROD", "granularity": "day"}),
]


def text_of(r: httpx.Response) -> str:
    """Everything a download says, whatever its format."""
    kind = r.headers["content-type"]
    if kind.startswith("application/zip"):
        with zipfile.ZipFile(io.BytesIO(r.content)) as z:
            return "\n".join(z.read(n).decode() for n in z.namelist())
    if "spreadsheetml" in kind:
        wb = load_workbook(io.BytesIO(r.content))
        return "\n".join(str(c) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row
                         if c is not None)
    return r.text


@pytest.mark.parametrize(("team", "reports", "formats"), [
    ("coreai", ("unit-economics", "idle-gpus", "untagged-spend", "anomalies", "forecast", "budgets"), ("json", "csv")),
    ("platform", ("unit-economics", "idle-gpus", "untagged-spend", "weekly", "forecast"), ("json", "csv", "xlsx")),
])
def test_a_team_key_sees_only_its_team_whatever_it_asks(api: Api, keys: Keys, team: str,
                                                        reports: tuple[str, ...], formats: tuple[str, ...]) -> None:
    key = keys.coreai if team == "coreai" else keys.platform
    other = "platform" if team == "coreai" else "coreai"
    seen = 0
    for name, (group_by, filters) in itertools.product(reports, ASKS):
        params: dict[str, Any] = {"week": WEEK, **filters}
        if group_by:
            params["group_by"] = group_by
        if not filters:  # an unscoped key asks first: its cached whole-store answer must not reach the team key
            assert api.get(f"/v1/reports/{name}", keys.admin, params=params).status_code == 200
            # Asking for the other team, in any spelling, is refused rather than answered empty.
            for spelled in (other, other.upper(), f" {other} "):
                r = api.get(f"/v1/reports/{name}", key, params={**params, "team": spelled})
                assert r.status_code == 403 and r.json()["error"]["param"] == "team"
        # XLSX (finance keys) is slow to write and read: asked for the first and last ask only.
        for fmt in [f for f in formats if f != "xlsx" or (group_by, filters) in (ASKS[0], ASKS[-1])]:
            r = api.get(f"/v1/reports/{name}", key, params={**params, "format": fmt})
            assert r.status_code == 200, (name, params, fmt, r.text)
            text = text_of(r)
            # A value the request itself named may be echoed back (JSON params, the Parameters sheet).
            asked = " ".join(str(v) for v in params.values()).lower()
            leaked = [word for word in FORBIDDEN[team] if word in text and word.strip('",') not in asked]
            assert not leaked, (name, params, fmt, leaked)
            if fmt == "json":
                body = r.json(parse_float=Decimal)
                teams = {row["team"] for t in body.values() if isinstance(t, list) for row in t if "team" in row}
                assert teams <= {team}, (name, params)
                seen += len(body["rows"])
    assert seen > 0  # the sweep looked at real rows, not only empty answers


def test_a_team_key_sees_only_its_alerts_and_no_store_wide_data(api: Api, keys: Keys) -> None:
    with api.store.transaction() as cur:
        for key, team in (("a:coreai", "coreai"), ("a:platform", "platform"), ("a:all", None)):
            cur.execute("INSERT INTO alerts (alert_key, rule, severity, status, summary, dims, started_at, "
                        "last_seen_at) VALUES (?, 'budget', 'warning', 'firing', ?, ?, now(), now())",
                        [key, f"budget of {team}", None if team is None else f'{{"team": "{team}"}}']).fetchall()
    assert [a["alert_key"] for a in api.get("/v1/alerts", keys.coreai).json()] == ["a:coreai"]
    assert [a["alert_key"] for a in api.get("/v1/alerts", keys.platform).json()] == ["a:platform"]
    assert len(api.get("/v1/alerts", keys.viewer).json()) == 3
    # Budgets: a team key reads its team's, writes none, and another team's is not found.
    with api.client(keys.finance) as finance:
        made = [finance.post("/v1/budgets", json={"name": n, "filters": f, "amount": "100"})
                for n, f in (("coreai", {"team": "CoreAI"}), ("platform", {"team": "platform"}), ("all", {}))]
    assert [m.status_code for m in made] == [201, 201, 201] and made[0].json()["filters"] == {"team": "coreai"}
    assert [b["name"] for b in api.get("/v1/budgets", keys.coreai).json()] == ["coreai"]
    assert [b["name"] for b in api.get("/v1/budgets", keys.platform).json()] == ["platform"]
    assert len(api.get("/v1/budgets", keys.viewer).json()) == 3
    assert api.get("/v1/budgets/platform", keys.coreai).status_code == 404
    assert api.get("/v1/budgets/all", keys.coreai).status_code == 404
    assert [r["budget"] for r in api.get("/v1/reports/budgets", keys.coreai).json()["rows"]] == ["coreai"]
    with api.client(keys.platform) as scoped:  # a finance key, but scoped: reads only
        assert scoped.put("/v1/budgets/platform", json={"amount": "5"}).status_code == 403
        assert scoped.delete("/v1/budgets/platform").status_code == 403
    # Anomalies: a team key gets its team's rows only (example A has no history, so none are found:
    # the confinement itself is asserted in tests/reports/test_anomalies.py on a real history).
    r = api.get("/v1/reports/anomalies", keys.coreai, params={"group_by": "team"})
    assert r.status_code == 200 and r.json()["params"]["filters"] == {"team": "coreai"}
    # Report files span every team: a finance key scoped to a team may not list or fetch them.
    assert api.get("/v1/reports/weekly/files", keys.platform).status_code == 403
    assert api.get("/v1/reports/weekly/files/1", keys.platform).status_code == 403


# FinOps KPIs on /metrics: every team's money (and where it is labelled, the team).
KPI_FAMILIES = ("finops_cost_per_1k_generated_tokens", "finops_idle_gpu_hours", "finops_idle_gpu_cost",
                "finops_untagged_share", "finops_source_freshness_seconds", "finops_kpi_up")


def test_metrics_show_team_costs_to_unscoped_keys_only(start_api: Callable[..., Api], keys: Keys) -> None:
    api = start_api(metrics_window_days=8)  # the window holds example A's day
    full = api.get("/metrics", keys.viewer)
    assert full.status_code == 200
    # The unscoped key reads every team's cost per 1k tokens, platform's included ...
    assert 'finops_cost_per_1k_generated_tokens{environment="prod",model_id="mistral-7b",project="search",' \
           'team="platform"}' in full.text
    assert all(name in full.text for name in KPI_FAMILIES)
    # ... no key reads the request metrics only ...
    anonymous = api.get("/metrics")
    assert anonymous.status_code == 200 and "finops_http_requests_total" in anonymous.text
    assert not [name for name in KPI_FAMILIES if name in anonymous.text]
    assert "platform" not in anonymous.text and "coreai" not in anonymous.text
    # ... and a team-scoped key, whose reports are confined to its team, is refused them.
    for scoped, other in ((keys.coreai, "platform"), (keys.platform, "coreai")):
        r = api.get("/metrics", scoped)
        assert r.status_code == 403, r.text
        assert other not in r.text and "finops_cost" not in r.text
    bad = api.get("/metrics", BOGUS)  # a scrape with a wrong (e.g. revoked) key fails loudly
    assert bad.status_code == 401 and "finops_" not in bad.text

    closed = start_api(open_metrics=False)  # everything behind an unscoped key
    assert closed.get("/metrics").status_code == 401
    assert closed.get("/metrics", keys.coreai).status_code == 403
    assert "finops_kpi_up" in closed.get("/metrics", keys.viewer).text

    opened = start_api(open_metrics_kpis=True)  # the operator's explicit choice: KPIs without a key
    assert "finops_kpi_up" in opened.get("/metrics").text
    with pytest.raises(ValueError, match="open_metrics_kpis needs open_metrics"):
        ApiSettings(open_metrics=False, open_metrics_kpis=True)


def test_sources_show_file_names_not_server_paths_to_non_admin_keys(api: Api, keys: Keys, tmp_path: Path) -> None:
    empty = tmp_path / "incoming" / "bill-2026-11.csv"  # a failed FOCUS run names its file in its error
    empty.parent.mkdir()
    empty.write_text("")
    assert run_task(api.store, FOCUS, file_task(TagRules.from_settings(api.settings), empty)).status == "failed"
    admin = {s["source"]: s for s in api.get("/v1/sources", keys.admin).json()}["focus"]
    assert admin["last_run"]["scope"] == str(empty.resolve())  # admins see where the file is
    assert str(tmp_path) in admin["error"]
    for key in (keys.viewer, keys.finance, keys.coreai, keys.platform):
        r = api.get("/v1/sources", key)
        assert r.status_code == 200
        assert str(tmp_path) not in r.text and "/tmp" not in r.text and "incoming" not in r.text
        focus = {s["source"]: s for s in r.json()}["focus"]
        assert focus["last_run"]["scope"] == "bill-2026-11.csv"
        assert focus["error"] == focus["last_run"]["error"] == "bill-2026-11.csv: the file is empty"


# --- keys never disclosed -----------------------------------------------------------------------

def exercise(api: Api, keys: Keys) -> tuple[list[str], list[str]]:
    """Requests with good, wrong, revoked and misplaced keys: every answer as text, and the keys made."""
    answers: list[str] = []

    def get(path: str, key: str | None, **kw: Any) -> None:
        r = api.get(path, key, **kw)
        answers.append(f"{r.status_code} {dict(r.headers)} {r.text}")

    with api.client(keys.admin) as admin:
        created = admin.post("/v1/keys", json={"role": "finance", "name": "leak-test"}).json()["key"]
        revoked = admin.post("/v1/keys", json={"role": "viewer"}).json()
        assert admin.delete(f"/v1/keys/{revoked['key_id']}").status_code == 204
        answers.append(admin.get("/v1/keys").text)
    wrong_secret = keys.finance[:-8] + "ZZZZZZZZ"
    for key in (keys.viewer, keys.coreai, created, revoked["key"], wrong_secret, keys.viewer + "x"):
        get("/v1/reports/unit-economics", key, params={"week": WEEK})
        get("/v1/reports/weekly", key, params={"week": WEEK})  # 403 for viewers
        get("/v1/reports/idle-gpus", key, params={"week": WEEK, "granularity": "hour"})  # 422
        get("/v1/keys", key)
    get("/v1/reports/unit-economics", None, headers={"Authorization": f"Basic {keys.admin}"})
    get("/v1/reports/unit-economics", None, headers={"X-Api-Key": keys.admin})
    return answers, [created, revoked["key"], wrong_secret]


def test_keys_appear_in_no_log_answer_or_database_file(start_api: Callable[..., Api], keys: Keys,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    api = start_api(key_cache_seconds=0, auth_failures_per_minute=10_000)
    # Request lines too, as `finops serve` logs them (uvicorn's access logger does not propagate).
    access = logging.getLogger("uvicorn.access")
    access.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    try:
        answers, made = exercise(api, keys)
    finally:
        access.removeHandler(caplog.handler)
    # The service's records (the test's own HTTP client logs what it sends: not the service's doing).
    logs = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records
                     if not r.name.startswith(("httpx", "httpcore")))
    assert "authentication failed" in logs  # failures are logged, with their reason ...
    assert "GET /v1/reports/unit-economics" in logs  # ... and so are request lines ...
    text = logs + "\n".join(answers)
    db = Path(api.settings.db)
    database = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))  # the file and its WAL
    for key in (keys.viewer, keys.finance, keys.admin, keys.coreai, keys.platform, *made):
        secret = key.split("_", 2)[2]
        assert secret[:16] not in text, "a key (or part of its secret) was disclosed"  # ... never a key
        assert secret[:16].encode() not in database, "a key is stored in clear"
        assert hash_key(key) not in text


# --- failed authentications ---------------------------------------------------------------------

def test_failed_authentication_is_rate_limited_per_address(start_api: Callable[..., Api], keys: Keys) -> None:
    api = start_api(auth_failures_per_minute=4)
    # A client that is not a trusted proxy (uvicorn trusts forwarded headers from 127.0.0.1 only).
    remote = httpx.Client(base_url=api.url, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    statuses = []
    with remote:
        for i in range(6):  # a forged forwarded-for header must not buy a fresh allowance
            headers = {"Authorization": f"Bearer {BOGUS}", "X-Forwarded-For": f"203.0.113.{i}",
                       "X-Real-IP": f"198.51.100.{i}", "Forwarded": f"for=192.0.2.{i}"}
            statuses.append(remote.get("/v1/reports/unit-economics", headers=headers))
        # While limited, even a right key is refused from that address, on every protected operation.
        for method, path in (op for op, need in ACCESS.items() if need is not None):
            assert call(remote, keys.admin, method, path).status_code == 429, (method, path)
    assert [r.status_code for r in statuses] == [401] * 4 + [429] * 2
    assert 0 < int(statuses[-1].headers["retry-after"]) <= 60
    assert BOGUS not in statuses[-1].text
    # Other addresses are not affected (here: the test's usual 127.0.0.1), nor are open endpoints.
    assert api.get("/v1/reports/unit-economics", keys.viewer).status_code == 200
    assert api.get("/healthz").status_code == 200


def test_the_failure_window_slides_and_its_memory_is_bounded() -> None:
    limiter = FailureLimiter(limit=3, window_seconds=60, max_clients=2)
    for t in (0.0, 10.0, 20.0):
        limiter.failed("10.0.0.1", t)
    assert limiter.retry_after("10.0.0.1", 30.0) == pytest.approx(30.0)
    assert limiter.retry_after("10.0.0.2", 30.0) is None  # per address
    assert limiter.retry_after("10.0.0.1", 60.5) is None  # the first failure has left the window
    limiter.failed("10.0.0.2", 61.0)
    limiter.failed("10.0.0.3", 62.0)  # a third address: the oldest tracked one is forgotten
    assert len(limiter._fails) == 2
