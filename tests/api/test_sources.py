"""GET /v1/sources and POST /v1/sources/{name}/runs against a Prometheus API double on loopback."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from finops.collect import SOURCES
from finops.store.ledger import runs
from tests.api.conftest import NOW, WEEK, Api, Keys
from tests.api.fake_prometheus import FakePrometheus


def by_source(api: Api, key: str) -> dict[str, dict[str, Any]]:
    r = api.get("/v1/sources", key)
    assert r.status_code == 200, r.text
    return {s["source"]: s for s in r.json()}


def wait_job(client: httpx.Client, job: dict[str, Any], timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while job["status"] in ("accepted", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.02)
        job = client.get(job["status_url"]).json()
    return job


def test_sources_show_the_ledger(api: Api, keys: Keys) -> None:
    sources = by_source(api, keys.viewer)
    assert list(sources) == [*SOURCES, "focus"]
    ledger = {r.source: r for r in runs(api.store)}  # newest first: the first seen per source is its last
    prom = sources["prometheus"]
    assert prom["status"] == "succeeded" and prom["error"] is None and not prom["running"]
    assert prom["last_run"]["run_id"] == ledger["prometheus"].run_id
    assert prom["rows"] == ledger["prometheus"].rows > 0
    assert prom["data_through"] == "2026-11-03T00:00:00Z"  # example A's day ends there
    assert prom["freshness_seconds"] == (NOW - datetime(2026, 11, 3, tzinfo=UTC)).total_seconds()
    assert sources["focus"]["status"] == "succeeded" and sources["focus"]["rows"] == 5
    assert sources["azure"] == {"source": "azure", "status": "never_run", "running": False, "last_run": None,
                                "last_success_at": None, "data_through": None, "rows": None, "error": None,
                                "freshness_seconds": None}


def test_admin_starts_a_run(api: Api, keys: Keys, prometheus: FakePrometheus) -> None:
    with api.client(keys.admin) as admin:
        r = admin.post("/v1/sources/prometheus/runs", params={"wait": 10},
                       json={"start": "2026-11-05", "end": "2026-11-06"})
        assert r.status_code == 202, r.text
        job = wait_job(admin, r.json())
    assert r.headers["location"] == job["status_url"]
    assert job["status"] == "succeeded" and job["sources"] == ["prometheus"]
    assert (job["start"], job["end"]) == ("2026-11-05", "2026-11-06")
    [result] = job["results"]
    assert result["status"] == "succeeded" and result["rows"] == 0
    assert prometheus.requests == result["requests"] > 0
    prom = by_source(api, keys.viewer)["prometheus"]
    assert prom["last_run"]["run_id"] == result["run_id"]
    assert prom["data_through"] == "2026-11-06T00:00:00Z"


def test_a_failed_run_is_reported(api: Api, keys: Keys, prometheus: FakePrometheus) -> None:
    prometheus.status = 503
    with api.client(keys.admin) as admin:
        r = admin.post("/v1/sources/prometheus/runs", params={"start": "2026-11-05", "end": "2026-11-06", "wait": 10})
        job = wait_job(admin, r.json())
    assert job["status"] == "failed"
    assert "tsdb unavailable" in job["results"][0]["error"]
    prom = by_source(api, keys.viewer)["prometheus"]
    assert prom["status"] == "failed" and "tsdb unavailable" in prom["error"]
    assert prom["data_through"] == "2026-11-03T00:00:00Z"  # the last success still counts


def test_a_second_run_of_a_busy_source_conflicts(api: Api, keys: Keys, prometheus: FakePrometheus) -> None:
    prometheus.gate.clear()  # hold the collection in progress
    window = {"start": "2026-11-05", "end": "2026-11-06"}
    with api.client(keys.admin) as admin:
        first = admin.post("/v1/sources/prometheus/runs", params=window)
        assert first.status_code == 202 and first.json()["status"] in ("accepted", "running")
        deadline = time.monotonic() + 5
        while prometheus.requests == 0:  # the run is in Prometheus's hands now
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for name in ("prometheus", "all"):
            again = admin.post(f"/v1/sources/{name}/runs", params=window)
            assert again.status_code == 409, again.text
            assert again.json()["error"]["param"] == "name"
        assert by_source(api, keys.viewer)["prometheus"]["running"] is True
        # Reads are not held up by the collection in progress.
        t0 = time.monotonic()
        assert admin.get("/v1/reports/weekly", params={"week": WEEK}).status_code == 200
        assert time.monotonic() - t0 < 5
        prometheus.gate.set()
        job = wait_job(admin, first.json())
    assert job["status"] == "succeeded"


@pytest.mark.parametrize(("name", "query", "body", "status", "param"), [
    ("nosuch", {"start": "2026-11-05", "end": "2026-11-06"}, None, 404, "name"),
    ("focus", {"start": "2026-11-05", "end": "2026-11-06"}, None, 404, "name"),
    ("prometheus", {"end": "2026-11-06"}, None, 422, "start"),
    ("prometheus", {}, {"start": "2026-11-05"}, 422, "end"),
    ("prometheus", {"start": "2026-11-06", "end": "2026-11-05"}, None, 422, "end"),
    ("prometheus", {"start": "2024-01-01", "end": "2026-01-01"}, None, 422, "end"),
    ("prometheus", {"start": "yesterday", "end": "2026-11-05"}, None, 422, "start"),
    ("prometheus", {"start": "2026-11-05", "end": "2026-11-06", "wait": "99"}, None, 422, "wait"),
])
def test_bad_run_requests(api: Api, keys: Keys, name: str, query: dict[str, str], body: dict[str, str] | None,
                          status: int, param: str) -> None:
    with api.client(keys.admin) as admin:
        r = admin.post(f"/v1/sources/{name}/runs", params=query, json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param


def test_only_admins_start_runs(api: Api, keys: Keys, prometheus: FakePrometheus) -> None:
    for key in (keys.viewer, keys.finance, keys.coreai):
        with api.client(key) as c:
            r = c.post("/v1/sources/prometheus/runs", params={"start": "2026-11-05", "end": "2026-11-06"})
            assert r.status_code == 403
            assert c.get("/v1/sources/runs/1").status_code == 403
    assert prometheus.requests == 0
    with api.client(keys.admin) as admin:
        assert admin.get("/v1/sources/runs/999").status_code == 404
