"""Shared by the benchmark scripts: timing, peak memory, the result table and JSON output.

Every script prints one table (measure, ours, bound, ratio, goal, pass/fail) and writes the same
figures as JSON under benchmarks/out/ (git-ignored): `<script>-<UTC time>.json` and `<script>-latest.json`,
with the commit and the machine, so runs can be compared across commits.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
if str(ROOT) not in sys.path:  # run as `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(ROOT))


@dataclass
class Measure:
    """One row of a result table. `ratio` = ours / bound; `goal` is text, `ok` None when there is no goal."""

    name: str
    ours: float
    unit: str = "s"
    bound: float | None = None
    goal: str = ""
    ok: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return self.ours / self.bound if self.bound else None


def best_of(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """(median wall seconds over `repeat` runs, result of the last run)."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def paired(fns: list[Callable[[], Any]], repeat: int = 3) -> list[tuple[float, Any]]:
    """(median wall seconds, result of the last run) of each of `fns`, run in turn `repeat` times: a
    machine whose speed drifts during the run slows them alike, so their ratios hold."""
    times: list[list[float]] = [[] for _ in fns]
    results: list[Any] = [None] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            results[i] = fn()
            times[i].append(time.perf_counter() - t0)
    return [(statistics.median(t), r) for t, r in zip(times, results, strict=True)]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    if unit == "s":
        return f"{v:.3f} s" if v < 10 else f"{v:.1f} s"
    if abs(v) >= 1000:
        return f"{v:,.0f}{' ' + unit if unit else ''}"
    return f"{v:.3g}{' ' + unit if unit else ''}"


def print_table(title: str, measures: list[Measure]) -> None:
    rows = [("measure", "ours", "bound", "ratio", "goal", "pass/fail")]
    for m in measures:
        verdict = "-" if m.ok is None else ("PASS" if m.ok else "FAIL")
        rows.append((m.name, _fmt(m.ours, m.unit), _fmt(m.bound, m.unit),
                     "-" if m.ratio is None else f"{m.ratio:.2f}x", m.goal or "-", verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"\n{title}")
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for m in measures:
        if m.note:
            print(f"  note ({m.name}): {m.note}")


def machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {"commit": commit, "python": platform.python_version(), "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2), "platform": platform.platform()}


def write_json(script: str, config: dict[str, Any], measures: list[Measure]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    payload = {
        "script": script, "at": stamp, "machine": machine(), "config": config,
        "measures": [{**asdict(m), "ratio": m.ratio} for m in measures],
    }
    text = json.dumps(payload, indent=2, default=str)
    path = OUT / f"{script}-{stamp}.json"
    path.write_text(text)
    (OUT / f"{script}-latest.json").write_text(text)
    print(f"\nwrote {path.relative_to(ROOT)}")
    return path
