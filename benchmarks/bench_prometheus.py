"""Prometheus collection cost: queries issued and time for 1 hour and 1 week of a fleet, real Prometheus.

    python benchmarks/bench_prometheus.py                    # 16, 64 and 256 GPUs (default here)
    python benchmarks/bench_prometheus.py --gpus 256 1024 4096 --interval 300

For each fleet size N, a week (plus an hour) of dcgm-exporter series (engine activity, framebuffer,
energy counter; 4 dims and workload labels) and vLLM counters (one server per 8 GPUs) is written as
OpenMetrics (with vLLM V1's cached-token, prefill/decode and sleep series), backfilled with promtool into a fresh TSDB and served by /usr/bin/prometheus. Then:
- ours: `finops.sources.prometheus.collect.collect_window` (the collector's own plan: every PromQL range
  query at a 1 h step, chunked; parsing; GPU-hour and token-hour facts) for 1 h and for 1 week;
- bound: the same range queries as bare HTTP GETs, JSON decoded, nothing else.
The number of queries depends on the window (chunks) and the configured facts, never on N; time
grows with the series returned, so it is shown per N with a per-GPU extrapolation to 10,000 GPUs.
Samples are spaced `--interval` seconds (default 900 s, to keep the backfill short here; the
queries average over each hour, so the interval changes Prometheus's work, not ours).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

from benchmarks.common import OUT, Measure, print_table, write_json  # noqa: E402

D0 = datetime(2026, 11, 2)  # a Monday, naive UTC
T0 = int(D0.replace(tzinfo=UTC).timestamp())
SPAN = 7 * 24 * 3600 + 3600


def series(gpus: int, interval: int) -> list[Any]:
    """dcgm-exporter and vLLM series of a fleet of `gpus` GPUs over SPAN seconds."""
    from finops.demo.prometheus import OMSeries

    times = range(T0 + 30, T0 + SPAN, interval)
    out = []
    for g in range(gpus):
        host = g // 8
        labels = {"UUID": f"GPU-{g:06d}", "gpu": str(g % 8), "modelName": "NVIDIA H100 80GB HBM3",
                  "Hostname": f"gpu-node-{host}", "instance_id": f"i-{host:08d}", "namespace": "llm",
                  "pod": f"vllm-{host}", "project": f"proj-{host % 50}", "team": f"team-{host % 10}",
                  "environment": "prod", "model_id": f"model-{host % 20}"}
        busy = [(float(t), round(0.5 + 0.45 * math.sin((t + g * 977) / 5400.0), 4)) for t in times]
        out.append(OMSeries("DCGM_FI_PROF_GR_ENGINE_ACTIVE", labels, "gauge", busy))
        out.append(OMSeries("DCGM_FI_DEV_FB_USED", labels, "gauge", [(t, 40000.0 + 10 * (g % 7)) for t in times]))
        out.append(OMSeries("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", labels, "counter",
                            [(t, 1e9 + (t - T0) * 350_000.0) for t in times]))
    scrapes = range(T0, T0 + SPAN + 1, interval)
    for host in range(max(1, gpus // 8)):
        labels = {"model_name": f"model-{host % 20}", "instance": f"gpu-node-{host}:8000", "namespace": "llm",
                  "pod": f"vllm-{host}", "instance_id": f"i-{host:08d}"}
        for name, rate in (("vllm:prompt_tokens_total", 500), ("vllm:generation_tokens_total", 150),
                           ("vllm:request_success_total", 1), ("vllm:prompt_tokens_cached_total", 200),
                           ("vllm:request_prefill_time_seconds_sum", 0.05),
                           ("vllm:request_decode_time_seconds_sum", 0.6)):
            out.append(OMSeries(name, labels, "counter", [(t, float((t - T0) * rate)) for t in scrapes]))
        for state in ("awake", "weights_offloaded", "discard_all"):
            out.append(OMSeries("vllm:engine_sleep_state", {**labels, "sleep_state": state}, "gauge",
                                [(t, float(state == "awake")) for t in scrapes]))
    return out


def measure(gpus: int, interval: int, work: Path) -> dict[str, Any]:
    from finops.demo.prometheus import PrometheusServer
    from finops.settings import PrometheusSettings, Settings
    from finops.sources.prometheus.client import build_client
    from finops.sources.prometheus.collect import collect_window, plan
    from finops.timeutil import Window

    t0 = time.perf_counter()
    data = series(gpus, interval)
    samples = sum(len(s.points) for s in data)
    prom = PrometheusServer.from_series(work / f"n{gpus}", data)
    backfill_s = time.perf_counter() - t0
    del data
    out: dict[str, Any] = {"gpus": gpus, "series": 0, "samples": samples, "backfill_s": backfill_s}
    with prom:
        settings = Settings(prometheus=PrometheusSettings(url=prom.url))
        for label, window in (("1 h", Window(D0 + timedelta(hours=24), D0 + timedelta(hours=25))),
                              ("1 week", Window(D0, D0 + timedelta(days=7)))):
            the_plan = plan(settings, window, now=D0 + timedelta(days=30))
            client = build_client(settings.prometheus)
            try:
                collect_window(client, the_plan)  # warm Prometheus's caches for both sides alike
                t = time.perf_counter()
                batch = collect_window(client, the_plan)
                ours = time.perf_counter() - t
            finally:
                client.close()
            session = requests.Session()
            t = time.perf_counter()
            for chunk in the_plan.chunks:
                for _, expr in the_plan.queries:
                    query: dict[str, Any] = {"query": expr, "start": chunk.first.replace(tzinfo=UTC).timestamp(),
                                             "end": chunk.last.replace(tzinfo=UTC).timestamp(),
                                             "step": the_plan.step_seconds}
                    r = session.get(f"{prom.url}/api/v1/query_range", timeout=300, params=query)
                    r.raise_for_status()
                    r.json()
            bound = time.perf_counter() - t
            session.close()
            out[label] = {"queries": the_plan.total_queries, "ours_s": ours, "bound_s": bound,
                          "gpu_hours": batch.facts["gpu_hours"].num_rows,
                          "token_hours": batch.facts["token_hours"].num_rows}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description="Prometheus collection cost against a real Prometheus")
    p.add_argument("--gpus", type=int, nargs="+", default=[16, 64, 256])
    p.add_argument("--interval", type=int, default=900, help="seconds between samples (default 900)")
    args = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="finops-bench-prom-", dir=OUT if OUT.exists() else None) as tmp:
        for n in sorted(args.gpus):
            r = measure(n, args.interval, Path(tmp))
            print(f"N={n}: {r['samples']:,} samples backfilled in {r['backfill_s']:.1f} s; "
                  + "; ".join(f"{w}: {r[w]['queries']} queries, {r[w]['gpu_hours']:,} GPU-hours, "
                              f"{r[w]['token_hours']:,} token-hours" for w in ("1 h", "1 week")))
            results.append(r)
    measures: list[Measure] = []
    for w in ("1 h", "1 week"):
        queries = {r[w]["queries"] for r in results}
        measures.append(Measure(f"{w}: queries issued (any N)", float(results[-1][w]["queries"]), "queries",
                                goal="same for every N", ok=len(queries) == 1))
        for r in results:
            measures.append(Measure(f"{w}: time, N={r['gpus']}", r[w]["ours_s"], "s", r[w]["bound_s"],
                                    note=f"{r[w]['gpu_hours']:,} GPU-hours"))
        # Fixed cost + cost per GPU, from the two largest fleets, extended to 10,000 GPUs.
        (n1, a1, b1), (n2, a2, b2) = [(r["gpus"], r[w]["ours_s"], r[w]["bound_s"]) for r in results[-2:]] \
            if len(results) > 1 else [(0, 0.0, 0.0), (results[0]["gpus"], results[0][w]["ours_s"], results[0][w]["bound_s"])]
        slope, bslope = (a2 - a1) / (n2 - n1), (b2 - b1) / (n2 - n1)
        measures.append(Measure(f"{w}: extrapolated to 10,000 GPUs", a2 + slope * (10_000 - n2), "s",
                                b2 + bslope * (10_000 - n2),
                                note=f"linear through N={n1} and N={n2}: {slope * 1000:.2f} ms per GPU"))
    print_table(f"Prometheus collection, N = {', '.join(str(r['gpus']) for r in results)} GPUs "
                f"(samples every {args.interval} s)", measures)
    write_json("bench_prometheus", {"gpus": args.gpus, "interval": args.interval, "runs": results}, measures)


if __name__ == "__main__":
    main()
