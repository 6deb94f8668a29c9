"""A real Prometheus scrapes the service's /metrics with the shipped `finops` job of
deploy/prometheus/prometheus.yml: every cost gauge keeps the team and project the service gave it,
which is what a Grafana panel over these series shows."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import Api, Keys
from tests.simulate.procs import REPO, prometheus, services

SHIPPED = REPO / "deploy" / "prometheus" / "prometheus.yml"
COST_GAUGES = ("finops_cost_per_1k_generated_tokens", "finops_idle_gpu_cost")


def _job(api_url: str, key_file: Path) -> dict[str, Any]:
    """The shipped finops job, pointed at the test's server and key; everything else as shipped."""
    [job] = [j for j in yaml.safe_load(SHIPPED.read_text())["scrape_configs"] if j["job_name"] == "finops"]
    job["static_configs"][0]["targets"] = [api_url.removeprefix("http://")]
    job["authorization"]["credentials_file"] = str(key_file)
    job["scrape_interval"] = "1s"
    return job


def _exported(api: Api, key: str) -> dict[str, set[tuple[tuple[str, str], ...]]]:
    """Per cost gauge, the label sets the service itself exports."""
    text = api.get("/metrics", key).text
    out: dict[str, set[tuple[tuple[str, str], ...]]] = {g: set() for g in COST_GAUGES}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in out:
                out[s.name].add(tuple(sorted(s.labels.items())))
    return out


def test_cost_gauges_keep_their_own_team_and_project(start_api: Callable[..., Api], keys: Keys,
                                                     tmp_path: Path) -> None:
    api = start_api(metrics_window_days=8)  # the KPI window reaches back to example A's day
    key_file = tmp_path / "finops-api-key"
    key_file.write_text(keys.viewer + "\n")
    config = yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": [_job(api.url, key_file)]})
    exported = _exported(api, keys.viewer)
    assert all(exported.values()), exported  # example A has costs, tokens and idle GPUs to export
    with services(prometheus(config, tmp_path / "prometheus")) as (prom,):
        deadline = time.monotonic() + 30
        while True:
            scraped = {g: httpx.get(f"{prom}/api/v1/query", params={"query": g}, timeout=5).json()["data"]["result"]
                       for g in COST_GAUGES}
            if all(scraped.values()):
                break
            assert time.monotonic() < deadline, f"Prometheus never scraped the cost gauges: {scraped}"
            time.sleep(0.2)
    for gauge, series in scraped.items():
        seen = {tuple(sorted((k, v) for k, v in s["metric"].items() if k not in ("__name__", "job", "instance")))
                for s in series}
        assert seen == exported[gauge], gauge  # the service's own labels, not the target's
        assert not any(k.startswith("exported_") for s in series for k in s["metric"]), gauge
    teams = {dict(labels).get("team") for labels in exported["finops_cost_per_1k_generated_tokens"]}
    assert "coreai" in teams
