"""Prometheus metrics of one app: its own requests, and FinOps KPIs computed at scrape time.

Every app has its own CollectorRegistry; nothing is registered globally.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from finops.api.routetable import RouteTable
from finops.reports.model import Report
from finops.reports.params import ParamError, ReportParams, build_params
from finops.settings import Settings
from finops.store import Store
from finops.store.ledger import source_states
from finops.tags import DIMS

log = logging.getLogger(__name__)

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ReportGetter = Callable[[str, ReportParams], Report]


# Label values stay bounded whatever clients send: methods outside this set count as "other", paths
# as their route template (one value, "unmatched", for every path no route matches).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
OTHER_METHOD = "other"
UNMATCHED = "unmatched"


class RequestMetrics:
    """Requests answered and their latency, by method, route template and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["method", "route", "status"]
        self.count = Counter("finops_http_requests", "HTTP requests answered", labels, registry=registry)
        self.latency = Histogram("finops_http_request_duration_seconds", "Time to answer an HTTP request",
                                 labels, buckets=BUCKETS, registry=registry)


def route_template(scope: Scope, table: RouteTable) -> str:
    """The template of the route that handled (or would handle) the request, else UNMATCHED.

    The router leaves the matched route in the scope; a request answered before routing (e.g. a
    body refused by BodyGuard) or by no route is looked up in the app's route table."""
    path = getattr(scope.get("route"), "path", None)
    return str(path) if path else table.template(scope["path"]) or UNMATCHED


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task) that times each request."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics, routes: RouteTable) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            method = scope["method"] if scope["method"] in METHODS else OTHER_METHOD
            labels = (method, route_template(scope, self.routes), str(status))
            self.metrics.count.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - start)


class KpiCollector(Collector):
    """FinOps KPIs over the trailing `window_days` (today included), from the (cached) reports."""

    def __init__(self, store: Callable[[], Store], settings: Settings, now: Callable[[], datetime],
                 report: ReportGetter, window_days: int, sources: list[str]) -> None:
        self.store, self.settings, self.now, self.report = store, settings, now, report
        self.window_days, self.sources = window_days, sources

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # computed at scrape time only; registering must not run the reports

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.now()
        end = now.date() + timedelta(days=1)
        params = build_params(start=end - timedelta(days=self.window_days), end=end,
                              default_required=self.settings.required_tags,
                              shared_cost_key=self.settings.shared_cost_key,
                              idle_threshold=self.settings.idle_threshold,
                              generation_weight=self.settings.generation_weight)
        up = GaugeMetricFamily("finops_kpi_up", "1 if the report behind the KPIs could be computed", labels=["report"])
        dims = list(DIMS)
        # Budgets stand as of today's start (complete days), as their alerts do.
        as_of = params.model_copy(update={"end": now.date()})
        by_team = params.model_copy(update={"group_by": ("team",), "end": now.date()})  # complete days
        for name, build, p in (("unit-economics", self._unit, params), ("idle-gpus", self._idle, params),
                               ("untagged-spend", self._untagged, params), ("budgets", self._budgets, as_of),
                               ("anomalies", self._anomalies, by_team)):
            try:
                families = build(self.report(name, p), dims)
            except ParamError as exc:  # e.g. a window mixing currencies without rates
                log.warning("KPIs from %s unavailable: %s", name, exc)
                up.add_metric([name], 0)
                continue
            except Exception:  # a scrape degrades rather than fails; the log says why
                log.exception("KPIs from %s could not be computed", name)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up
        yield self._freshness(now)

    @staticmethod
    def _unit(report: Report, dims: list[str]) -> list[GaugeMetricFamily]:
        # (gauge, help, row field, factor): per 1M tokens reads better than per 1k for prompt tokens.
        spec = (("finops_cost_per_1k_generated_tokens", "Cost per 1000 generated tokens over the KPI window, report "
                 "currency", "cost_per_1k_generated_tokens", 1),
                ("finops_cost_per_1m_prompt_tokens", "The prompt part of cost per 1M prompt tokens (definitions.md "
                 "6.1)", "cost_per_1k_prompt_tokens", 1000),
                ("finops_cost_per_1m_generation_tokens", "The generation part of cost per 1M generated tokens",
                 "cost_per_1k_generation_tokens", 1000),
                ("finops_cache_savings", "What the prefix cache's hits would have cost to compute, over the KPI window",
                 "cache_savings", 1))
        out = []
        for name, text, field, factor in spec:
            g = GaugeMetricFamily(name, text, labels=dims)
            for r in report.rows:
                if r[field] is not None:
                    g.add_metric([str(r[d]) for d in dims], float(r[field] * factor))
            out.append(g)
        return out

    @staticmethod
    def _idle(report: Report, dims: list[str]) -> list[GaugeMetricFamily]:
        hours: dict[tuple[str, ...], int] = {}
        cost: dict[tuple[str, ...], Decimal] = {}
        for r in report.rows:
            key = tuple(str(r[d]) for d in dims)
            hours[key] = hours.get(key, 0) + r["idle_hours"]
            cost[key] = cost.get(key, Decimal(0)) + r["idle_cost"]
        h = GaugeMetricFamily("finops_idle_gpu_hours", "Idle GPU-hours over the KPI window", labels=dims)
        c = GaugeMetricFamily("finops_idle_gpu_cost", "Cost of idle GPU-hours over the KPI window", labels=dims)
        for key in hours:
            h.add_metric(list(key), hours[key])
            c.add_metric(list(key), float(cost[key]))
        return [h, c]

    @staticmethod
    def _untagged(report: Report, dims: list[str]) -> list[GaugeMetricFamily]:
        g = GaugeMetricFamily("finops_untagged_share", "Share of spend missing required tags over the KPI window")
        if report.totals["untagged_share"] is not None:
            g.add_metric([], float(report.totals["untagged_share"]))
        return [g]

    @staticmethod
    def _budgets(report: Report, dims: list[str]) -> list[GaugeMetricFamily]:
        # Budget names are written by finance and admin keys only, and checked (NAME_PATTERN).
        fams = {f: GaugeMetricFamily(f"finops_budget_{f}", text, labels=["budget"]) for f, text in (
            ("amount", "A budget's amount for its period, budget currency"),
            ("actual_cost", "Cost so far in the budget's current period (complete days)"),
            ("forecast_cost", "Cost so far plus the forecast of the period's remaining days"))}
        for r in report.rows:
            if r["status"] != "currency_mismatch":
                for f, g in fams.items():
                    g.add_metric([r["budget"]], float(r[f]))
        return list(fams.values())

    @staticmethod
    def _anomalies(report: Report, dims: list[str]) -> list[GaugeMetricFamily]:
        g = GaugeMetricFamily("finops_anomalies", "Anomalous team-days over the KPI window", labels=["metric"])
        for metric in ("cost", "cost_per_1k_generated_tokens"):
            g.add_metric([metric], sum(r["metric"] == metric for r in report.rows))
        return [g]

    def _freshness(self, now: datetime) -> GaugeMetricFamily:
        g = GaugeMetricFamily(
            "finops_source_freshness_seconds",
            "Seconds from the end of a source's collected data (or, for files, its last load) to now",
            labels=["source"])
        naive = now.replace(tzinfo=None)
        for s in source_states(self.store(), self.sources):
            since = s.watermark or s.last_success_at
            if since is not None:
                g.add_metric([s.source], max((naive - since).total_seconds(), 0.0))
        return g
