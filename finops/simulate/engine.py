"""The simulated vLLM engine: request scheduling, per-token timing and vLLM's own metrics.

Metric names, types and labels follow vLLM's V1 engine (`vllm/v1/metrics/loggers.py`): counters are
declared without `_total` (prometheus_client adds it to the sample name), every per-engine series has
`model_name` and `engine`. Prompt tokens are counted when prefill ends and generation tokens one per
step, as vLLM does, so the counters' increase equals the `usage` returned for every request that
finishes; a client that disconnects mid-stream leaves its tokens counted and the request counted as
`abort`, as in vLLM. Prompts go through a prefix cache (`finops.simulate.prefix`): the tokens found
there are counted as cached (`prompt_tokens_cached`, `prompt_tokens_by_source`) and not prefilled
again. The engine can be put to sleep (levels 1 and 2, `engine_sleep_state`), as vLLM's sleep mode.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from finops.simulate.prefix import PrefixCache
from finops.simulate.text import Plan

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
               20.0, 40.0, 80.0)
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                           60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
BLOCK_SIZE = 16
FINISHED_REASONS = ("stop", "length", "abort", "error", "repetition")
PROMPT_SOURCES = ("local_compute", "local_cache_hit", "external_kv_transfer")
# `engine_sleep_state` values by sleep level (0: awake); one series per state, the current one at 1.
SLEEP_STATES = ("awake", "weights_offloaded", "discard_all")


def one_two_five_buckets(limit: int) -> list[float]:
    """1, 2, 5, 10, 20, 50, ... up to `limit`: vLLM's buckets for per-request token counts."""
    out: list[float] = []
    exponent = 0
    while True:
        for m in (1, 2, 5):
            value = m * 10**exponent
            if value > limit:
                return out
            out.append(float(value))
        exponent += 1


@dataclass(frozen=True)
class EngineConfig:
    """Shape and speed of the simulated server."""

    model_name: str
    engine: str = "0"
    max_model_len: int = 8192
    max_num_seqs: int = 64
    # KV-cache capacity in tokens; `kv_cache_usage_perc` is the share held by running requests.
    kv_cache_tokens: int = 262_144
    token_delay: float = 0.002  # seconds per generated token (one decode step)
    prefill_delay_per_token: float = 0.00002


class EngineMetrics:
    """vLLM's metrics, in a private registry (no process-global state)."""

    def __init__(self, cfg: EngineConfig) -> None:
        self.registry = CollectorRegistry()
        # vLLM's /metrics carries the process collector's series: process_start_time_seconds is how
        # a collector tells a restart that came back above the old counter values.
        ProcessCollector(registry=self.registry)
        r, labels = self.registry, ["model_name", "engine"]
        values = {"model_name": cfg.model_name, "engine": cfg.engine}
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.",
                                     labels, registry=r).labels(**values)
        self.generation_tokens = Counter("vllm:generation_tokens", "Number of generation tokens processed.",
                                         labels, registry=r).labels(**values)
        self.prompt_cached = Counter("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local "
                                     "prefix cache and external KV transfer).", labels, registry=r).labels(**values)
        by_source = Counter("vllm:prompt_tokens_by_source", "Number of prompt tokens by source.",
                            [*labels, "source"], registry=r)
        self.prompt_by_source = {src: by_source.labels(source=src, **values) for src in PROMPT_SOURCES}
        self.sleep_state = Gauge("vllm:engine_sleep_state", "Engine sleep state; awake = 0 means engine is "
                                 "sleeping.", [*labels, "sleep_state"], registry=r)
        self.prefix_queries = Counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number "
                                      "of queried tokens.", labels, registry=r).labels(**values)
        self.prefix_hits = Counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of "
                                   "cached tokens.", labels, registry=r).labels(**values)
        self.preemptions = Counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.",
                                   labels, registry=r).labels(**values)
        self.success = Counter("vllm:request_success", "Count of successfully processed requests.",
                               [*labels, "finished_reason"], registry=r)
        for reason in FINISHED_REASONS:  # vLLM exposes every reason from the start, at zero
            self.success.labels(finished_reason=reason, **values)
        self.running = Gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
                             labels, registry=r).labels(**values)
        self.waiting = Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
                             labels, registry=r).labels(**values)
        self.kv_usage = Gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
                              labels, registry=r).labels(**values)
        cache_info = {"block_size": str(BLOCK_SIZE), "cache_dtype": "auto", "enable_prefix_caching": "True",
                      "num_gpu_blocks": str(cfg.kv_cache_tokens // BLOCK_SIZE), "engine": cfg.engine}
        Gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig", list(cache_info),
              registry=r).labels(**cache_info).set(1)

        def hist(name: str, doc: str, buckets: tuple[float, ...] | list[float]) -> Histogram:
            return Histogram(name, doc, labels, registry=r, buckets=buckets)

        tokens = one_two_five_buckets(cfg.max_model_len)
        self.ttft = hist("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                         TTFT_BUCKETS).labels(**values)
        self.itl = hist("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
                        ITL_BUCKETS).labels(**values)
        self.e2e = hist("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
                        REQUEST_LATENCY_BUCKETS).labels(**values)
        self.queue_time = hist("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING "
                               "phase for request.", REQUEST_LATENCY_BUCKETS).labels(**values)
        self.prefill_time = hist("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL "
                                 "phase for request.", REQUEST_LATENCY_BUCKETS).labels(**values)
        self.decode_time = hist("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE "
                                "phase for request.", REQUEST_LATENCY_BUCKETS).labels(**values)
        self.request_prompt = hist("vllm:request_prompt_tokens", "Number of prefill tokens processed.",
                                   tokens).labels(**values)
        self.request_generation = hist("vllm:request_generation_tokens", "Number of generation tokens "
                                       "processed.", tokens).labels(**values)
        self._values = values
        self.slept(0)

    def finished(self, reason: str) -> None:
        self.success.labels(finished_reason=reason, **self._values).inc()

    def slept(self, level: int) -> None:
        for i, state in enumerate(SLEEP_STATES):
            self.sleep_state.labels(sleep_state=state, **self._values).set(int(i == level))

    def prompt(self, tokens: int, cached: int) -> None:
        self.prompt_tokens.inc(tokens)
        self.prompt_cached.inc(cached)
        self.prompt_by_source["local_cache_hit"].inc(cached)
        self.prompt_by_source["local_compute"].inc(tokens - cached)
        self.prefix_queries.inc(tokens)
        self.prefix_hits.inc(cached)


@dataclass
class Counted:
    """What the engine counted for one request, as its `usage` reports it."""

    cached_tokens: int = 0


class Engine:
    """Admits requests up to `max_num_seqs`, then "runs" them one token per `token_delay`."""

    def __init__(self, cfg: EngineConfig) -> None:
        self.cfg = cfg
        self.metrics = EngineMetrics(cfg)
        self._slots = asyncio.Semaphore(cfg.max_num_seqs)
        self.prefix = PrefixCache(BLOCK_SIZE, cfg.kv_cache_tokens // BLOCK_SIZE)
        self.sleep_level = 0
        self._kv_tokens = 0
        self._running = 0
        self._waiting = 0

    def _set_gauges(self) -> None:
        self.metrics.running.set(self._running)
        self.metrics.waiting.set(self._waiting)
        self.metrics.kv_usage.set(min(1.0, self._kv_tokens / self.cfg.kv_cache_tokens))

    def sleep(self, level: int) -> None:
        """Sleep mode: level 1 offloads the weights, level 2 discards them; the prefix cache is dropped."""
        self.sleep_level = level
        self.prefix = PrefixCache(BLOCK_SIZE, self.cfg.kv_cache_tokens // BLOCK_SIZE)
        self.metrics.slept(level)

    def wake_up(self) -> None:
        self.sleep_level = 0
        self.metrics.slept(0)

    async def generate(self, prompt: Sequence[str], plan: Plan,
                       counted: Counted | None = None) -> AsyncGenerator[str, None]:
        """Yield the planned words at decode speed, keeping vLLM's metrics as it goes; `counted` gets
        the request's cached prompt tokens once it is scheduled."""
        m, arrived, prompt_tokens = self.metrics, time.monotonic(), len(prompt)
        self._waiting += 1
        self._set_gauges()
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        held, produced, reason = prompt_tokens, 0, "abort"
        self._running += 1
        self._kv_tokens += held
        self._set_gauges()
        scheduled = time.monotonic()
        m.queue_time.observe(scheduled - arrived)
        try:
            cache = self.prefix  # one cache for the whole request, even if sleep drops it meanwhile
            cached = cache.cached_tokens(prompt)
            if counted is not None:
                counted.cached_tokens = cached
            await asyncio.sleep((prompt_tokens - cached) * self.cfg.prefill_delay_per_token)
            m.prompt(prompt_tokens, cached)
            cache.add(prompt)
            prefilled = last = time.monotonic()
            m.prefill_time.observe(prefilled - scheduled)
            for word in plan.words:
                await asyncio.sleep(self.cfg.token_delay)
                now = time.monotonic()
                if produced == 0:
                    m.ttft.observe(now - arrived)
                else:
                    m.itl.observe(now - last)
                last = now
                produced += 1
                held += 1
                self._kv_tokens += 1
                m.generation_tokens.inc()
                self._set_gauges()
                yield word
            reason = plan.finish_reason
            m.decode_time.observe(time.monotonic() - prefilled)
            m.request_prompt.observe(prompt_tokens)
            m.request_generation.observe(produced)
        finally:
            m.e2e.observe(time.monotonic() - arrived)
            m.finished(reason)
            self._running -= 1
            self._kv_tokens -= held
            self._set_gauges()
            self._slots.release()
