"""Exact growth of the series-periods `promql.suspects` flags (a reset, a gap, a new series): their
raw samples are fetched and counted in Python (`exact.growth`).

A restart is a drop of the counter, or a change of the server's `process_start_time_seconds`
(which also catches a restart scraped above the old value). Queries: two per measure, group of
flagged series and run of flagged periods (`exact.raw_queries`), plus two per group of their scrape
targets and run for the process start times; none in a period without resets, gaps or new series,
and never one per series of the fleet.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from finops.sources.prometheus.exact import (
    LOOKBACK_SECONDS,
    LabelKey,
    RawQuery,
    growth,
    raw_queries,
    selector,
)
from finops.sources.prometheus.parse import MalformedResult, Series, parse_samples, parse_vector, series_key
from finops.sources.prometheus.promql import COUNTERS, MEASURE_LABEL, METRICS, PROCESS_LABELS, SCALE

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
    starts = _ProcessStarts(query, step_seconds)
    for measure, flagged in flagged_by_measure(suspects).items():
        if measure not in out:
            raise MalformedResult(f"suspects query named an unknown measure {measure!r}")
        counter = METRICS[COUNTERS[fact][measure]]
        for rq in raw_queries(counter, flagged, step_seconds):
            samples = parse_samples(query(rq.samples_expr, rq.last))
            before = parse_vector(query(rq.before_expr, rq.first - step_seconds))
            started, started_before = starts.of(rq)
            for key in rq.series:
                edges = [e * 1000 for e in flagged[key] if rq.first <= e <= rq.last]
                target = _target(key)
                counts = growth(samples.get(key, []), edges, step_seconds * 1000, before.get(key),
                                started.get(target), started_before.get(target), SCALE.get(measure, 1))
                out[measure].append(Series(dict(key), sorted((e // 1000, float(n)) for e, n in counts.items())))
    return out


Target = tuple[str | None, ...]


def _target(key: LabelKey) -> Target:
    labels = dict(key)
    return tuple(labels.get(name) for name in PROCESS_LABELS)


class _ProcessStarts:
    """The `process_start_time_seconds` samples of the flagged series' scrape targets, fetched once
    per group of targets and span (the measures of a server share them): per target, the start
    time at each scrape, and the last one before the span."""

    def __init__(self, query: InstantQuery, step_seconds: int) -> None:
        self.query, self.step = query, step_seconds
        self.cache: dict[tuple[str, int, int], tuple[dict[Target, dict[int, float]], dict[Target, float]]] = {}

    def of(self, rq: RawQuery) -> tuple[dict[Target, dict[int, float]], dict[Target, float]]:
        targets = {_target(k) for k in rq.series}
        wanted = [dict((n, v) for n, v in zip(PROCESS_LABELS, t, strict=True) if v is not None)
                  for t in sorted(targets, key=repr) if any(t)]
        if not wanted:
            return {}, {}
        sel = selector(METRICS["process_start"], wanted)
        cache_key = (sel, rq.first, rq.last)
        if cache_key not in self.cache:
            raw = parse_samples(self.query(f"{sel}[{rq.last - rq.first + self.step}s]", rq.last))
            last = parse_vector(self.query(f"last_over_time({sel}[{LOOKBACK_SECONDS}s])", rq.first - self.step))
            self.cache[cache_key] = (_unique({_target(k): dict(v) for k, v in raw.items()}, raw),
                                     _unique({_target(k): v for k, v in last.items()}, last))
        return self.cache[cache_key]


def _unique(by_target: dict[Target, Any], answer: dict[LabelKey, Any]) -> dict[Target, Any]:
    """`by_target` without the targets that have more than one series in `answer` (ambiguous)."""
    seen: dict[Target, int] = defaultdict(int)
    for k in answer:
        seen[_target(k)] += 1
    return {t: v for t, v in by_target.items() if seen[t] == 1}
