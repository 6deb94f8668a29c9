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

    A GPU shared by several pods has one label set per pod: the row lists the pods (comma-joined)
    and keeps a dim only when all of them agree on it.
    """
    sets = sorted(label_sets, key=lambda labels: sorted(labels.items()))
    out: dict[str, str | None] = {"host": _first(sets, HOST_LABELS)}
    with_resource = [lm.resource(s) for s in sets]
    out.update(next((r for r in with_resource if r["resource_id"]), {"resource_id": None, "resource_key": None}))
    for col, names in GPU_INFO_LABELS.items():
        out[col] = _first(sets, names)
    workloads = [lm.workload(s) for s in sets]
    for col in WORKLOAD_LABELS:
        out[col] = _joined([w[col] for w in workloads])
    dims = [lm.dims(s) for s in sets]
    for dim in FACT_DIMS:
        out[dim] = _common([d[dim] for d in dims])
    return out


def _first(sets: Sequence[Mapping[str, str]], names: Sequence[str]) -> str | None:
    return next((v for v in (first_label(s, names) for s in sets) if v), None)


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def gpu_rows(measures: Mapping[str, Sequence[Series]], label_sets: Sequence[Series], lm: LabelMap,
             step_seconds: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One row per GPU (UUID + MIG instance) and hour that has a busy fraction; rows it cannot use
    go to quarantine with the reason."""
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
    seen: dict[tuple[int, GpuKey], list[Mapping[str, str]]] = {}
    for s in label_sets:
        key = gpu_key(s.labels)
        if key is not None:
            for ts, _ in s.points:
                seen.setdefault((ts, key), []).append(s.labels)

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
        rows.append({
            "hour_start": hour_start(ts, step_seconds),
            "gpu_uuid": key[0],
            **describe_gpu(seen.get((ts, key), []), lm),
            "busy": min(busy, 1.0),
            "samples": round(samples) if samples is not None else 0,
            "memory_used_mib": _finite(m.get("memory_used_mib")),
            "energy_kwh": _finite(m.get("energy_kwh")),
        })
    return rows, quarantine


def gpu_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=GPU_SCHEMA)
