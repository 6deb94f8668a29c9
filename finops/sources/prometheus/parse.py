"""Pure parsing of Prometheus range-query results and of the labels shared by GPU and token facts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from finops.resources import resource_key
from finops.sources.prometheus.promql import WORKLOAD_LABELS
from finops.tags import DIMS, TagRules

FACT_DIMS = DIMS  # the dim columns of gpu_hours / token_hours


@dataclass(frozen=True)
class Series:
    """One series of a matrix result: its labels and `(unix_seconds, value)` points."""

    labels: Mapping[str, str]
    points: list[tuple[int, float]]


MAX_TIME = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime can hold


class MalformedResult(ValueError):
    """A query_range result that is not a Prometheus matrix."""


def parse_matrix(result: Any) -> list[Series]:
    """The `data.result` list of a `query_range` answer as Series; values `"NaN"`/`"+Inf"` stay floats."""
    if not isinstance(result, list):
        raise MalformedResult("result is not a list")
    out = []
    for i, item in enumerate(result):
        if not isinstance(item, dict) or not isinstance(item.get("metric"), dict) \
                or not isinstance(item.get("values"), list):
            raise MalformedResult(f"series {i} has no metric/values (not a matrix)")
        try:
            points = [(int(float(ts)), float(v)) for ts, v in item["values"]]
        except (TypeError, ValueError, OverflowError):
            raise MalformedResult(f"series {i} has a point that is not [time, \"value\"]") from None
        if any(not 0 <= ts <= MAX_TIME for ts, _ in points):
            raise MalformedResult(f"series {i} has a point time outside the years 1970 to 9999")
        out.append(Series({str(k): str(v) for k, v in item["metric"].items()}, points))
    return out


def hour_start(ts: int, step_seconds: int) -> datetime:
    """The start of the period a point stamped `ts` describes (naive UTC)."""
    return datetime.fromtimestamp(ts - step_seconds, UTC).replace(tzinfo=None)


def quarantine_row(origin: str, reason: str, labels: Mapping[str, str], ts: int | None = None,
                   value: float | None = None) -> dict[str, Any]:
    """A quarantine entry for a series (or one point of it) that cannot become a fact row."""
    raw = {"labels": dict(labels), "time": ts, "value": None if value is None else repr(value)}
    return {"origin": origin, "line": None, "reason": reason, "raw": json.dumps(raw, sort_keys=True)}


def first_label(labels: Mapping[str, str], names: Iterable[str]) -> str | None:
    """The value of the first of `names` present (and non-empty) in `labels`."""
    for name in names:
        value = labels.get(name)
        if value:
            return value
    return None


@dataclass(frozen=True)
class LabelMap:
    """How metric labels become fact columns: dims (normalised like bill tags), resource, workload."""

    rules: TagRules
    dim_labels: Mapping[str, tuple[str, ...]]
    resource_labels: tuple[str, ...]
    exporter: re.Pattern[str]

    @classmethod
    def from_settings(cls, settings: Any) -> LabelMap:
        cfg = settings.prometheus
        return cls(
            rules=TagRules.from_settings(settings),
            dim_labels={d: tuple(cfg.dim_labels.get(d, [d])) for d in FACT_DIMS},
            resource_labels=tuple(cfg.resource_labels),
            exporter=re.compile(cfg.exporter_workload_pattern),
        )

    def dims(self, labels: Mapping[str, str]) -> dict[str, str | None]:
        """{dim: normalised value or None} from the configured labels; the first present label wins."""
        out: dict[str, str | None] = {}
        for dim, names in self.dim_labels.items():
            value = None
            for name in names:
                value = self.rules.value(labels.get(name))
                if value is not None:
                    break
            out[dim] = value
        return out

    def resource(self, labels: Mapping[str, str]) -> dict[str, str | None]:
        """`resource_id` as found in the first configured label present, and its lower-case key."""
        rid = first_label(labels, self.resource_labels)
        return {"resource_id": rid, "resource_key": resource_key(rid)}

    def workload(self, labels: Mapping[str, str]) -> dict[str, str | None]:
        """namespace/pod/container of the workload a GPU series is mapped to; all None when the
        labels name the exporter itself (a GPU allocated to no pod)."""
        found = {col: first_label(labels, names) for col, names in WORKLOAD_LABELS.items()}
        pod, container = found.get("pod"), found.get("container")
        exporter_container = bool(container and self.exporter.fullmatch(container))
        if (pod and self.exporter.fullmatch(pod)) or (exporter_container and not pod):
            return dict.fromkeys(WORKLOAD_LABELS)
        if exporter_container:  # a workload pod, but its container label came from the scrape target
            found["container"] = None
        return found


def series_key(labels: Mapping[str, str], drop: Iterable[str] = ("__name__",)) -> frozenset[tuple[str, str]]:
    """A series' identity for matching answers of different queries: its labels but `drop`."""
    dropped = set(drop)
    return frozenset((str(k), str(v)) for k, v in labels.items() if k not in dropped)


def parse_samples(result: Any) -> dict[frozenset[tuple[str, str]], list[tuple[int, float]]]:
    """Raw samples of an instant query of a range-vector selector: `(unix_ms, value)` per series."""
    out = {}
    for s in _items(result, "values"):
        try:
            out[series_key(s["metric"])] = [(round(float(ts) * 1000), float(v)) for ts, v in s["values"]]
        except (TypeError, ValueError, OverflowError):
            raise MalformedResult("a raw sample is not [time, \"value\"]") from None
    return out


def parse_vector(result: Any) -> dict[frozenset[tuple[str, str]], float]:
    """The value of each series of an instant vector answer."""
    out = {}
    for s in _items(result, "value"):
        try:
            out[series_key(s["metric"])] = float(s["value"][1])
        except (TypeError, ValueError, IndexError):
            raise MalformedResult("a vector sample is not [time, \"value\"]") from None
    return out


def _items(result: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(result, list) or not all(isinstance(i, dict) and isinstance(i.get("metric"), dict)
                                               and isinstance(i.get(field), list) for i in result):
        raise MalformedResult(f"result is not a list of series with metric and {field}")
    return result
