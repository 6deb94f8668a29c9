"""Real processes for the simulator tests: `finops simulate ...` and `prometheus`, on 127.0.0.1.

Each runs as a child process on a free port, is polled until it answers, and is always stopped
(terminate, then kill) when its context exits.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

FINOPS = str(Path(sys.executable).with_name("finops"))
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_ok(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@dataclass(frozen=True)
class Service:
    """A command to run: `{port}` in `args` is replaced by `port`, else `--port P` is appended."""

    args: tuple[str, ...]
    ready_path: str
    log: Path
    port: int = field(default_factory=free_port)

    def argv(self) -> list[str]:
        argv = [a.format(port=self.port) for a in self.args]
        return argv if any("{port}" in a for a in self.args) else [*argv, "--port", str(self.port)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def services(*specs: Service) -> Iterator[list[str]]:
    """Start every service at once (their start-up overlaps), wait until each answers, yield their URLs."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for spec in specs:
            with spec.log.open("ab") as out:
                procs.append(subprocess.Popen(spec.argv(), stdout=out, stderr=subprocess.STDOUT))  # noqa: S603
        for spec, proc in zip(specs, procs, strict=True):
            wait_until_ok(spec.url + spec.ready_path, proc)
        yield [spec.url for spec in specs]
    finally:
        for proc in reversed(procs):
            stop(proc)


def sim(kind: str, *options: str, log: Path, port: int | None = None) -> Service:
    """`finops simulate KIND ...` on 127.0.0.1."""
    return Service((FINOPS, "simulate", kind, "--host", "127.0.0.1", *options), "/health", log,
                   port or free_port())


@contextmanager
def simulator(kind: str, *options: str, log: Path) -> Iterator[str]:
    """One simulator; yields its base URL."""
    with services(sim(kind, *options, log=log)) as (url,):
        yield url


def prometheus_config(targets: dict[str, tuple[str, dict[str, str]]], interval: str = "1s") -> str:
    """A scrape config: job name -> (host:port, target labels)."""
    lines = ["global:", f"  scrape_interval: {interval}", f"  evaluation_interval: {interval}", "scrape_configs:"]
    for job, (target, labels) in targets.items():
        lines += [f"  - job_name: {job}", "    static_configs:", f'      - targets: ["{target}"]']
        if labels:
            lines.append("        labels:")
            lines += [f'          {k}: "{v}"' for k, v in labels.items()]
    return "\n".join(lines) + "\n"


def prometheus(config: str, workdir: Path) -> Service:
    """A real Prometheus scraping per `config`, with its TSDB under `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "prometheus.yml").write_text(config, encoding="utf-8")
    return Service((PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'data'}", "--storage.tsdb.retention.time=1d",
                    "--web.listen-address=127.0.0.1:{port}"), "/-/ready", workdir / "prometheus.log")
