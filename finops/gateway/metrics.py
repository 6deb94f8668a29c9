"""The gateway's Prometheus metrics, in a registry private to one app (no global state)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from finops.gateway.identity import Caller
from finops.tags import DIMS, display

CONTENT_TYPE = CONTENT_TYPE_LATEST
DIM_LABELS = DIMS

# LLM latencies span milliseconds (cached prefixes) to minutes (long generations).
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
                    60.0, 120.0, 240.0, 480.0, 960.0)


@dataclass(frozen=True)
class Outcome:
    """What one proxied request amounted to. ``status`` is the HTTP status, or 499 if the client left."""

    caller: Caller
    model_id: str
    status: int
    prompt_tokens: int
    generation_tokens: int
    duration: float
    ttft: float | None = None
    metered: bool = True
    bad_usage: bool = False  # the upstream's usage was invalid and not counted


class GatewayMetrics:
    """Counters and histograms of one gateway app; ``render()`` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[int, tuple[str | None, ...]], Any] = {}
        self.tokens = Counter(
            "finops_gateway_tokens",
            "Tokens served through the gateway, by caller dims, model and kind (prompt|generation).",
            (*DIM_LABELS, "kind"),
            registry=self.registry,
        )
        self.requests = Counter(
            "finops_gateway_requests",
            "Requests proxied by the gateway, by caller dims, model and HTTP status (499: client left).",
            (*DIM_LABELS, "status"),
            registry=self.registry,
        )
        self.bad_usage = Counter(
            "finops_gateway_bad_usage",
            "2xx answers whose usage counts were not non-negative integers, so were not counted, by model.",
            ("model_id",),
            registry=self.registry,
        )
        self.duration = Histogram(
            "finops_gateway_request_duration_seconds",
            "From the request's arrival to the last byte sent (or the client leaving).",
            ("model_id",),
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "finops_gateway_time_to_first_token_seconds",
            "Streams only: from the request's arrival to the first chunk carrying generated output.",
            ("model_id",),
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )

    def record(self, o: Outcome) -> None:
        """Count one finished request. Tokens are counted once, here, and only for metered endpoints."""
        if not o.metered:
            return
        dims = (o.caller.project, o.caller.team, o.caller.environment, o.model_id)
        self._child(self.requests, (*dims, str(o.status))).inc()
        self._child(self.duration, (o.model_id,)).observe(o.duration)
        if o.ttft is not None:
            self._child(self.ttft, (o.model_id,)).observe(o.ttft)
        if o.bad_usage:
            self._child(self.bad_usage, (o.model_id,)).inc()
        if o.prompt_tokens or o.generation_tokens or 200 <= o.status < 300:
            self._child(self.tokens, (*dims, "prompt")).inc(o.prompt_tokens)
            self._child(self.tokens, (*dims, "generation")).inc(o.generation_tokens)

    def _child(self, metric: Any, values: tuple[str | None, ...]) -> Any:
        """The labelled series, cached: ``labels()`` validates and locks on every call."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*(display(v) for v in values))
        return child

    def render(self) -> bytes:
        return generate_latest(self.registry)
