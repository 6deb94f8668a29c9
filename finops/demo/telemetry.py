"""The fleet's telemetry, twice from the same hourly facts: as scraped series (dcgm-exporter, vLLM and
the metering gateway, for a real Prometheus) and as the answers Prometheus gives to the collector's
range queries (for the recorded-responses endpoint).

Sample times make Prometheus 2.x's answers exact: gauges are sampled 30 s past each quarter hour, so
`avg_over_time(x[1h])` evaluated at the end of an hour sees that hour's four samples only; counters are
scraped on the quarter hours, hour edges included, so the closed range of `increase(x[1h])` starts and
ends on a sample and is the hour's change with no extrapolation.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import accumulate

from finops.demo.fleet import GPU_MEMORY_MIB, Caller, Fleet, Resource, TokenHour
from finops.demo.prometheus import OMSeries

HOUR = 3600
SAMPLE_OFFSETS = (0, 900, 1800, 2700)  # seconds into the hour; four scrapes an hour
GAUGE_SKEW = 30  # gauges are sampled off the hour edge
GPU_NAMESPACE = uuid.UUID("6f1d3a52-4c1e-4c7a-9b8e-2f0d5c7e9a11")
GATEWAY = {"instance": "finops-gateway:8080", "job": "finops-gateway"}
# token_hours measure -> TokenHour field
TOKEN_FIELDS = {"prompt_tokens": "prompt", "generation_tokens": "generation", "requests": "requests"}


def unix(t: datetime) -> int:
    return int(t.replace(tzinfo=UTC).timestamp())


def gpu_uuid(r: Resource, gpu: int) -> str:
    return f"GPU-{uuid.uuid5(GPU_NAMESPACE, f'{r.rid}/{gpu}')}"


def gpu_labels(r: Resource, gpu: int) -> dict[str, str]:
    """dcgm-exporter's labels, plus the target labels service discovery adds (instance, job, instance_id).
    A MIG instance's series carry the physical GPU's UUID and the instance's id and profile."""
    physical = 0 if r.mig else gpu
    mig = {"GPU_I_PROFILE": r.mig[gpu], "GPU_I_ID": str(gpu + 1)} if r.mig else {}
    return {"gpu": str(physical), "UUID": gpu_uuid(r, physical), "device": f"nvidia{physical}",
            "modelName": r.gpu_model, **mig, "Hostname": r.host, "instance": f"{r.host}:9400", "job": "dcgm-exporter",
            "instance_id": r.key}


def server_labels(r: Resource) -> dict[str, str]:
    return {"model_name": str(r.model), "engine": "0", "instance": f"{r.host}:8000", "job": "vllm",
            "instance_id": r.key}


def caller_labels(r: Resource, c: Caller) -> dict[str, str]:
    return {"project": c.project, "team": c.team, "environment": c.environment, "model_id": str(r.model), **GATEWAY}


def memory_mib(r: Resource, busy: float) -> float:
    """Frame-buffer use: a loaded model holds 90% of memory; a training job 75%; an idle box nothing."""
    cap = GPU_MEMORY_MIB[r.gpu_model]
    return float(round(cap * 0.9) if r.model else round(cap * 0.75) if busy > 0 else 0)


@dataclass(frozen=True)
class CounterSeries:
    """One counter: sample name, labels, the increase of every hour of the fleet, and the collector
    query (fact, measure) that reads it."""

    name: str
    labels: dict[str, str]
    per_hour: list[int]
    fact: str
    measure: str
    scale: int = 1  # the counter counts per_hour / scale (seconds counters, kept here in whole ms)


VLLM = {"prompt_tokens": "vllm:prompt_tokens_total", "generation_tokens": "vllm:generation_tokens_total",
        "requests": "vllm:request_success_total"}


# vLLM V1's counters: (name, scale); the time counters count seconds, the fleet keeps whole ms.
V1_COUNTERS = {"cached_prompt_tokens": ("vllm:prompt_tokens_cached_total", 1),
               "prefill_ms": ("vllm:request_prefill_time_seconds_sum", 1000),
               "decode_ms": ("vllm:request_decode_time_seconds_sum", 1000)}


def counters(fleet: Fleet) -> Iterator[CounterSeries]:
    """Every vLLM and gateway counter of the fleet, with its hourly increases."""
    hours = list(fleet.hours())
    for r in fleet.resources:
        if r.model is None:
            continue
        tokens = fleet.server_tokens[r.rid]
        for measure, name in VLLM.items():
            extra = {"finished_reason": "stop"} if measure == "requests" else {}
            yield CounterSeries(name, {**server_labels(r), **extra},
                                [getattr(t, TOKEN_FIELDS[measure]) for t in tokens], "vllm", measure)
        for measure, per_hour in fleet.v1_signals(r).items():
            name, scale = V1_COUNTERS[measure]
            yield CounterSeries(name, server_labels(r), per_hour, "vllm", measure, scale)
        for i, c in enumerate(r.callers):
            split: list[TokenHour] = [fleet.caller_tokens(r, h)[i][1] for h in hours]
            for measure, extra in (("prompt_tokens", {"kind": "prompt"}), ("generation_tokens", {"kind": "generation"}),
                                   ("requests", {"status": "200"})):
                name = "finops_gateway_requests_total" if measure == "requests" else "finops_gateway_tokens_total"
                yield CounterSeries(name, {**caller_labels(r, c), **extra},
                                    [getattr(t, TOKEN_FIELDS[measure]) for t in split], "gateway", measure)


def series(fleet: Fleet, start: datetime, end: datetime) -> list[OMSeries]:
    """The scrapes of the hours in `[start, end)` (naive UTC, on hour edges) as OpenMetrics series."""
    first = int((start - datetime.combine(fleet.start, datetime.min.time())).total_seconds()) // HOUR
    n = int((end - start).total_seconds()) // HOUR
    t0 = unix(start)
    out: list[OMSeries] = []
    for r in fleet.resources:
        for g in range(r.gpus):
            busy = fleet.gpu_busy[(r.rid, g)][first:first + n]
            labels = gpu_labels(r, g)
            times = [(t0 + i * HOUR + off + GAUGE_SKEW, b) for i, b in enumerate(busy) for off in SAMPLE_OFFSETS]
            out.append(OMSeries("DCGM_FI_PROF_GR_ENGINE_ACTIVE", labels, "gauge", list(times)))
            out.append(OMSeries("DCGM_FI_DEV_FB_USED", labels, "gauge", [(t, memory_mib(r, b)) for t, b in times]))
    for c in counters(fleet):
        before = sum(c.per_hour[:first])
        points: list[tuple[float, float]] = []
        for i, (cum, inc) in enumerate(zip(accumulate(c.per_hour[first:first + n], initial=before),
                                           c.per_hour[first:first + n], strict=False)):
            points += [(t0 + i * HOUR + off, (cum + inc * k // len(SAMPLE_OFFSETS)) / c.scale)
                       for k, off in enumerate(SAMPLE_OFFSETS)]
        points.append((t0 + n * HOUR, (before + sum(c.per_hour[first:first + n])) / c.scale))
        out.append(OMSeries(c.name, c.labels, "counter", points))
    return out


# A series a collector query aggregates: its full labels and its value per hour index.
Answer = tuple[dict[str, str], Callable[[int], float]]


def answers(fleet: Fleet, fact: str, measure: str) -> list[Answer]:
    """The series one collector query aggregates (its `by` clause then trims and merges them)."""
    if fact in ("vllm", "gateway"):
        return [(c.labels, partial(_at, c.per_hour)) for c in counters(fleet) if (c.fact, c.measure) == (fact, measure)]
    out: list[Answer] = []
    for r in fleet.resources:
        for g in range(r.gpus):
            busy = fleet.gpu_busy[(r.rid, g)]
            value: dict[str, Callable[[int], float]] = {
                "busy": partial(_at, busy),
                "samples": partial(_const, float(len(SAMPLE_OFFSETS))),
                "memory_used_mib": partial(_memory, r, busy),
                "labels": partial(_const, 1.0),
            }
            if measure in value:  # this fleet has no energy counter: that query answers nothing
                out.append((gpu_labels(r, g), value[measure]))
    return out


def _at(values: Sequence[float], i: int) -> float:
    return float(values[i])


def _const(value: float, _: int) -> float:
    return value


def _memory(r: Resource, busy: Sequence[float], i: int) -> float:
    return memory_mib(r, busy[i])


def matrix(fleet: Fleet, fact: str, measure: str, by: list[str], first_eval: datetime,
           last_eval: datetime, window: tuple[datetime, datetime]) -> list[dict[str, object]]:
    """The `data.result` of a range query evaluated hourly from `first_eval` to `last_eval`, over the
    hours of `window` only (what a Prometheus holding just that window answers)."""
    base = datetime.combine(fleet.start, datetime.min.time())
    lo, hi = max(window[0], base), min(window[1], base + timedelta(days=fleet.days))
    evals = []
    t = first_eval
    while t <= last_eval:
        if lo <= t - timedelta(hours=1) < hi:
            evals.append((unix(t), int((t - timedelta(hours=1) - base).total_seconds()) // HOUR))
        t += timedelta(hours=1)
    combine = (lambda a, b: a + b) if fact in ("vllm", "gateway") else max  # `sum by` / `max by`
    grouped: dict[tuple[tuple[str, str], ...], dict[int, float]] = {}
    for labels, value in answers(fleet, fact, measure):
        kept = tuple(sorted((k, v) for k, v in labels.items() if k in by))
        acc = grouped.setdefault(kept, {})
        for ts, i in evals:
            acc[ts] = combine(acc[ts], value(i)) if ts in acc else value(i)
    return [{"metric": dict(k), "values": [[ts, number(v)] for ts, v in sorted(pts.items())]}
            for k, pts in grouped.items() if pts]


def number(v: float) -> str:
    """A sample value as Prometheus writes it (`4`, `0.5`, `61000`)."""
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
