"""/healthz, /readyz, /metrics (KPIs and request metrics) and /v1/alerts."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from finops.api import ApiSettings, create_app
from finops.collect import run_task
from finops.settings import Settings
from finops.sources.focus import SOURCE as FOCUS
from finops.sources.focus import file_task
from finops.store import open_store
from finops.store.migrate import head_revision
from finops.tags import TagRules
from tests.api.conftest import NOW, Api, Keys
from tests.support.example_a import BILL, DAY, GPUS, TOKENS, focus_csv
from tests.support.uvicorn_server import serve

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(api: Api, key: str | None = None) -> Samples:
    r = api.get("/metrics", key)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def test_health_and_ready(api: Api) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": True, "revision": head_revision(), "head": head_revision()}


def test_not_ready_on_an_old_schema(settings: Settings, tmp_path: Path) -> None:
    store = open_store(tmp_path / "empty.duckdb", migrate=False)
    try:
        with serve(create_app(settings, store)) as url:
            import httpx

            r = httpx.get(url + "/readyz")
    finally:
        store.close()
    assert r.status_code == 503
    assert r.json()["status"] == "not_ready" and r.json()["revision"] is None


def test_closed_health_and_metrics_need_keys(start_api: Callable[..., Api], keys: Keys) -> None:
    api = start_api(open_health=False, open_metrics=False)
    assert api.get("/healthz").status_code == 401
    assert api.get("/healthz", keys.viewer).status_code == 200
    assert api.get("/metrics").status_code == 401
    assert api.get("/metrics", keys.coreai).status_code == 403  # KPIs span every team
    assert api.get("/metrics", keys.viewer).status_code == 200


def test_kpis_of_example_a(start_api: Callable[..., Api], keys: Keys) -> None:
    api = start_api(metrics_window_days=8)  # [2026-11-02, 2026-11-10): holds example A's day
    samples = scrape(api, keys.viewer)  # the KPIs need an unscoped key
    per_1k = {dict(labels)["model_id"] + "/" + dict(labels)["team"]: v
              for labels, v in series(samples, "finops_cost_per_1k_generated_tokens").items()}
    # cost / (generation tokens / 1000) from the bill and token tables of example A
    cost = {rid: Decimal(c) for _, _, rid, _, c in BILL}
    assert per_1k["llama-70b/coreai"] == pytest.approx(float(cost["i-gpu1"] * 1000 / TOKENS[0][3]))
    assert per_1k["mistral-7b/coreai"] == pytest.approx(float(cost["i-gpu2"] * 1000 / TOKENS[1][3]))
    idle_hours = sum(1 for gpus in GPUS.values() for s in gpus for busy in s if busy < 0.05)
    assert sum(series(samples, "finops_idle_gpu_hours").values()) == idle_hours
    # idle hour cost = the resource's day cost / its GPU-hours that day
    idle_cost = sum(float(cost[rid]) / (24 * len(GPUS[rid])) * sum(1 for s in GPUS[rid] for b in s if b < 0.05)
                    for rid in ("i-gpu2", "i-gpu4"))
    assert sum(series(samples, "finops_idle_gpu_cost").values()) == pytest.approx(idle_cost)
    untagged = cost["i-gpu2"] + cost["bucket-logs"] + cost["i-gpu4"]  # lines missing a required tag
    assert samples[("finops_untagged_share", frozenset())] == pytest.approx(float(untagged / sum(cost.values())))
    fresh = series(samples, "finops_source_freshness_seconds")
    assert fresh[frozenset({("source", "prometheus")})] == (NOW - datetime(2026, 11, 3, tzinfo=UTC)).total_seconds()
    assert set(series(samples, "finops_kpi_up").values()) == {1.0}


def test_request_metrics(api: Api, keys: Keys) -> None:
    for _ in range(3):
        assert api.get("/v1/reports/idle-gpus", keys.viewer).status_code == 200
    assert api.get("/v1/reports/idle-gpus").status_code == 401
    assert api.get("/no/such/path").status_code == 404
    samples = scrape(api)
    route = "/v1/reports/idle-gpus"
    ok = frozenset({("method", "GET"), ("route", route), ("status", "200")})
    assert samples[("finops_http_requests_total", ok)] == 3
    assert samples[("finops_http_request_duration_seconds_count", ok)] == 3
    assert samples[("finops_http_requests_total", ok - {("status", "200")} | {("status", "401")})] == 1
    unmatched = frozenset({("method", "GET"), ("route", "unmatched"), ("status", "404")})
    assert samples[("finops_http_requests_total", unmatched)] == 1


def test_kpis_degrade_when_a_report_cannot_be_computed(start_api: Callable[..., Api], keys: Keys,
                                                      tmp_path: Path) -> None:
    api = start_api(metrics_window_days=8)
    eur = tmp_path / "eur.csv"
    eur.write_text(focus_csv(DAY + timedelta(days=2), currency="EUR"))
    assert run_task(api.store, FOCUS, file_task(TagRules.from_settings(api.settings), eur)).status == "succeeded"
    samples = scrape(api, keys.viewer)  # USD and EUR in the window, no rates: the reports refuse, /metrics does not
    assert series(samples, "finops_kpi_up") and set(series(samples, "finops_kpi_up").values()) == {0.0}
    assert not series(samples, "finops_cost_per_1k_generated_tokens")
    assert series(samples, "finops_source_freshness_seconds")


ALERTS = [  # (alert_key, rule, status, dims, started day)
    ("idle:i-gpu2", "idle_gpu", "firing", {"team": "coreai", "project": "chatbot"}, 3),
    ("budget:platform", "budget", "resolved", {"team": "platform"}, 4),
    ("untagged:all", "untagged_share", "firing", None, 5),
    ("budget:coreai", "budget", "firing", {"team": "coreai"}, 6),
]


@pytest.fixture
def alerts(api: Api) -> Api:
    with api.store.transaction() as cur:
        for key, rule, status, dims, day in ALERTS:
            started = datetime(2026, 11, day, 8)
            cur.execute("INSERT INTO alerts (alert_key, rule, severity, status, summary, dims, amount, currency, "
                        "started_at, last_seen_at, resolved_at) VALUES (?, ?, 'warning', ?, ?, ?, 12.5, 'USD', ?, ?, ?)",
                        [key, rule, status, f"{rule} on {key}", json.dumps(dims) if dims else None, started,
                         started + timedelta(hours=1), started + timedelta(hours=2) if status == "resolved" else None]
                        ).fetchall()
    return api


def test_alerts_newest_first_with_filters(alerts: Api, keys: Keys) -> None:
    def keys_of(key: str, **params: str | int) -> list[str]:
        r = alerts.get("/v1/alerts", key, params=params)
        assert r.status_code == 200, r.text
        return [a["alert_key"] for a in r.json()]

    newest_first = [a[0] for a in sorted(ALERTS, key=lambda a: -a[4])]
    assert keys_of(keys.viewer) == newest_first
    assert keys_of(keys.viewer, status="firing") == [k for k in newest_first if k != "budget:platform"]
    assert keys_of(keys.viewer, rule="budget") == ["budget:coreai", "budget:platform"]
    assert keys_of(keys.viewer, limit=1) == newest_first[:1]
    assert keys_of(keys.coreai) == ["budget:coreai", "idle:i-gpu2"]  # only alerts naming its team
    assert keys_of(keys.platform) == ["budget:platform"]
    first = alerts.get("/v1/alerts", keys.viewer).json()[0]
    assert first["dims"] == {"team": "coreai"} and first["amount"] == 12.5
    assert first["started_at"] == "2026-11-06T08:00:00Z"
    bad = alerts.get("/v1/alerts", keys.viewer, params={"status": "open"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "status"
    assert alerts.get("/v1/alerts").status_code == 401


def test_apps_share_no_state(settings: Settings, tmp_path: Path) -> None:
    # Two apps in one process: separate registries, caches and limits (no module-level state).
    a, b = (create_app(settings, api=ApiSettings(auth_failures_per_minute=n)) for n in (3, 4))
    assert a.state.finops.registry is not b.state.finops.registry
    assert a.state.finops.kpis is not b.state.finops.kpis
    assert a.state.finops.cache is not b.state.finops.cache
    assert (a.state.finops.limiter.limit, b.state.finops.limiter.limit) == (3, 4)
