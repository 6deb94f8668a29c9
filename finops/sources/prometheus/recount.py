"""Exact growth of the series-periods `promql.suspects` flags (a reset, a gap, a new series): their
raw samples are fetched and counted in Python (`exact.growth`).

Queries: two per group of flagged series and run of flagged periods (`exact.raw_queries`), so
none in a period without resets or gaps, and never one per series of the fleet.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from finops.sources.prometheus.exact import LabelKey, growth, raw_queries
from finops.sources.prometheus.parse import MalformedResult, Series, parse_samples, parse_vector, series_key
from finops.sources.prometheus.promql import COUNTERS, MEASURE_LABEL, METRICS

# Runs one instant query: (PromQL, Unix seconds) -> the answer's `result` list.
InstantQuery = Callable[[str, int], list[dict[str, Any]]]


def flagged_by_measure(suspects: Sequence[Series]) -> dict[str, dict[LabelKey, set[int]]]:
    """The flagged edges (Unix seconds) of each series, per measure, from the suspects query."""
    out: dict[str, dict[LabelKey, set[int]]] = defaultdict(lambda: defaultdict(set))
    for s in suspects:
        measure = s.labels.get(MEASURE_LABEL)
        if measure is None:
            raise MalformedResult(f"a suspects series has no {MEASURE_LABEL} label")
        out[measure][series_key(s.labels, ("__name__", MEASURE_LABEL))].update(ts for ts, _ in s.points)
    return out


def recount(query: InstantQuery, fact: str, suspects: Sequence[Series], step_seconds: int) -> dict[str, list[Series]]:
    """Per measure of `fact`, one Series per flagged series: its exact growth at each flagged edge."""
    out: dict[str, list[Series]] = {m: [] for m in COUNTERS[fact]}
    for measure, flagged in flagged_by_measure(suspects).items():
        if measure not in out:
            raise MalformedResult(f"suspects query named an unknown measure {measure!r}")
        counter = METRICS[COUNTERS[fact][measure]]
        for rq in raw_queries(counter, flagged, step_seconds):
            samples = parse_samples(query(rq.samples_expr, rq.last))
            before = parse_vector(query(rq.before_expr, rq.first - step_seconds))
            for key in rq.series:
                edges = [e * 1000 for e in flagged[key] if rq.first <= e <= rq.last]
                counts = growth(samples.get(key, []), edges, step_seconds * 1000, before.get(key))
                out[measure].append(Series(dict(key), sorted((e // 1000, float(n)) for e, n in counts.items())))
    return out
