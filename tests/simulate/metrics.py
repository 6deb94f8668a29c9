"""Reading Prometheus text (a scrape) and the Prometheus HTTP API in tests."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape, keyed by (sample name, labels)."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def scrape(url: str) -> Samples:
    """Every sample of `url/metrics`."""
    return samples(httpx.get(f"{url}/metrics", timeout=5).text)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`.

    prometheus_client's parser renames a counter sample that lacks `_total` (dcgm-exporter's energy
    counter) to `<name>_total`, so that spelling matches too.
    """
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n in (name, f"{name}_total") and want <= ls)


def query(prom: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    """An instant query; the result vector (raises on an error answer)."""
    params: dict[str, Any] = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    body = httpx.get(f"{prom}/api/v1/query", params=params, timeout=10).json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def scalar(prom: str, expr: str, at: float | None = None) -> float:
    """The single value of an instant query that returns one series."""
    result = query(prom, expr, at)
    assert len(result) == 1, (expr, result)
    return float(result[0]["value"][1])
