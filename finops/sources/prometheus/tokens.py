"""Pure: hourly token counter increases (vLLM or the metering gateway) into `token_hours` rows."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pyarrow as pa

from finops.sources.prometheus.parse import (
    FACT_DIMS,
    LabelMap,
    Series,
    first_label,
    hour_start,
    quarantine_row,
)
from finops.sources.prometheus.promql import SERVER_LABELS

TOKEN_MEASURES = ("prompt_tokens", "generation_tokens", "requests")
# vLLM V1's optional signals: None where a server does not expose the series (older vLLM, the
# gateway). Counts are whole numbers (tokens, milliseconds); `asleep_hours` is a share of the hour.
OPTIONAL_COUNTS = ("cached_prompt_tokens", "prefill_ms", "decode_ms")
SHARES = ("asleep_hours",)
ALL_MEASURES = (*TOKEN_MEASURES, *OPTIONAL_COUNTS, *SHARES)
# Where a model server is: the columns the gateway rows borrow from the vLLM server they displace.
LOCATION = ("instance", "namespace", "pod", "resource_id", "resource_key")
KEY_COLUMNS = ("hour_start", *LOCATION, "model_name", *FACT_DIMS)
TokenSource = Literal["vllm", "gateway", "gateway_then_vllm"]

TOKEN_SCHEMA = pa.schema([
    ("hour_start", pa.timestamp("us")),
    ("instance", pa.string()),
    ("resource_id", pa.string()),
    ("resource_key", pa.string()),
    ("namespace", pa.string()),
    ("pod", pa.string()),
    ("model_name", pa.string()),
    *[(d, pa.string()) for d in FACT_DIMS],
    ("prompt_tokens", pa.int64()),
    ("generation_tokens", pa.int64()),
    ("requests", pa.int64()),
    *[(m, pa.int64()) for m in OPTIONAL_COUNTS],
    *[(m, pa.float64()) for m in SHARES],
])


# Largest hourly increase taken as a count: floats are exact integers up to 2^53, and a
# broken exporter's absurd values would not fit the store's BIGINT anyway.
MAX_COUNT = float(2**53)


def count(value: float) -> int:
    """A token or request count from a query answer, which is a float: round half up."""
    return int(math.floor(value + 0.5))


def _problem(measure: str, v: float) -> str | None:
    """Why `v` cannot be a value of `measure`, or None."""
    if measure in SHARES:
        return None if 0 <= v <= 1 else f"{measure} {v!r} is not a share of an hour"
    return None if math.isfinite(v) and 0 <= v <= MAX_COUNT else f"{measure} increase {v!r} is not a count"


def _value(measure: str, vals: Mapping[str, float], exposed: set[str]) -> int | float | None:
    """The row's value of `measure`: a counter the server exposes (`exposed`) but that shows no growth
    in this hour grew by 0 (PromQL leaves out a period holding one unchanged sample); a counter the
    server does not expose, or a share without a sample in the hour, is unknown (None)."""
    if measure in TOKEN_MEASURES:
        return count(vals.get(measure, 0.0))
    if measure not in vals:
        return 0 if measure in OPTIONAL_COUNTS and measure in exposed else None
    return round(vals[measure], 6) if measure in SHARES else count(vals[measure])


def token_rows(measures: Mapping[str, Sequence[Series]], lm: LabelMap, step_seconds: int,
               model_labels: Sequence[str], origin: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One row per hour, model server (or gateway series) location, model and dims.

    `measures` maps each measure the source has to its series: the three of `TOKEN_MEASURES` are 0
    where no series shows them, the optional ones None.
    `model_labels` name the label holding the served model (`model_name` on vLLM); `model_id`
    falls back to it when no dim label carries one. Series that land on the same key are summed.
    """
    quarantine: list[dict[str, Any]] = []
    acc: dict[tuple[Any, ...], dict[str, float]] = {}
    exposed: dict[tuple[Any, ...], set[str]] = {}  # per server, model and dims: the measures it has series of
    for measure, series in measures.items():
        for s in series:
            model_name = first_label(s.labels, model_labels)
            dims = lm.dims(s.labels)
            if dims["model_id"] is None:
                dims["model_id"] = lm.rules.value(model_name)
            where = {col: first_label(s.labels, names) for col, names in SERVER_LABELS.items()}
            where.update(lm.resource(s.labels))
            fixed = (*(where[c] for c in LOCATION), model_name, *(dims[d] for d in FACT_DIMS))
            exposed.setdefault(fixed, set()).add(measure)
            for ts, v in s.points:
                problem = _problem(measure, v)
                if problem:
                    quarantine.append(quarantine_row(f"prometheus:{origin}/{measure}", problem, s.labels, ts, v))
                    continue
                slot = acc.setdefault((hour_start(ts, step_seconds), *fixed), {})
                slot[measure] = slot.get(measure, 0.0) + v
    rows = [dict(zip(KEY_COLUMNS, key, strict=True)) | {m: _value(m, vals, exposed[key[1:]]) for m in ALL_MEASURES}
            for key, vals in acc.items()]
    return rows, quarantine


def merge_token_sources(vllm: Sequence[dict[str, Any]], gateway: Sequence[dict[str, Any]],
                        mode: TokenSource) -> list[dict[str, Any]]:
    """Pick the token rows of the configured source; with `gateway_then_vllm`, gateway rows replace
    the vLLM rows of the same hour and model (`model_id`), so no token is counted twice.

    A gateway row takes the location (instance, pod, resource) of the vLLM server it displaces when
    exactly one server served that model in that hour; otherwise it keeps the gateway's own labels.
    """
    if mode == "vllm":
        return list(vllm)
    if mode == "gateway":
        return list(gateway)
    covered: dict[tuple[Any, Any], set[tuple[Any, ...]]] = {
        (g["hour_start"], g["model_id"]): set() for g in gateway
    }
    rows = []
    for r in vllm:
        servers = covered.get((r["hour_start"], r["model_id"]))
        if servers is None:
            rows.append(r)
        else:
            servers.add(tuple(r[c] for c in LOCATION))
    for g in gateway:
        servers = covered[(g["hour_start"], g["model_id"])]
        rows.append(g | dict(zip(LOCATION, next(iter(servers)), strict=True)) if len(servers) == 1 else g)
    return rows


def token_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=TOKEN_SCHEMA)
