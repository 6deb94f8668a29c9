"""Pure: a counter's exact growth per period from its raw samples, and the raw queries that fetch them.

The truth (docs/definitions.md, tokens): a counter's growth is the sum of its sample-to-sample
increases; a drop means the counter restarted from 0, so the new value counts whole; each increase
belongs to the period `(e - step, e]` of its later sample, `e` a period edge (a multiple of the
step since the epoch, as `plan_chunks` aligns them). A series' first sample has no increase: it is
the baseline (a series seen for the first time, or again after more than `LOOKBACK_SECONDS`).

Most series-periods are counted in PromQL (`promql.steady`); `growth` counts the rest, the periods
`promql.suspects` flags, from samples fetched by `raw_queries`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# How far back the value before a flagged period's first sample is looked for: a gap longer than
# this (an outage of over a week) makes the next sample a baseline, as for a new series.
LOOKBACK_SECONDS = 7 * 24 * 3600
# Bounds of one raw query: the periods it spans (so the samples it returns) and its selector's
# length (it travels in a GET URL).
MAX_RUN_PERIODS = 24
MAX_SELECTOR_CHARS = 2000

LabelKey = frozenset[tuple[str, str]]


def growth(samples: Sequence[tuple[int, float]], edges: Iterable[int], step_ms: int,
           before: float | None = None, starts: Mapping[int, float] | None = None,
           start_before: float | None = None, scale: int = 1) -> dict[int, int]:
    """Growth of one counter in each period ending at an edge of `edges` (Unix ms) that holds an
    increase: a period without samples, or holding only the baseline, has no entry.

    `samples` are `(unix_ms, value)` in time order; `before` is the value of the sample preceding
    them, None when there is none. `starts` maps a sample's time to its server's process start time
    scraped with it (`start_before` for `before`): where it changed between two samples, the server
    restarted between them and the later value counts whole even if it is not a drop. Values times
    `scale` are counts (integers: tokens, or the milliseconds of a seconds counter at 1000); a
    fractional one is rounded half up, so the sums are exact integers; a NaN or infinite sample is
    skipped.
    """
    wanted = set(edges)
    starts = starts or {}
    out: dict[int, int] = {}
    prev = None if before is None else _count(before * scale)
    prev_start = start_before
    for t, raw in samples:
        if not math.isfinite(raw):
            continue  # not a count: as if not scraped
        v = _count(raw * scale)
        start = starts.get(t)
        restarted = start is not None and prev_start is not None and start != prev_start
        edge = -(-t // step_ms) * step_ms  # the period (edge - step, edge] holding t
        if prev is not None and edge in wanted:
            # A drop, or a new process: restarted from 0.
            out[edge] = out.get(edge, 0) + (v if restarted or v < prev else v - prev)
        prev, prev_start = v, start
    return out


def _count(value: float) -> int:
    return int(math.floor(value + 0.5))


def runs(edges: Iterable[int], step_seconds: int, max_periods: int = MAX_RUN_PERIODS) -> list[tuple[int, int]]:
    """Flagged edges (Unix seconds) grouped into `(first, last)` spans of at most `max_periods` periods."""
    out: list[tuple[int, int]] = []
    for e in sorted(set(edges)):
        if out and e - out[-1][0] < max_periods * step_seconds:
            out[-1] = (out[-1][0], e)
        else:
            out.append((e, e))
    return out


_REGEX_SPECIAL = set("\\.+*?()|[]{}^$")


def _regex_literal(value: str) -> str:
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in value)


def _promql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def selector(counter: str, series: Sequence[Mapping[str, str]]) -> str:
    """`counter` (a metric name with optional `{matchers}`) narrowed to a superset of `series`: one
    regex matcher per label, matching the values the series hold (and absence, as `""`)."""
    names = sorted({n for s in series for n in s})
    matchers = []
    for name in names:
        values = sorted({s.get(name, "") for s in series})
        matchers.append(f"{name}=~{_promql_string('|'.join(map(_regex_literal, values)))}")
    inner = ", ".join(matchers)
    if counter.endswith("}"):
        head = counter[:-1].rstrip()
        return f"{head}{'' if head.endswith('{') else ', '}{inner}}}"
    return f"{counter}{{{inner}}}"


def groups(counter: str, series: Sequence[Mapping[str, str]],
           max_chars: int = MAX_SELECTOR_CHARS) -> list[list[Mapping[str, str]]]:
    """`series` split into groups whose `selector` stays within `max_chars` (a lone series always
    makes a group)."""
    out: list[list[Mapping[str, str]]] = []
    for s in sorted(series, key=lambda m: sorted(m.items())):
        if out and len(selector(counter, [*out[-1], s])) <= max_chars:
            out[-1].append(s)
        else:
            out.append([s])
    return out


@dataclass(frozen=True)
class RawQuery:
    """Two instant queries for a group of series over flagged edges `first`..`last`: their samples
    in `(first - step, last]` and, at `first - step`, the value of the sample before those."""

    samples_expr: str  # evaluated at `last`
    before_expr: str  # evaluated at `first - step`
    first: int
    last: int
    series: tuple[LabelKey, ...]


def raw_queries(counter: str, flagged: Mapping[LabelKey, set[int]], step_seconds: int) -> list[RawQuery]:
    """The raw queries that fetch every flagged (series, edge) of one counter; `flagged` maps a
    series' labels (without `__name__`) to its flagged edges (Unix seconds)."""
    out = []
    for first, last in runs((e for edges in flagged.values() for e in edges), step_seconds):
        members = [dict(k) for k, edges in flagged.items() if any(first <= e <= last for e in edges)]
        for group in groups(counter, members):
            sel = selector(counter, group)
            out.append(RawQuery(
                samples_expr=f"{sel}[{last - first + step_seconds}s]",
                before_expr=f"last_over_time({sel}[{LOOKBACK_SECONDS}s])",
                first=first, last=last,
                series=tuple(frozenset(g.items()) for g in group),
            ))
    return out
