"""A small fleet for the reliability tests: one day of two GPUs and one vLLM server, and its truth.

Smaller than tests/sources/test_prometheus_fleet.py (which proves the collector's arithmetic) so a
real Prometheus starts in about a second; the time semantics are the same: exporter samples sit
30 s off the 5-minute grid, counters are scraped on it, hour edges included, so Prometheus 2.x's
closed range sees exactly each hour's increase. The truth is computed here in plain Python.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tests.support.prometheus import OMSeries

D0 = datetime(2026, 11, 2)
HOURS = 24
HOUR = 3600
EVERY = 300
T0 = int(D0.replace(tzinfo=UTC).timestamp())
T_END = T0 + HOURS * HOUR
GPUS = {"GPU-rel-0": 0.8, "GPU-rel-1": 0.01}  # uuid -> base busy level (the second one idles)
NODE = {"Hostname": "node-rel", "instance": "10.9.0.1:9400", "instance_id": "i-0rel0000000001",
        "modelName": "NVIDIA H100 80GB HBM3"}
SERVER = {"model_name": "llama-rel", "instance": "10.9.0.1:8000", "pod": "vllm-rel-0", "namespace": "llm",
          "instance_id": "i-0rel0000000001", "project": "chatbot", "team": "coreai", "environment": "prod"}


@dataclass
class SmallFleet:
    series: list[OMSeries] = field(default_factory=list)
    busy: dict[tuple[str, datetime], float] = field(default_factory=dict)  # (uuid, hour) -> mean busy
    tokens: dict[datetime, dict[str, int]] = field(default_factory=dict)  # hour -> prompt/generation/requests

    def gpu_hours(self, start: datetime = D0, end: datetime = D0 + timedelta(hours=HOURS)) -> int:
        return sum(1 for (_, h) in self.busy if start <= h < end)

    def token_totals(self) -> tuple[int, int, int]:
        return tuple(sum(t[m] for t in self.tokens.values())  # type: ignore[return-value]
                     for m in ("prompt_tokens", "generation_tokens", "requests"))


def build(seed: int = 12) -> SmallFleet:
    rng = random.Random(seed)
    f = SmallFleet()
    for i, (uuid, level) in enumerate(GPUS.items()):
        labels = {**NODE, "UUID": uuid, "gpu": str(i)}
        pts: list[tuple[float, float]] = []
        for h in range(HOURS):
            busy = round(min(1.0, max(0.0, level + rng.uniform(-0.05, 0.05))), 4)  # constant within the hour
            f.busy[(uuid, D0 + timedelta(hours=h))] = busy
            pts += [(t, busy) for t in range(T0 + h * HOUR + 30, T0 + (h + 1) * HOUR, EVERY)]
        f.series.append(OMSeries("DCGM_FI_PROF_GR_ENGINE_ACTIVE", labels, "gauge", pts))
        f.series.append(OMSeries("DCGM_FI_DEV_FB_USED", labels, "gauge", [(t, 1000.0 + i) for t, _ in pts]))
    scrapes = range(T0, T_END + 1, EVERY)
    totals = {"prompt": 10**6, "gen": 10**5, "req": 500}
    points: dict[str, list[tuple[float, float]]] = {k: [] for k in totals}
    for t in scrapes:
        if t > T0:
            n = rng.randint(0, 6)
            inc = {"prompt": sum(rng.randint(50, 900) for _ in range(n)),
                   "gen": sum(rng.randint(5, 300) for _ in range(n)), "req": n}
            hour = datetime.fromtimestamp(t - 1 - (t - 1 - T0) % HOUR, UTC).replace(tzinfo=None)
            slot = f.tokens.setdefault(hour, {"prompt_tokens": 0, "generation_tokens": 0, "requests": 0})
            slot["prompt_tokens"] += inc["prompt"]
            slot["generation_tokens"] += inc["gen"]
            slot["requests"] += inc["req"]
            for k in totals:
                totals[k] += inc[k]
        for k in totals:
            points[k].append((t, float(totals[k])))
    f.series += [
        OMSeries("vllm:prompt_tokens_total", SERVER, "counter", points["prompt"]),
        OMSeries("vllm:generation_tokens_total", SERVER, "counter", points["gen"]),
        OMSeries("vllm:request_success_total", {**SERVER, "finished_reason": "stop"}, "counter", points["req"]),
    ]
    return f
