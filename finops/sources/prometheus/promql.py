"""The PromQL of the Prometheus collector and the label tables it reads, as data.

Every query runs as a range query whose step equals its range (`$range`, 1h by default), so the
point stamped T is the aggregate of the hour ending at T. Templates use `string.Template`
placeholders: `$range`, `$range2` (two steps), `$by` (labels to keep), `$gpu` (GPU identity) and
`$uuid` (physical GPU), plus one `$<name>` per entry of `METRICS`. A metric rename is a one-line change to `METRICS`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from string import Template
from typing import Literal

# Sample names as exposed (DCGM has no `_total` suffix even on counters; vLLM counters do).
# `model_name!=""` keeps vLLM engine series and drops the production-stack router's look-alikes.
METRICS: dict[str, str] = {
    "prof_busy": "DCGM_FI_PROF_GR_ENGINE_ACTIVE",  # ratio 0..1, preferred
    "util": "DCGM_FI_DEV_GPU_UTIL",  # percent 0..100, fallback where the profiling metric is absent
    "fb_used": "DCGM_FI_DEV_FB_USED",  # MiB
    "energy": "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",  # mJ since boot (a counter)
    "vllm_prompt": 'vllm:prompt_tokens_total{model_name!=""}',
    "vllm_generation": 'vllm:generation_tokens_total{model_name!=""}',
    "vllm_requests": 'vllm:request_success_total{model_name!=""}',
    # vLLM V1 (2025 on), optional: cached prompt tokens (local prefix cache + external KV transfer),
    # prefill and decode seconds (histogram sums) and the sleep state (one-hot over `sleep_state`).
    "vllm_cached": 'vllm:prompt_tokens_cached_total{model_name!=""}',
    "vllm_prefill": 'vllm:request_prefill_time_seconds_sum{model_name!=""}',
    "vllm_decode": 'vllm:request_decode_time_seconds_sum{model_name!=""}',
    "vllm_asleep": 'vllm:engine_sleep_state{model_name!="", sleep_state!="awake"}',
    "gw_prompt": 'finops_gateway_tokens_total{kind="prompt"}',
    "gw_generation": 'finops_gateway_tokens_total{kind="generation"}',
    "gw_requests": "finops_gateway_requests_total",
    # The start of a server's process (prometheus_client's process collector), scraped with its
    # counters: a change is a restart even where the counter came back above its old value.
    "process_start": "process_start_time_seconds",
    # kube-state-metrics: pod labels (allow-listed ones, as label_*), pod -> node, node -> provider_id.
    "kube_pod_labels": "kube_pod_labels",
    "kube_pod_info": "kube_pod_info",
    "kube_node_info": "kube_node_info",
}
# Labels that tie a counter to the process_start_time_seconds of the same scrape target.
PROCESS_LABELS: tuple[str, ...] = ("instance", "job")

# GPU identity: the physical GPU's UUID plus the MIG instance id on MIG series. The UUID label is
# `uuid` under dcgm-exporter's `--use-old-namespace`: queries keep both (a series has one, the other
# is empty), so GPUs of either naming stay apart.
UUID_LABELS: tuple[str, ...] = ("UUID", "uuid")
MIG_ID_LABEL = "GPU_I_ID"
GPU_ID_LABELS: tuple[str, ...] = (*UUID_LABELS, MIG_ID_LABEL)
# Host name label: `Hostname` up to dcgm-exporter 4.5.3-4.8.2, `hostname` after.
HOST_LABELS: tuple[str, ...] = ("Hostname", "hostname")
# gpu_hours column -> DCGM labels, first present wins.
GPU_INFO_LABELS: dict[str, tuple[str, ...]] = {
    "gpu_index": ("gpu",),
    "gpu_model": ("modelName",),
    "mig_profile": ("GPU_I_PROFILE",),
    "mig_instance": ("GPU_I_ID",),
}
# Workload columns -> labels, first present wins: `exported_*` when the scrape did not honour the
# exporter's labels (then `pod`/`namespace` name the exporter), old-namespace names last.
WORKLOAD_LABELS: dict[str, tuple[str, ...]] = {
    "namespace": ("exported_namespace", "namespace", "pod_namespace"),
    "pod": ("exported_pod", "pod", "pod_name"),
    "container": ("exported_container", "container", "container_name"),
}
# token_hours location columns -> labels (vLLM and gateway series).
SERVER_LABELS: dict[str, tuple[str, ...]] = {
    "instance": ("instance",),
    "namespace": ("exported_namespace", "namespace"),
    "pod": ("exported_pod", "pod"),
}
MODEL_NAME_LABEL = "model_name"

Fact = Literal["gpu", "gpu_labels", "vllm", "gateway", "k8s"]


@dataclass(frozen=True)
class Query:
    """One range query: the fact it feeds, the measure (column) it fills, and its PromQL template."""

    fact: Fact
    measure: str
    template: str


def _plain(counter: str) -> str:
    """The series whose growth over the period is plainly `last - before`: `before` exists, and over
    both periods `resets()` sees no drop and the server's `process_start_time_seconds` (same
    `instance` and `job`) no change."""
    before = f"last_over_time({counter}[$range] offset $range)"
    restarted = "changes($process_start[$range2]) > 0"
    return (f"(({before} and resets({counter}[$range2]) == 0)"
            f" unless on ({', '.join(PROCESS_LABELS)}) ({restarted}))")


def steady(counter: str) -> str:
    """Growth of a counter over each period, for the series whose growth is plainly last - before.

    `last` is the counter's last value in the period, `before` its last value in the previous
    period. Where `before` exists and nothing shows a restart over both periods (a window that holds
    `before`'s own sample, whichever edge semantics: Prometheus 2's closed `[t-r, t]` or 3's
    left-open `(t-r, t]`), every sample-to-sample increase from `before` to `last` is a plain
    increase, so `last - before` is the exact growth, with no extrapolation. The other series of a
    period are in `suspects()` and counted from their raw samples (`finops.sources.prometheus.exact`).
    """
    last, before = f"last_over_time({counter}[$range])", f"last_over_time({counter}[$range] offset $range)"
    # A window holding one sample and no growth holds, on Prometheus 2, only the previous period's
    # edge sample: no row, as for a period without samples (a period with one unchanged sample
    # loses only a zero).
    only_edge = f"(count_over_time({counter}[$range]) == 1 and ({last} - {before}) == 0)"
    return f"((({last} - {before}) and {_plain(counter)}) unless {only_edge})"


def suspects(counters: Mapping[str, str]) -> str:
    """Every series and period that `steady()` leaves out (a drop, a process restart, or no value
    in the previous period), labelled `finops_measure` with the measure it feeds: one query for
    all counters."""
    parts = []
    for measure, counter in counters.items():
        flagged = f"(last_over_time({counter}[$range]) unless {_plain(counter)})"
        parts.append(f'label_replace({flagged}, "{MEASURE_LABEL}", "{measure}", "", "")')
    return " or ".join(parts)


# The label `suspects()` adds to name the measure a flagged series feeds.
MEASURE_LABEL = "finops_measure"
# Counter (METRICS key) behind each token measure, per token fact.
COUNTERS: dict[str, dict[str, str]] = {
    "vllm": {"prompt_tokens": "vllm_prompt", "generation_tokens": "vllm_generation", "requests": "vllm_requests",
             "cached_prompt_tokens": "vllm_cached", "prefill_ms": "vllm_prefill", "decode_ms": "vllm_decode"},
    "gateway": {"prompt_tokens": "gw_prompt", "generation_tokens": "gw_generation", "requests": "gw_requests"},
}
# Measures kept in a finer unit than their counter's: seconds counters are stored as whole ms.
SCALE: dict[str, int] = {"prefill_ms": 1000, "decode_ms": 1000}


def _token_queries(fact: Fact) -> tuple[Query, ...]:
    counters = {m: f"${key}" for m, key in COUNTERS[fact].items()}
    scaled = {m: f" * {SCALE[m]}" if m in SCALE else "" for m in counters}
    return (*(Query(fact, m, "sum by ($by) (" + steady(c) + ")" + scaled[m]) for m, c in counters.items()),
            Query(fact, "suspects", suspects(counters)))


QUERIES: tuple[Query, ...] = (
    # Per GPU (max over the copies a GPU shared by k pods is emitted as), per hour.
    Query("gpu", "busy",
          "max by ($gpu) (avg_over_time($prof_busy[$range]))"
          " or on ($uuid) (max by ($gpu) (avg_over_time($util[$range])) / 100)"),
    Query("gpu", "samples",
          "max by ($gpu) (count_over_time($prof_busy[$range]))"
          " or on ($uuid) max by ($gpu) (count_over_time($util[$range]))"),
    Query("gpu", "memory_used_mib", "max by ($gpu) (max_over_time($fb_used[$range]))"),
    Query("gpu", "energy_kwh", "max by ($gpu) (increase($energy[$range])) / 3.6e9"),
    # Every label set a GPU reported in the hour (host, model, workloads, dims): read in Python. The
    # value weighs a pod's part of a GPU shared by time-slicing: its GPU_UTIL summed over the hour's
    # samples (per pod with dcgm-exporter's virtual GPUs), else its profiling samples counted.
    Query("gpu_labels", "labels",
          "sum by ($by) (sum_over_time($util[$range]))"
          " or sum by ($by) (count_over_time($prof_busy[$range]))"),
    # Per model server, summed over `engine` (data parallel) and `finished_reason`; the gateway's
    # per-caller counters (requests of every status). Each with its suspects query.
    *_token_queries("vllm"),
    # The share of the hour's scrapes that found the server's engines asleep (a sleeping engine
    # holds its GPU, which still bills): per engine the asleep states add up, then the mean of engines.
    Query("vllm", "asleep_hours", "avg by ($by) (sum by ($by, engine) (avg_over_time($vllm_asleep[$range])))"),
    *_token_queries("gateway"),
    # Kubernetes (with `kubernetes` on): every pod's labels, node and the node's billed instance in
    # each hour, joined to the GPU and vLLM series in Python (`finops.sources.prometheus.kube`).
    Query("k8s", "pod_labels", "last_over_time($kube_pod_labels[$range])"),
    Query("k8s", "pod_nodes", "group by (namespace, exported_namespace, pod, exported_pod, node) "
          "(last_over_time($kube_pod_info[$range]))"),
    Query("k8s", "node_providers", "group by (node, provider_id) (last_over_time($kube_node_info[$range]))"),
)

# Which token facts each `token_source` setting queries.
TOKEN_FACTS: dict[str, tuple[Fact, ...]] = {
    "vllm": ("vllm",),
    "gateway": ("gateway",),
    "gateway_then_vllm": ("gateway", "vllm"),
}

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def label_list(*groups: Iterable[str]) -> str:
    """Labels of all groups, deduplicated in order, checked to be valid label names."""
    seen: dict[str, None] = {}
    for group in groups:
        for name in group:
            if not _LABEL_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid Prometheus label name")
            seen.setdefault(name, None)
    return ", ".join(seen)


def by_labels(fact: Fact, resource_labels: Iterable[str], dim_labels: Mapping[str, Iterable[str]]) -> str:
    """The `by (...)` list of a fact: its own label tables plus the configured resource and dim labels."""
    dims = [name for names in dim_labels.values() for name in names]
    if fact == "gpu":
        return label_list(GPU_ID_LABELS)
    if fact == "gpu_labels":
        workload = [n for names in WORKLOAD_LABELS.values() for n in names]
        info = [n for names in GPU_INFO_LABELS.values() for n in names]
        return label_list(GPU_ID_LABELS, HOST_LABELS, info, workload, resource_labels, dims)
    server = [n for names in SERVER_LABELS.values() for n in names]
    model = [MODEL_NAME_LABEL] if fact == "vllm" else []
    return label_list(server, model, resource_labels, dims)


def render(query: Query, step_seconds: int, resource_labels: Iterable[str],
           dim_labels: Mapping[str, Iterable[str]]) -> str:
    """The PromQL text of `query` for a step (= range) and the configured label mapping."""
    return Template(query.template).substitute(
        METRICS,
        range=f"{step_seconds}s",
        range2=f"{2 * step_seconds}s",
        by=by_labels(query.fact, resource_labels, dim_labels),
        gpu=label_list(GPU_ID_LABELS),
        uuid=label_list(UUID_LABELS),
    )
