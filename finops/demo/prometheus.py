"""A real Prometheus over generated history: write series as OpenMetrics, backfill them with promtool,
serve them. Used by `finops demo` and by the tests (through tests/support/prometheus.py).

Typical use::

    series = [OMSeries("DCGM_FI_DEV_GPU_UTIL", {"UUID": "GPU-1"}, "gauge", [(t0, 42.0), (t0 + 60, 40.0)])]
    with PrometheusServer.from_series(tmp_dir, series) as prom:
        requests.get(f"{prom.url}/api/v1/query", params={"query": "up"})
        prom.stop()      # e.g. to simulate an outage mid-run
        prom.start()     # same data; same port unless it was taken meanwhile (re-read prom.url)

Building blocks, usable on their own: `write_openmetrics` (sorted, `# TYPE` lines, `# EOF`),
`backfill` (`promtool tsdb create-blocks-from openmetrics` of one file), `backfill_series` (one
file per 2-hour block: promtool 2.x re-reads its whole input once per block, so its time grows
with size x blocks; three days of the Prometheus tests' fleet took 8 s as one file, 3 s split),
`free_port`.

Timestamps are Unix seconds. Prometheus 2.x drops out-of-order samples silently, so
`write_openmetrics` sorts each series by time and rejects duplicate timestamps.
"""

from __future__ import annotations

import http.client
import math
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
# Retention counts back from the newest block, not from today: keep backfilled history forever.
RETENTION = "36500d"
BLOCK = 2 * 3600  # promtool's block length, aligned to multiples of it
CONFIG = "global:\n  scrape_interval: 1m\nscrape_configs: []\n"
# Parallel promtool runs: a run of a small block spends most of its ~0.2 s waiting, not computing,
# so more runs than cores finish sooner (84 blocks on 2 cores: 5.1 s with 2, 1.6 s with 8).
WORKERS = 4 * (os.cpu_count() or 2)


@dataclass
class OMSeries:
    """One time series: metric name (the exposed sample name, e.g. `vllm:prompt_tokens_total`),
    labels, OpenMetrics type and `(unix_seconds, value)` points."""

    name: str
    labels: dict[str, str]
    type: Literal["gauge", "counter", "unknown"] = "gauge"
    points: list[tuple[float, float]] = field(default_factory=list)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def _seconds(ts: float) -> str:
    return str(int(ts)) if float(ts).is_integer() else f"{ts:.3f}"


def _family(s: OMSeries) -> str:
    # OpenMetrics names a counter family without its `_total` suffix.
    if s.type == "counter" and s.name.endswith("_total"):
        return s.name[: -len("_total")]
    return s.name


def write_openmetrics(path: Path, series: Iterable[OMSeries], start: float | None = None,
                      end: float | None = None) -> Path:
    """Write `series` (their points in `[start, end)` when given) as OpenMetrics text that promtool
    backfills without losing a sample."""
    by_family: dict[str, list[OMSeries]] = {}
    for s in series:
        by_family.setdefault(_family(s), []).append(s)
    lo, hi = -math.inf if start is None else start, math.inf if end is None else end
    lines: list[str] = []
    for family in sorted(by_family):
        members = by_family[family]
        lines.append(f"# TYPE {family} {members[0].type}")
        for s in sorted(members, key=lambda m: sorted(m.labels.items())):
            pts = sorted(p for p in s.points if lo <= p[0] < hi)
            for (a, _), (b, _) in zip(pts, pts[1:], strict=False):
                if a == b:
                    raise ValueError(f"{s.name}{s.labels}: two samples at {a}")
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(s.labels.items()))
            head = f"{s.name}{{{labels}}}" if labels else s.name
            lines.extend(f"{head} {_number(v)} {_seconds(ts)}" for ts, v in pts)
    lines.append("# EOF")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def shifted(series: Iterable[OMSeries], seconds: float) -> list[OMSeries]:
    """Copies of `series` with every sample moved by `seconds`.

    Moved 1 ms earlier (`seconds=-0.001`), data served by Prometheus 2.x answers as Prometheus 3.x
    would answer the original: 2.x range selectors are closed, `[t - r, t]`, 3.x's are left-open,
    `(t - r, t]`, and a sample at `t - r` moved to `t - r - 0.001` falls out of the window as 3.x
    drops it, while a sample at `t` moved to `t - 0.001` stays in.
    """
    return [OMSeries(s.name, dict(s.labels), s.type, [(t + seconds, v) for t, v in s.points]) for s in series]


def backfill(openmetrics: Path, tsdb_dir: Path) -> None:
    """Turn an OpenMetrics file into TSDB blocks under `tsdb_dir` (promtool's 2-hour blocks)."""
    tsdb_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(  # noqa: S603 - fixed binary, paths from the caller
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(tsdb_dir)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"promtool backfill failed ({proc.returncode}): {proc.stderr[-2000:]}")


def backfill_series(series: Sequence[OMSeries], tsdb_dir: Path, workdir: Path) -> None:
    """Backfill `series` into `tsdb_dir`, one OpenMetrics file and promtool run per 2-hour block."""
    blocks: dict[int, list[OMSeries]] = {}
    for s in series:
        parts: dict[int, list[tuple[float, float]]] = {}
        for p in s.points:
            parts.setdefault(int(p[0] // BLOCK), []).append(p)
        for b, pts in parts.items():
            blocks.setdefault(b, []).append(OMSeries(s.name, s.labels, s.type, pts))
    files = [write_openmetrics(workdir / f"block-{b}.om", part) for b, part in sorted(blocks.items())]
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(lambda f: backfill(f, tsdb_dir), files))
    for f in files:
        f.unlink()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PortTaken(RuntimeError):
    """Prometheus could not bind its port."""


class PrometheusServer:
    """A `prometheus` process on 127.0.0.1 serving the TSDB in `tsdb_dir`.

    `start()` waits for `/-/ready`; `stop()` terminates it (safe to call twice); `start()` again
    serves the same data, on the same port unless another process took it meanwhile (then on a
    new one: read `url` after every start). Use as a context manager to always stop it.
    """

    def __init__(self, tsdb_dir: Path, port: int | None = None, ready_timeout: float = 60.0):
        self.tsdb_dir = Path(tsdb_dir)
        self._fixed_port = port is not None
        self.port = port or free_port()
        self.ready_timeout = ready_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = self.tsdb_dir.parent / f"prometheus-{self.port}.log"

    @classmethod
    def from_series(cls, workdir: Path, series: Sequence[OMSeries], port: int | None = None) -> PrometheusServer:
        """Write `series`, backfill them into `workdir/data` and return a server (not yet started)."""
        workdir.mkdir(parents=True, exist_ok=True)
        backfill_series(series, workdir / "data", workdir)
        return cls(workdir / "data", port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> PrometheusServer:
        if self.running:
            return self
        for attempt in range(3):
            try:
                self._launch()
                return self
            except PortTaken:
                # The free port was taken between our probe and Prometheus's bind (parallel tests).
                if self._fixed_port or attempt == 2:
                    raise
                self.port = free_port()
        return self

    def _launch(self) -> None:
        config = self.tsdb_dir.parent / "prometheus.yml"
        config.write_text(CONFIG, encoding="utf-8")
        log_start = self._log.stat().st_size if self._log.exists() else 0
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
                [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={self.tsdb_dir}",
                 f"--storage.tsdb.retention.time={RETENTION}", f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        self._wait_ready(log_start)

    def _log_tail(self, start: int) -> str:
        with self._log.open("rb") as fh:
            fh.seek(start)
            return fh.read().decode("utf-8", "replace")[-1500:]

    def _wait_ready(self, log_start: int) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if not self.running:
                tail = self._log_tail(log_start)
                if "address already in use" in tail:
                    raise PortTaken(tail)
                raise RuntimeError(f"prometheus exited early ({self._log}):\n{tail}")
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            try:
                conn.request("GET", "/-/ready")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"prometheus not ready after {self.ready_timeout}s ({self._log}):\n"
                           f"{self._log_tail(log_start)}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
