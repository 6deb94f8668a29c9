"""End to end on 127.0.0.1: the vLLM and dcgm-exporter simulators, a real Prometheus scraping them every
second, the load generator, the Grafana dashboard's queries and the Prometheus collector.

The expectations come from what the load generator received (the `usage` of each response) and from
Prometheus's raw samples, never from the code under test.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from finops.collect import collect
from finops.settings import PrometheusSettings, Settings
from finops.simulate.load import run_load
from finops.store import Store
from finops.timeutil import Clock, Window, utcnow
from tests.simulate.metrics import query, scalar, scrape, total
from tests.simulate.procs import REPO, free_port, prometheus, prometheus_config, services, sim

MODEL = "sim-7b"
TARGET_LABELS = {"project": "Chatbot", "team": "coreai", "environment": "dev", "model_id": MODEL,
                 "instance_id": "i-0sim00000000001"}
TOKENS = ("vllm:prompt_tokens_total", "vllm:generation_tokens_total")
GRAFANA_VARIABLES = {"$__rate_interval": "4s", "$__range": "60s"}


@pytest.fixture
def clock() -> Clock:
    """Live simulators and a live Prometheus run on the machine's time, so the store's clock does too."""
    return utcnow


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def raw_samples(prom: str, metric: str) -> list[tuple[float, float]]:
    """Every stored sample of the (single) series `metric` from the last 10 minutes."""
    result = query(prom, f"{metric}[10m]")
    assert len(result) == 1, result
    return [(float(t), float(v)) for t, v in result[0]["values"]]


def prometheus_increase(samples: list[tuple[float, float]], start: float, end: float) -> float | None:
    """`increase()` over the closed range [start, end] as Prometheus 2.x computes it (extrapolatedRate):
    the raw growth (resets counted), stretched towards the range edges, never past the counter's zero
    point. None when fewer than two samples fall in the range (Prometheus returns no point)."""
    ms = [(round(t * 1000), v) for t, v in samples]
    first_ms, last_ms = round(start * 1000), round(end * 1000)
    pts = [(t, v) for t, v in ms if first_ms <= t <= last_ms]
    if len(pts) < 2:
        return None
    growth = pts[-1][1] - pts[0][1] + sum(a for (_, a), (_, b) in zip(pts, pts[1:], strict=False) if b < a)
    sampled = (pts[-1][0] - pts[0][0]) / 1000
    average = sampled / (len(pts) - 1)
    to_start, to_end = (pts[0][0] - first_ms) / 1000, (last_ms - pts[-1][0]) / 1000
    if growth > 0 and pts[0][1] >= 0:
        to_start = min(to_start, sampled * (pts[0][1] / growth))
    threshold = average * 1.1
    stretched = sampled + (to_start if to_start < threshold else average / 2)
    stretched += to_end if to_end < threshold else average / 2
    return growth * (stretched / sampled)


def test_load_through_prometheus_to_the_collector(tmp_path: Path, settings: Settings, store: Store) -> None:
    vllm_sim = sim("vllm", "--served-model-name", MODEL, "--token-delay", "0.004", log=tmp_path / "vllm.log")
    dcgm_sim = sim("dcgm", "--gpus", "2", "--bind", f"0={vllm_sim.url}", "--interval", "0.25",
                   "--hostname", "sim-node-1", log=tmp_path / "dcgm.log")
    config = prometheus_config({"vllm": (f"127.0.0.1:{vllm_sim.port}", TARGET_LABELS),
                                "dcgm": (f"127.0.0.1:{dcgm_sim.port}", TARGET_LABELS)})
    # Prometheus first: it applies new targets only every 5 s, so let that overlap the simulators' start.
    with services(prometheus(config, tmp_path / "prometheus"), vllm_sim, dcgm_sim) as (prom, vllm, _):
        # Both targets scraped, and the token counters seen at zero before any load.
        wait_for(lambda: len(query(prom, "up == 1")) == 2
                 and len(query(prom, 'vllm:generation_tokens_total{project="Chatbot"} == 0')) == 1
                 and len(query(prom, "DCGM_FI_PROF_GR_ENGINE_ACTIVE")) == 2, 15, "the first scrapes")
        # Zeros scraped for over two collector periods (3 s) before the load: the collector then has a
        # previous value for every period with growth, as for any long-running server.
        wait_for(lambda: len(raw_samples(prom, "vllm:prompt_tokens_total")) >= 8, 15, "zeros before the load")
        load_start = time.time()
        result = asyncio.run(run_load(vllm, "steady", duration=3.0, concurrency=4, max_tokens=24, seed=3))
        load_end = time.time()
        assert result.requests > 20 and result.errors == 0
        usage = {"vllm:prompt_tokens_total": result.prompt_tokens,
                 "vllm:generation_tokens_total": result.completion_tokens}

        # The simulator counted exactly what it returned (it started from zero).
        served = scrape(vllm)
        assert {m: total(served, m) for m in TOKENS} == usage

        # Prometheus holds the final values, and the dcgm simulator has gone idle again.
        wait_for(lambda: all(scalar(prom, f"sum({m})") == usage[m] for m in TOKENS), 10, "the final scrape")
        wait_for(lambda: scalar(prom, 'DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="0"}') == 0, 10, "GPU 0 to go idle")

        # increase() evaluated at the last sample: the series starts at zero and ends at the range
        # edge, so Prometheus extrapolates nothing and the result is the usage, exactly.
        for metric in TOKENS:
            last = float(query(prom, f"timestamp({metric})")[0]["value"][1])
            assert scalar(prom, f"sum(increase({metric}[5m]))", at=last) == usage[metric], metric

        # Busy fraction: the bound GPU worked during the load, the unbound one never did.
        span = f"{math.ceil(time.time() - load_start) + 2}s"
        # Four requests in flight saturate the simulated GPU (saturation 4); between requests fewer are.
        assert scalar(prom, f'max_over_time(DCGM_FI_PROF_GR_ENGINE_ACTIVE{{gpu="0"}}[{span}])') >= 0.5
        assert 0 < scalar(prom, f'avg_over_time(DCGM_FI_PROF_GR_ENGINE_ACTIVE{{gpu="0"}}[{span}])') < 1
        assert scalar(prom, f'max_over_time(DCGM_FI_PROF_GR_ENGINE_ACTIVE{{gpu="1"}}[{span}])') == 0
        assert scalar(prom, f'max_over_time(DCGM_FI_DEV_GPU_UTIL{{gpu="1"}}[{span}])') == 0
        # Target labels reach every series.
        assert len(query(prom, 'DCGM_FI_DEV_FB_USED{instance_id="i-0sim00000000001",team="coreai"}')) == 2

        check_dashboard_queries(prom, at=load_end)
        check_collector(prom, settings, store, usage, load_start)


def check_dashboard_queries(prom: str, at: float) -> None:
    """Every panel query is valid PromQL; those over vLLM and DCGM metrics return data at the end of the load.

    The finops_* gauges come from the finops service, which is not running here: their panels are
    only checked to parse and run.
    """
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/finops.json").read_text())
    checked = 0
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, expr
            result = query(prom, expr, at=at)  # raises on a PromQL error
            if re.search(r"\b(vllm:|DCGM_)", expr):
                assert result, f"panel {panel['title']!r}: no data for {expr}"
                checked += 1
            if panel["title"] == "Token throughput":
                assert all(float(r["value"][1]) > 0 for r in result)
    assert checked >= 10


def check_collector(prom: str, settings: Settings, store: Store, usage: dict[str, int], since: float) -> None:
    """The Prometheus collector over the test's few seconds, at a 3-second step instead of an hour.

    The collector takes each period's growth as the counter's last value minus the previous period's
    (falling back to `increase()` only across restarts and new series), so its periods add up to the
    counter's growth exactly: the collected tokens equal the usage the load generator received.
    """
    step = 3
    # The raw samples up to the one holding the final value (the usage), then the period after it ends.
    wait_for(lambda: all(any(v == usage[m] for _, v in raw_samples(prom, m)) for m in TOKENS), 10,
             "the final value in the raw samples")
    so_far = {m: raw_samples(prom, m) for m in TOKENS}
    last_growth = max(t for m in TOKENS for (_, v), (t, w) in zip(so_far[m], so_far[m][1:], strict=False) if w > v)
    start = (int(since) - step) // step * step
    end = (int(last_growth) // step + 1) * step  # the end of the period holding the last growth
    wait_for(lambda: time.time() > end + 0.5, step * 3, "the last period to end")
    samples = {m: raw_samples(prom, m) for m in TOKENS}
    window = Window(datetime.fromtimestamp(start, UTC).replace(tzinfo=None),
                    datetime.fromtimestamp(end, UTC).replace(tzinfo=None))
    cfg = settings.model_copy(update={"prometheus": PrometheusSettings(
        url=prom, step_seconds=step, max_retries=0, timeout_seconds=10)})
    runs = collect(store, cfg, "prometheus", window)
    assert [r.status for r in runs] == ["succeeded"], runs

    rows = store.query("SELECT epoch(hour_start)::BIGINT, model_name, project, team, environment, model_id, "
                       "resource_id, prompt_tokens, generation_tokens FROM token_hours ORDER BY 1")
    assert {r[1:7] for r in rows} == {(MODEL, "chatbot", "coreai", "dev", MODEL, "i-0sim00000000001")}
    for column, metric in ((7, "vllm:prompt_tokens_total"), (8, "vllm:generation_tokens_total")):
        collected = {r[0]: r[column] for r in rows}
        assert samples[metric][0][1] == 0 and samples[metric][-1][1] == usage[metric]
        assert all(v >= 0 for v in collected.values()), metric
        assert sum(collected.values()) == usage[metric], (metric, collected)

    gpus = dict(store.query("SELECT gpu_index, max(busy) FROM gpu_hours GROUP BY gpu_index"))
    assert set(gpus) == {"0", "1"}
    assert gpus["1"] == 0.0  # the unbound GPU is reported idle
    assert gpus["0"] > 0.2


V1_COUNTERS = {"vllm:prompt_tokens_total": "prompt_tokens", "vllm:generation_tokens_total": "generation_tokens",
               "vllm:prompt_tokens_cached_total": "cached_prompt_tokens", "vllm:request_success_total": "requests"}


def value(prom: str, expr: str) -> float | None:
    """The value of a one-series instant query, None while it has none."""
    result = query(prom, expr)
    return float(result[0]["value"][1]) if result else None


def test_a_restart_between_two_loads_loses_and_doubles_no_token(tmp_path: Path, settings: Settings,
                                                                store: Store) -> None:
    """Load, a restart of the simulator (its counters start again from zero), more load: the collected
    periods add up to what the clients received, prompt, generated and cached tokens and requests."""
    port = free_port()
    options = ("--served-model-name", MODEL, "--token-delay", "0.002", "--enable-prompt-tokens-details")
    config = prometheus_config({"vllm": (f"127.0.0.1:{port}", TARGET_LABELS)})
    received: dict[str, int] = dict.fromkeys(V1_COUNTERS.values(), 0)
    since = time.time()
    with services(prometheus(config, tmp_path / "prometheus")) as (prom,):
        for seed in (1, 2):
            with services(sim("vllm", *options, log=tmp_path / "vllm.log", port=port)) as (vllm,):
                started = float(scrape(vllm)[("process_start_time_seconds", frozenset())])
                # The new process scraped at zero before the load; the first one for over a collector
                # period (3 s), so every period with growth has a previous value.
                wait_for(lambda: value(prom, 'max(process_start_time_seconds{job="vllm"})') == started  # noqa: B023
                         and value(prom, "sum(vllm:prompt_tokens_total)") == 0, 15, "the new server's first scrape")
                if seed == 1:
                    wait_for(lambda: len(raw_samples(prom, "vllm:prompt_tokens_total")) >= 5, 15, "zeros before the load")
                result = asyncio.run(run_load(vllm, "steady", duration=2.0, concurrency=4, max_tokens=16,
                                              seed=seed, shared_prefix=40))
                assert result.requests > 10 and result.errors == 0 and result.cached_tokens > 0
                for key, n in (("prompt_tokens", result.prompt_tokens), ("generation_tokens", result.completion_tokens),
                               ("cached_prompt_tokens", result.cached_tokens), ("requests", result.requests)):
                    received[key] += n
                final = {m: total(scrape(vllm), m) for m in V1_COUNTERS}
                wait_for(lambda: all(scalar(prom, f"sum({m})") == v for m, v in final.items()), 10,  # noqa: B023
                         "the final scrape")
        # A last period with no sample after the growth: every increase is in a period that has ended.
        step = 3
        end = (int(time.time()) // step + 2) * step
        wait_for(lambda: time.time() > end + 0.5, step * 4, "the last period to end")
        window = Window(datetime.fromtimestamp((int(since) - step) // step * step, UTC).replace(tzinfo=None),
                        datetime.fromtimestamp(end, UTC).replace(tzinfo=None))
        cfg = settings.model_copy(update={"prometheus": PrometheusSettings(
            url=prom, step_seconds=step, max_retries=0, timeout_seconds=10, token_source="vllm")})
        runs = collect(store, cfg, "prometheus", window)
        assert [r.status for r in runs] == ["succeeded"], runs
    measures = list(V1_COUNTERS.values())
    [sums] = store.query(f"SELECT {', '.join(f'sum({m})' for m in measures)} FROM token_hours")
    assert dict(zip(measures, sums, strict=True)) == received
    assert store.query("SELECT count(*) FROM token_hours WHERE prefill_ms IS NULL OR decode_ms IS NULL") == [(0,)]
    assert store.query("SELECT count(*) FROM quarantine") == [(0,)]
