"""Pure: per-GPU hourly measures and label sets from Prometheus into `gpu_hours` rows."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from finops.sources.prometheus.parse import (
    FACT_DIMS,
    LabelMap,
    Series,
    first_label,
    hour_start,
    quarantine_row,
)
from finops.sources.prometheus.promql import (
    GPU_INFO_LABELS,
    HOST_LABELS,
    MIG_ID_LABEL,
    UUID_LABELS,
    WORKLOAD_LABELS,
)

GPU_MEASURES = ("busy", "samples", "memory_used_mib", "energy_kwh")
# A mean of ratios can exceed 1 by float noise only; more than this is a broken exporter.
BUSY_SLACK = 1e-6

GPU_SCHEMA = pa.schema([
    ("hour_start", pa.timestamp("us")),
    ("host", pa.string()),
    ("resource_id", pa.string()),
    ("resource_key", pa.string()),
    ("gpu_uuid", pa.string()),
    ("gpu_index", pa.string()),
    ("gpu_model", pa.string()),
    ("mig_profile", pa.string()),
    ("mig_instance", pa.string()),
    ("namespace", pa.string()),
    ("pod", pa.string()),
    ("container", pa.string()),
    *[(d, pa.string()) for d in FACT_DIMS],
    ("busy", pa.float64()),
    ("samples", pa.int32()),
    ("memory_used_mib", pa.float64()),
    ("energy_kwh", pa.float64()),
    ("time_share", pa.float64()),
])

GpuKey = tuple[str, str]  # (UUID, GPU_I_ID or "")


def gpu_key(labels: Mapping[str, str]) -> GpuKey | None:
    uuid = first_label(labels, UUID_LABELS)
    if not uuid:
        return None
    return uuid, labels.get(MIG_ID_LABEL, "")


def _common(values: Sequence[str | None]) -> str | None:
    """The value all label sets agree on; None when absent or when they disagree."""
    distinct = {v for v in values if v is not None}
    return distinct.pop() if len(distinct) == 1 else None


def _joined(values: Sequence[str | None]) -> str | None:
    distinct = sorted({v for v in values if v})
    return ",".join(distinct) if distinct else None


def describe_gpu(label_sets: Sequence[Mapping[str, str]], lm: LabelMap) -> dict[str, str | None]:
    """Host, resource, model, MIG, workload and dims of one GPU-hour from every label set it had.

    Label sets that disagree (a pod's series relabelled within the hour) keep a dim only when all
    of them agree on it; workload columns list every value, comma-joined.
    """
    sets = sorted(label_sets, key=lambda labels: sorted(labels.items()))
    out: dict[str, str | None] = {"host": _first(sets, HOST_LABELS)}
    with_resource = [lm.resource(s) for s in sets]
    out.update(next((r for r in with_resource if r["resource_id"]), {"resource_id": None, "resource_key": None}))
    for col, names in GPU_INFO_LABELS.items():
        out[col] = _first(sets, names)
    found = [lm.workload(s) for s in sets]
    for col in WORKLOAD_LABELS:
        out[col] = _joined([w[col] for w in found])
    dims = [lm.dims(s) for s in sets]
    for dim in FACT_DIMS:
        out[dim] = _common([d[dim] for d in dims])
    return out


def _first(sets: Sequence[Mapping[str, str]], names: Sequence[str]) -> str | None:
    return next((v for v in (first_label(s, names) for s in sets) if v), None)


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


Weighted = tuple[Mapping[str, str], float]  # a label set and its pod's busy weight in the hour


def workloads(label_sets: Sequence[Weighted], lm: LabelMap) -> list[tuple[list[Mapping[str, str]], float | None]]:
    """The label sets of one GPU-hour, one group per workload, each with its share of the GPU.

    One workload (or none): one group of every label set, share None (the whole GPU). Several pods
    (a GPU shared by time-slicing): one group per pod, its share the pod's measured busy weight over
    the pods' total (`gpu_labels`: the sum of the pod series' GPU_UTIL samples, true per pod from
    dcgm-exporter 4.5.3-4.8.2 with `--kubernetes-virtual-gpus`; a copy of the whole GPU's value
    before, which splits by presence). Evenly when no pod was busy. The exporter's own label sets
    (no workload) go with no pod.
    """
    pods: dict[tuple[str | None, str | None], list[Weighted]] = {}
    for labels, weight in label_sets:
        w = lm.workload(labels)
        if w["pod"] is not None:
            pods.setdefault((w["namespace"], w["pod"]), []).append((labels, weight))
    if len(pods) < 2:
        return [([labels for labels, _ in label_sets], None)]
    weights = {k: sum(w for _, w in sets if math.isfinite(w) and w > 0) for k, sets in pods.items()}
    total = sum(weights.values())
    return [([labels for labels, _ in pods[k]], weights[k] / total if total > 0 else 1 / len(pods))
            for k in sorted(pods, key=lambda k: (k[0] or "", k[1] or ""))]


def gpu_rows(measures: Mapping[str, Sequence[Series]], label_sets: Sequence[Series], lm: LabelMap,
             step_seconds: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One row per GPU (UUID + MIG instance) and hour that has a busy fraction, or, for a GPU shared
    by time-slicing, one per workload with its `time_share` (`workloads`); rows it cannot use go to
    quarantine with the reason."""
    quarantine: list[dict[str, Any]] = []
    values: dict[tuple[int, GpuKey], dict[str, float]] = {}
    for measure, series in measures.items():
        for s in series:
            key = gpu_key(s.labels)
            if key is None:
                quarantine.append(quarantine_row(f"prometheus:gpu/{measure}", "GPU series without a UUID label",
                                                 s.labels))
                continue
            for ts, v in s.points:
                slot = values.setdefault((ts, key), {})
                slot[measure] = max(v, slot[measure]) if measure in slot else v
    seen: dict[tuple[int, GpuKey], list[Weighted]] = {}
    for s in label_sets:
        key = gpu_key(s.labels)
        if key is not None:
            for ts, v in s.points:
                seen.setdefault((ts, key), []).append((s.labels, v))

    rows = []
    for (ts, key), m in sorted(values.items()):
        busy = m.get("busy")
        if busy is None:
            continue  # memory or energy of a GPU that reported no busy metric: not a GPU-hour
        if not math.isfinite(busy) or busy < 0 or busy > 1 + BUSY_SLACK:
            quarantine.append(quarantine_row("prometheus:gpu/busy", f"busy fraction {busy!r} is outside 0..1",
                                             {UUID_LABELS[0]: key[0], MIG_ID_LABEL: key[1]}, ts, busy))
            continue
        samples = _finite(m.get("samples"))
        energy = _finite(m.get("energy_kwh"))
        for sets, share in workloads(seen.get((ts, key), []), lm):
            rows.append({
                "hour_start": hour_start(ts, step_seconds),
                "gpu_uuid": key[0],
                **describe_gpu(sets, lm),
                # The GPU's own busy fraction, samples and memory on each workload's row; its energy in
                # shares, so that the rows add up to the GPU's.
                "busy": min(busy, 1.0),
                "samples": round(samples) if samples is not None else 0,
                "memory_used_mib": _finite(m.get("memory_used_mib")),
                "energy_kwh": energy * share if energy is not None and share is not None else energy,
                "time_share": share,
            })
    return rows, quarantine


def gpu_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=GPU_SCHEMA)
