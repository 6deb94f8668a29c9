"""A generated test fleet: three days of dcgm-exporter, vLLM and metering-gateway series, plus the
truth they were generated from (per GPU-hour and per server-hour), computed here in plain Python.

Shapes follow the real scrapes in tests/fixtures/scrapes and docs/ (metric names and labels):
- node-a: GPU Operator install, upper-case `Hostname`, workload labels kept (`pod`, `namespace`,
  `container`); GPU a0 serves vLLM llama, a1 is idle and shows the exporter's own pod labels, a2 is
  time-sliced between two pods (emitted once per pod with a `vgpu` label: GR_ENGINE_ACTIVE the whole
  GPU's value, GPU_UTIL each pod's own, 70 and 30 percent of it, as dcgm-exporter's virtual GPUs
  have it). An exporter outage from D1 10:00 to 10:30.
- node-b: Helm chart, lower-case `hostname`, `exported_*` workload labels; GPU b0 (A10G) has no
  profiling metric (busy from GPU_UTIL), b1 is an A100 in MIG mode (two instances, one unallocated).
- vLLM llama (2 engines, restarted at D1 13:27:30), vLLM mistral (restarted just before D2 06:00),
  a production-stack router look-alike without `model_name`, and gateway counters for mistral on D1.

Time semantics: exporter samples sit 30 s off the minute (never on an hour edge); counters are
scraped on the minute, hour edges included, so the closed range of Prometheus 2.x sees exactly the
counter's change over the hour. Tokens a server counts between its last scrape and a crash are
unobservable; the generator has none (a restarted counter's first scrape holds only new tokens).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tests.support.prometheus import OMSeries

D0 = datetime(2026, 11, 2)  # a Monday; naive UTC like the store
DAYS = 3
HOUR = 3600
T0 = int(D0.replace(tzinfo=UTC).timestamp())
T_END = T0 + DAYS * 24 * HOUR
EXPORTER_TIMES = range(T0 + 30, T_END, 60)
SCRAPE_TIMES = range(T0, T_END + 1, 60)
OUTAGE = (T0 + 34 * HOUR, T0 + 34 * HOUR + 1800)  # node-a exporter down D1 10:00-10:30
LLAMA_RESTART = T0 + 37 * HOUR + 28 * 60  # first scrape after the restart: D1 13:28
MISTRAL_RESTART = T0 + 54 * HOUR  # first scrape after the restart: D2 06:00, an hour edge
GATEWAY_SPAN = (T0 + 24 * HOUR, T0 + 48 * HOUR)  # gateway counters scraped D1 00:00 .. D2 00:00

EXPORTER_A = {"pod": "nvidia-dcgm-exporter-x7k2p", "namespace": "gpu-operator", "container": "nvidia-dcgm-exporter"}
TARGET_B = {"pod": "dcgm-exporter-5f6b9", "namespace": "monitoring", "container": "dcgm-exporter",
            "service": "dcgm-exporter"}
NODE_A = {"Hostname": "gpu-node-a", "DCGM_FI_DRIVER_VERSION": "580.105.08", "instance": "10.0.1.5:9400",
          "job": "gpu-metrics", "instance_id": "i-0AbC1234567890def"}
NODE_B = {"hostname": "gpu-node-b", "DCGM_FI_DRIVER_VERSION": "570.86.15", "instance": "10.0.2.7:9400",
          "job": "dcgm-exporter", **TARGET_B}


def hour_of(t: int) -> datetime:
    """The hour a sample stamped t was taken in (exporter samples) ..."""
    return datetime.fromtimestamp(t - (t - T0) % HOUR, UTC).replace(tzinfo=None)


def hour_of_increment(t: int) -> datetime:
    """... and the hour of the minute (t - 60, t] a counter increment scraped at t belongs to."""
    return hour_of(t - 60)


@dataclass
class GpuTruth:
    busy: list[float] = field(default_factory=list)
    memory: list[float] = field(default_factory=list)
    power_w: float | None = None  # constant within the hour


@dataclass
class Fleet:
    series: list[OMSeries] = field(default_factory=list)
    # (uuid, mig instance or "", hour) -> truth
    gpus: dict[tuple[str, str, datetime], GpuTruth] = field(default_factory=lambda: defaultdict(GpuTruth))
    # (pod, hour) -> {"prompt_tokens": n, "generation_tokens": n, "requests": n}
    vllm: dict[tuple[str, datetime], dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    # (team, hour) -> same
    gateway: dict[tuple[str, datetime], dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    # (uuid, hour) -> {pod: its GPU_UTIL summed over the hour's samples}, for a time-sliced GPU
    pod_util: dict[tuple[str, datetime], dict[str, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float)))


def _load(rng: random.Random, hour: int, kind: str) -> float:
    """Busy level of an hour: day/night shape plus a per-hour wobble; some idle night hours."""
    h = hour % 24
    if kind == "idle":
        return rng.uniform(0.0, 0.01)
    base = 0.75 if 8 <= h < 20 else 0.25
    if kind == "night_idle" and h < 5:
        return rng.uniform(0.0, 0.02)
    return min(0.95, max(0.0, base + rng.uniform(-0.2, 0.2)))


def _gpu(fleet: Fleet, rng: random.Random, labels: dict[str, str], copies: list[dict[str, str]], kind: str,
         prof: bool = True, util: bool = True, energy: bool = True, mig: str = "",
         outage: tuple[int, int] | None = None, pod_util: tuple[float, ...] = ()) -> None:
    """Series of one GPU (or MIG instance), one copy per pod mapped to it; truth per hour. With
    `pod_util` (one fraction per copy), each copy's GPU_UTIL is that fraction of the GPU's."""
    uuid = labels["UUID"]
    levels = {h: _load(rng, h, kind) for h in range(DAYS * 24)}
    power = {h: round(60 + 340 * levels[h] + rng.uniform(0, 10), 3) for h in levels}
    fb_base = rng.uniform(1000, 70000)
    prof_pts, util_pts, fb_pts, energy_pts = [], [], [], []
    energy_mj = rng.uniform(1e9, 5e9)
    for t in EXPORTER_TIMES:
        h = (t - T0) // HOUR
        energy_mj += power[h] * 60 * 1000  # mJ per minute at a power constant within the hour
        if outage and outage[0] <= t < outage[1]:
            continue
        busy = min(1.0, max(0.0, levels[h] + rng.uniform(-0.05, 0.05)))
        u = min(100, round(busy * 100 + 17))  # coarser, higher than the profiling metric
        fb = round(fb_base + rng.uniform(0, 500))
        truth = fleet.gpus[(uuid, mig, hour_of(t))]
        if prof:
            prof_pts.append((t, round(busy, 6)))
            truth.busy.append(round(busy, 6))
        else:
            u = round(busy * 100)
            truth.busy.append(u / 100)
        util_pts.append((t, float(u)))
        fb_pts.append((t, float(fb)))
        truth.memory.append(float(fb))
        truth.power_w = power[h]
        energy_pts.append((t, round(energy_mj)))
    for i, copy in enumerate(copies):
        full = {**labels, **copy, **({"vgpu": str(i)} if pod_util else {})}
        own = util_pts
        if pod_util:
            own = [(t, float(round(u * pod_util[i]))) for t, u in util_pts]
            for t, u in own:
                fleet.pod_util[(uuid, hour_of(t))][copy["pod"]] += u
        if prof:
            fleet.series.append(OMSeries("DCGM_FI_PROF_GR_ENGINE_ACTIVE", full, "gauge", prof_pts))
        if util:
            fleet.series.append(OMSeries("DCGM_FI_DEV_GPU_UTIL", full, "gauge", own))
        fleet.series.append(OMSeries("DCGM_FI_DEV_FB_USED", full, "gauge", fb_pts))
        if energy:
            fleet.series.append(OMSeries("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", full, "counter",
                                         [(t, float(v)) for t, v in energy_pts]))


def _counter(increments: dict[int, int], start: float, restart: int | None) -> list[tuple[float, float]]:
    """Cumulative counter scraped at SCRAPE_TIMES; at `restart` it starts again from 0."""
    value, points = start, []
    for t in SCRAPE_TIMES:
        if t == restart:
            value = 0
        value += increments.get(t, 0)
        points.append((t, float(value)))
    return points


def _vllm(fleet: Fleet, rng: random.Random, labels: dict[str, str], engines: list[str], restart: int,
          scale: int) -> None:
    pod = labels["pod"]
    for engine in engines:
        per_metric: dict[str, dict[int, int]] = {"prompt": {}, "gen": {}, "stop": {}, "length": {}}
        for t in SCRAPE_TIMES[1:]:
            h = ((t - 60 - T0) // HOUR) % 24
            busy = 1.0 if 8 <= h < 20 else (0.0 if h < 4 else 0.3)
            n_stop, n_len = rng.randint(0, round(6 * busy)), rng.randint(0, round(2 * busy))
            n = n_stop + n_len
            per_metric["stop"][t], per_metric["length"][t] = n_stop, n_len
            per_metric["prompt"][t] = sum(rng.randint(50, scale) for _ in range(n))
            per_metric["gen"][t] = sum(rng.randint(5, scale // 3) for _ in range(n))
            truth = fleet.vllm[(pod, hour_of_increment(t))]
            truth["prompt_tokens"] += per_metric["prompt"][t]
            truth["generation_tokens"] += per_metric["gen"][t]
            truth["requests"] += n
        base = {**labels, "engine": engine}
        start = rng.randint(10**6, 10**7)
        fleet.series += [
            OMSeries("vllm:prompt_tokens_total", base, "counter", _counter(per_metric["prompt"], start, restart)),
            OMSeries("vllm:generation_tokens_total", base, "counter", _counter(per_metric["gen"], start // 3, restart)),
        ]
        for reason in ("stop", "length"):
            fleet.series.append(OMSeries("vllm:request_success_total", {**base, "finished_reason": reason},
                                         "counter", _counter(per_metric[reason], start // 500, restart)))


def _gateway(fleet: Fleet, rng: random.Random, team: dict[str, str]) -> None:
    base = {"instance": "10.3.0.9:8080", "job": "finops-gateway", "namespace": "finops", "pod": "finops-gateway-0",
            "model_id": "Mistral-7B", **team}
    times = [t for t in SCRAPE_TIMES if GATEWAY_SPAN[0] <= t <= GATEWAY_SPAN[1]]
    incs: dict[str, dict[int, int]] = {"prompt": {}, "generation": {}, "200": {}, "500": {}}
    for t in times[1:]:
        ok, bad = rng.randint(1, 4), rng.randint(0, 1)
        incs["200"][t], incs["500"][t] = ok, bad
        incs["prompt"][t], incs["generation"][t] = rng.randint(100, 4000), rng.randint(10, 1500)
        truth = fleet.gateway[(team["team"], hour_of_increment(t))]
        truth["prompt_tokens"] += incs["prompt"][t]
        truth["generation_tokens"] += incs["generation"][t]
        truth["requests"] += ok + bad

    def points(inc: dict[int, int]) -> list[tuple[float, float]]:
        total, out = 0, []
        for t in times:
            total += inc.get(t, 0)
            out.append((t, float(total)))
        return out

    for kind in ("prompt", "generation"):
        fleet.series.append(OMSeries("finops_gateway_tokens_total", {**base, "kind": kind}, "counter",
                                     points(incs[kind])))
    for status in ("200", "500"):
        fleet.series.append(OMSeries("finops_gateway_requests_total", {**base, "status": status}, "counter",
                                     points(incs[status])))


def gpu(n: int, uuid: str, model: str, bus: str) -> dict[str, str]:
    return {"gpu": str(n), "UUID": uuid, "pci_bus_id": bus, "device": f"nvidia{n}", "modelName": model}


H100, A10G, A100 = "NVIDIA H100 80GB HBM3", "NVIDIA A10G", "NVIDIA A100-SXM4-80GB"
A0, A1, A2 = "GPU-c4529c8d-69c4-b61d-e0bc-7b2460096005", "GPU-bc5610b9-79c8-fedd-8899-07539c7f868a", \
    "GPU-fbc2c554-4d37-8938-0032-f923bad0f716"
B0, B1 = "GPU-82e45d1b-1618-559f-144c-eab51545030b", "GPU-39e28159-8c62-ee71-64db-b748edd61e15"
LLAMA = {"model_name": "meta-llama/Llama-3.1-70B-Instruct", "namespace": "llm", "pod": "vllm-llama-0",
         "instance": "10.1.0.10:8000", "job": "vllm", "instance_id": "i-0AbC1234567890def",
         "project": "Chatbot", "team": "CoreAI", "environment": "prod"}
MISTRAL = {"model_name": "mistral-7b-instruct", "model_id": "Mistral-7B", "namespace": "llm", "pod": "vllm-mistral-0",
           "instance": "10.2.0.20:8000", "job": "vllm", "hostname": "gpu-node-b"}
TEAMS = [{"project": "search", "team": "search", "environment": "prod"},
         {"project": "ads", "team": "growth", "environment": "prod"}]


def build_fleet(seed: int = 4) -> Fleet:
    rng = random.Random(seed)
    f = Fleet()
    llama_pod = {"pod": "vllm-llama-0", "namespace": "llm", "container": "vllm",
                 "project": "Chatbot", "team": " CoreAI", "environment": " Prod "}
    _gpu(f, rng, {**NODE_A, **gpu(0, A0, H100, "00000000:53:00.0")}, [llama_pod], "night_idle", outage=OUTAGE)
    _gpu(f, rng, {**NODE_A, **gpu(1, A1, H100, "00000000:64:00.0")}, [EXPORTER_A], "idle", outage=OUTAGE)
    embed = {"namespace": "batch", "container": "embedder", "project": "Embeddings", "team": "search"}
    _gpu(f, rng, {**NODE_A, **gpu(2, A2, H100, "00000000:75:00.0")},
         [{**embed, "pod": "batch-embed-0", "environment": "prod"},
          {**embed, "pod": "batch-embed-1", "environment": "staging"}], "busy", outage=OUTAGE,
         pod_util=(0.7, 0.3))
    mistral_pod = {"exported_pod": "vllm-mistral-0", "exported_namespace": "llm", "exported_container": "vllm",
                   "project": "search"}
    _gpu(f, rng, {**NODE_B, **gpu(0, B0, A10G, "00000000:00:1E.0")}, [mistral_pod], "busy", prof=False)
    mig = {**NODE_B, **gpu(1, B1, A100, "00000000:00:1F.0")}
    _gpu(f, rng, {**mig, "GPU_I_PROFILE": "3g.40gb", "GPU_I_ID": "1"},
         [{"exported_pod": "notebook-0", "exported_namespace": "research", "exported_container": "jupyter"}],
         "busy", util=False, energy=False, mig="1")
    _gpu(f, rng, {**mig, "GPU_I_PROFILE": "3g.40gb", "GPU_I_ID": "2"}, [{}], "idle", util=False, energy=False,
         mig="2")
    # The physical MIG GPU's energy counter (device-level, no MIG labels): not a GPU-hour of its own.
    f.series.extend(_energy_only(rng, mig))
    _vllm(f, rng, LLAMA, ["0", "1"], LLAMA_RESTART, 2000)
    _vllm(f, rng, MISTRAL, ["0"], MISTRAL_RESTART, 800)
    router = [(t, float(10**8 + i * 5000)) for i, t in enumerate(SCRAPE_TIMES)]
    f.series.append(OMSeries("vllm:prompt_tokens_total", {"server": "router-0", "instance": "10.4.0.2:8001",
                                                          "job": "vllm-router"}, "counter", router))
    for team in TEAMS:
        _gateway(f, rng, team)
    return f


def _energy_only(rng: random.Random, labels: dict[str, str]) -> list[OMSeries]:
    value, pts = rng.uniform(1e9, 2e9), []
    for t in EXPORTER_TIMES:
        value += rng.uniform(100, 300) * 60 * 1000
        pts.append((t, float(round(value))))
    return [OMSeries("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", labels, "counter", pts)]


def hours(start: datetime, end: datetime) -> list[datetime]:
    out, h = [], start
    while h < end:
        out.append(h)
        h += timedelta(hours=1)
    return out


def test_fleet_counters_reset_where_the_truth_says() -> None:
    """The generated data really contains the cases the collector tests rely on."""
    f = build_fleet()
    llama = next(s for s in f.series if s.name == "vllm:prompt_tokens_total" and s.labels.get("pod") == "vllm-llama-0")
    drops = [t for (_, a), (t, b) in zip(llama.points, llama.points[1:], strict=False) if b < a]
    assert drops == [LLAMA_RESTART]
    assert {k[0] for k in f.gpus} == {A0, A1, A2, B0, B1}
    assert any(t.power_w is not None and len(t.busy) == 30 for t in f.gpus.values())  # the outage's half hour
    shared = [s for s in f.series if s.name == "DCGM_FI_PROF_GR_ENGINE_ACTIVE" and s.labels["UUID"] == A2]
    assert len(shared) == 2 and shared[0].points == shared[1].points
    per_pod = [s for s in f.series if s.name == "DCGM_FI_DEV_GPU_UTIL" and s.labels["UUID"] == A2]
    assert len(per_pod) == 2 and per_pod[0].points != per_pod[1].points
    assert not any(s.name == "DCGM_FI_PROF_GR_ENGINE_ACTIVE" and s.labels["UUID"] == B0 for s in f.series)
