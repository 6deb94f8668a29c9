"""Prometheus collector: hourly GPU usage (dcgm-exporter) and token counts (vLLM, metering gateway).

Aggregation happens in Prometheus: every query of `finops.sources.prometheus.promql.QUERIES` is a range
query at a 1h step returning one point per GPU or model server and hour, so one hour of a large
fleet costs a handful of queries. Token counters are exact to the token: the series-periods a
counter reset or a scrape gap makes unsafe for PromQL are flagged by a suspects query and counted
from their raw samples (`recount`), two instant queries per group of flagged series and run of
flagged periods. Long windows are split into chunks under Prometheus's
11,000-points-per-series limit. The whole window is one task: all chunks are fetched first and
land together, so a failure in any chunk leaves the store as it was.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from prometheus_api_client import PrometheusConnect

from finops.batch import Batch, Progress, SourceFailed, Task
from finops.settings import Settings
from finops.sources.prometheus.client import (
    Chunk,
    QueryFailed,
    build_client,
    plan_chunks,
    run_instant,
    run_range,
    safe_url,
)
from finops.sources.prometheus.gpu import GPU_MEASURES, gpu_rows, gpu_table
from finops.sources.prometheus.kube import Cluster
from finops.sources.prometheus.parse import LabelMap, MalformedResult, Series, parse_matrix
from finops.sources.prometheus.promql import MODEL_NAME_LABEL, QUERIES, TOKEN_FACTS, Query, render
from finops.sources.prometheus.recount import recount
from finops.sources.prometheus.tokens import (
    ALL_MEASURES,
    TOKEN_MEASURES,
    TokenSource,
    merge_token_sources,
    token_rows,
    token_table,
)
from finops.timeutil import Window

SCOPE = "prometheus"


@dataclass(frozen=True)
class Plan:
    """What one collection asks: the rendered queries, the chunks, the step and the token source."""

    queries: list[tuple[Query, str]]
    chunks: list[Chunk]
    step_seconds: int
    token_source: TokenSource
    labels: LabelMap

    @property
    def total_queries(self) -> int:
        return len(self.queries) * len(self.chunks)


def plan(settings: Settings, window: Window, now: datetime) -> Plan:
    """Render the queries for the configured labels and split `window` into chunks.

    Only hours that have ended by `now` are collected: a later run over the same window adds the
    rest, replacing what it wrote before. Raises ValueError on settings that cannot work (bad
    label names, step, chunk size).
    """
    cfg = settings.prometheus
    facts = ("gpu", "gpu_labels", *TOKEN_FACTS[cfg.token_source], *(("k8s",) if cfg.kubernetes else ()))
    queries = [(q, render(q, cfg.step_seconds, cfg.resource_labels, cfg.dim_labels))
               for q in QUERIES if q.fact in facts]
    chunks = plan_chunks(window, cfg.step_seconds, cfg.max_points_per_query, now)
    return Plan(queries, chunks, cfg.step_seconds, cfg.token_source, LabelMap.from_settings(settings))


def tasks(settings: Settings, window: Window, progress: Progress | None = None, *,
          now: datetime) -> list[Task]:
    """One task replacing this source's GPU-hours and token-hours within `window`."""
    the_plan = plan(settings, window, now)

    def fetch() -> Batch:
        client = build_client(settings.prometheus)
        try:
            return collect_window(client, the_plan, progress)
        finally:
            client.close()

    return [Task(scope=SCOPE, window=window, fetch=fetch)]


def _describe(chunk: Chunk, step_seconds: int) -> str:
    start = chunk.first - timedelta(seconds=step_seconds)
    return f"[{start:%Y-%m-%dT%H:%M}, {chunk.last:%Y-%m-%dT%H:%M})"


class _Runner:
    """Runs queries, counting them for progress and for the SourceFailed of a failure."""

    def __init__(self, client: PrometheusConnect, planned: int, progress: Progress | None) -> None:
        self.client, self.done, self.total, self.progress = client, 0, planned, progress
        if progress:
            progress(0, planned)

    def _failed(self, what: str, exc: Exception) -> SourceFailed:
        return SourceFailed(f"Prometheus query {what} failed: {exc}", requests=self.done + 1)

    def _count(self) -> None:
        self.done += 1
        if self.progress:
            self.progress(self.done, self.total)

    def range(self, what: str, expr: str, chunk: Chunk, step_seconds: int) -> list[Series]:
        try:
            series = parse_matrix(run_range(self.client, expr, chunk.first, chunk.last, step_seconds))
        except (QueryFailed, MalformedResult) as exc:
            raise self._failed(what, exc) from None
        self._count()
        return series

    def instant(self, what: str, expr: str, at: int) -> list[dict[str, Any]]:
        self.total += 1  # a raw query, found as the flagged series are read
        try:
            raw = run_instant(self.client, expr, at)
        except QueryFailed as exc:
            raise self._failed(what, exc) from None
        self._count()
        return raw


def fetch_all(client: PrometheusConnect, the_plan: Plan,
              progress: Progress | None = None) -> tuple[dict[tuple[str, str], list[Series]], int]:
    """Run every query over every chunk, then the raw queries of the series-periods the suspects
    queries flag; results per (fact, measure) and the number of queries. Raises SourceFailed.

    Progress counts the raw queries as they are found: its total grows by one with each.
    """
    results: dict[tuple[str, str], list[Series]] = defaultdict(list)
    runner = _Runner(client, the_plan.total_queries, progress)
    step = the_plan.step_seconds
    for chunk in the_plan.chunks:
        span = _describe(chunk, step)
        flagged: dict[str, list[Series]] = {}
        for query, expr in the_plan.queries:
            series = runner.range(f"{query.fact}/{query.measure} for {span}", expr, chunk, step)
            if query.measure == "suspects":
                flagged[query.fact] = series
            else:
                results[(query.fact, query.measure)].extend(series)
        for fact, suspects in flagged.items():
            what = f"{fact}/raw samples for {span}"
            try:
                exact = recount(partial(runner.instant, what), fact, suspects, step)
            except MalformedResult as exc:
                raise SourceFailed(f"Prometheus query {what} failed: {exc}", requests=runner.done) from None
            for measure, series in exact.items():
                results[(fact, measure)].extend(series)
    return results, runner.done


def collect_window(client: PrometheusConnect, the_plan: Plan, progress: Progress | None = None) -> Batch:
    """Query Prometheus for the planned window and build the GPU-hour and token-hour facts."""
    started = time.monotonic()
    results, queries = fetch_all(client, the_plan, progress)
    step, lm = the_plan.step_seconds, the_plan.labels
    cluster = Cluster.from_series(results[("k8s", "pod_labels")], results[("k8s", "pod_nodes")],
                                  results[("k8s", "node_providers")])
    gpus, quarantine = gpu_rows({m: results[("gpu", m)] for m in GPU_MEASURES},
                                cluster.join(results[("gpu_labels", "labels")], lm.exporter), lm, step)
    vllm, q_vllm = token_rows({m: cluster.join(results[("vllm", m)], lm.exporter) for m in ALL_MEASURES}, lm, step,
                              (MODEL_NAME_LABEL,), "vllm")
    gateway, q_gateway = token_rows({m: results[("gateway", m)] for m in TOKEN_MEASURES}, lm, step,
                                    lm.dim_labels["model_id"], "gateway")
    tokens = merge_token_sources(vllm, gateway, the_plan.token_source)
    details: dict[str, Any] = {
        "url": safe_url(client.url),
        "queries": queries,
        "chunks": len(the_plan.chunks),
        "token_source": the_plan.token_source,
        "gpu_hours": len(gpus),
        "token_hours": len(tokens),
        **({"pods": len(cluster.pod_labels), "nodes": len(cluster.node_provider)} if cluster.node_provider else {}),
        "seconds": round(time.monotonic() - started, 3),
    }
    return Batch(
        facts={"gpu_hours": gpu_table(gpus), "token_hours": token_table(tokens)},
        quarantine=quarantine + q_vllm + q_gateway,
        requests=queries,
        details=details,
    )
