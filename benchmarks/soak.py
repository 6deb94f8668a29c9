"""Soak: the simulators, the metering gateway and the service under load for a bounded time.

Loopback only, bounded in time and requests. Each part runs under uvicorn in its own process, as
deployed: the vLLM simulator, the dcgm-exporter simulator bound to it, the metering gateway in front
of it, and the finops API over a database holding worked example A. While the load generator drives
chat and completion requests (streamed and not) through the gateway, a reader asks the API for
reports, sources and /metrics, and a scraper reads the simulators' and gateway's /metrics.

    .venv/bin/python benchmarks/soak.py [--seconds 60] [--concurrency 8] [--max-requests 20000] [--json PATH]

Reports, with their goals: errors (0) of the load, the API reader and the scrapes; memory growth of
each process after warm-up (flat: under 10 % and 32 MiB); lost tokens (0): tokens the clients were
told they used minus tokens the gateway and vLLM counted. Exit status 1 when a goal is missed.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # worked example A lives with the tests

GATEWAY_KEY = "sk-soak"
GROWTH_PCT, GROWTH_MIB = 10.0, 32.0
REPORTS = ("unit-economics", "idle-gpus", "untagged-spend", "weekly")


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _url(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _serve(app: Any, sock: socket.socket) -> None:
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, ws="none")).run(sockets=[sock])


def run_vllm(sock: socket.socket) -> None:
    from finops.simulate.vllm import VllmSimConfig, create_app

    _serve(create_app(VllmSimConfig(served_model_name="soak-model", token_delay=0.0005, max_num_seqs=256)), sock)


def run_dcgm(sock: socket.socket, vllm_url: str) -> None:
    from finops.simulate.dcgm import DcgmSimConfig, create_app, make_gpus

    cfg = DcgmSimConfig(hostname="soak-node", gpus=make_gpus(2, "soak-node", {0: vllm_url}), interval=0.5)
    _serve(create_app(cfg), sock)


def run_gateway(sock: socket.socket, vllm_url: str) -> None:
    from finops.gateway import CallerTags, GatewaySettings, create_app

    # The load generator sends no key: it is served as __untagged__, and metered all the same.
    cfg = GatewaySettings(upstream_url=vllm_url, keys={GATEWAY_KEY: CallerTags(project="soak", team="perf")},
                          unknown_callers="untagged")
    _serve(create_app(cfg), sock)


def run_api(sock: socket.socket, db: str) -> None:
    from finops.api import create_app
    from finops.settings import Settings

    _serve(create_app(Settings(db=Path(db))), sock)


def prepare_db(directory: Path) -> tuple[str, str]:
    """A database with worked example A and a viewer key; returns (path, key)."""
    from finops.settings import Settings
    from finops.store import open_store
    from finops.store.keys import create_key
    from finops.tags import TagRules
    from tests.support import example_a

    db = directory / "soak.duckdb"
    store = open_store(db)
    try:
        example_a.load(store, TagRules.from_settings(Settings()), directory)
        _, key = create_key(store, "finance", name="soak")
    finally:
        store.close()
    return str(db), key


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_ready(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{url} did not start")


def scrape(url: str) -> dict[str, float]:
    """Samples of a Prometheus text page, by name and labels."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url, timeout=5).text
    return {f"{s.name}{sorted(s.labels.items())}": s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: dict[str, float], name: str, **labels: str) -> int:
    """The sum of a counter's samples named `name` whose labels include `labels`."""
    out = 0.0
    for key, value in samples.items():
        if key.startswith(name + "[") and all(f"('{k}', '{v}')" in key for k, v in labels.items()):
            out += value
    return round(out)


class Loop(threading.Thread):
    """Calls `step` until stopped, counting calls and errors (an exception or a False result)."""

    def __init__(self, step: Callable[[], bool], pause: float):
        super().__init__(daemon=True)
        self.step, self.pause = step, pause
        self.calls = self.errors = 0
        self.last_error = ""
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.calls += 1
            try:
                if not self.step():
                    self.errors += 1
            except Exception as exc:  # every failure is a counted error, the loop goes on
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            self.stop.wait(self.pause)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="load duration (bounded: at most 3600)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-requests", type=int, default=20_000, help="stop the load after this many requests")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    seconds = min(max(args.seconds, 5.0), 3600.0)

    ctx = mp.get_context("spawn")
    tmp = Path(tempfile.mkdtemp(prefix="finops-soak-"))
    db, api_key = prepare_db(tmp)
    socks = {name: _listen() for name in ("vllm", "dcgm", "gateway", "api")}
    urls = {name: _url(s) for name, s in socks.items()}
    procs = {
        "vllm": ctx.Process(target=run_vllm, args=(socks["vllm"],)),
        "dcgm": ctx.Process(target=run_dcgm, args=(socks["dcgm"], urls["vllm"])),
        "gateway": ctx.Process(target=run_gateway, args=(socks["gateway"], urls["vllm"])),
        "api": ctx.Process(target=run_api, args=(socks["api"], db)),
    }
    for p in procs.values():
        p.start()
    try:
        deadline = time.monotonic() + 60
        for name, path in (("vllm", "/v1/models"), ("dcgm", "/metrics"), ("gateway", "/health"), ("api", "/healthz")):
            wait_ready(urls[name] + path, deadline)
        return soak(args, seconds, urls, procs, api_key)
    finally:
        for p in reversed(procs.values()):  # clients before the servers they read
            p.terminate()
            p.join(10)
            if p.is_alive():
                p.kill()


def soak(args: argparse.Namespace, seconds: float, urls: dict[str, str], procs: dict[str, Any],
         api_key: str) -> int:
    from finops.simulate.load import run_load

    api = httpx.Client(base_url=urls["api"], headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
    turn = [0]

    def read_api() -> bool:
        name = REPORTS[turn[0] % len(REPORTS)]
        turn[0] += 1
        ok = api.get(f"/v1/reports/{name}", params={"week": "2026-W45"}).status_code == 200
        return ok and api.get("/v1/sources").status_code == 200 and api.get("/metrics").status_code == 200

    def scrape_all() -> bool:
        return all(httpx.get(urls[n] + "/metrics", timeout=5).status_code == 200 for n in ("vllm", "dcgm", "gateway"))

    loops = {"api reader": Loop(read_api, 0.02), "scraper": Loop(scrape_all, 0.5)}
    memory: dict[str, list[tuple[float, float]]] = {n: [] for n in procs}
    stop_sampling = threading.Event()

    def sample() -> None:
        t0 = time.monotonic()
        while not stop_sampling.wait(1.0):
            for n, p in procs.items():
                memory[n].append((time.monotonic() - t0, rss_mib(p.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    for loop in loops.values():
        loop.start()
    sampler.start()
    started = time.monotonic()
    load = asyncio.run(run_load(urls["gateway"], "bursty", seconds, args.concurrency, max_tokens=args.max_tokens,
                                max_requests=args.max_requests, period=max(2.0, seconds / 10), seed=7))
    elapsed = time.monotonic() - started
    for loop in loops.values():
        loop.stop.set()
        loop.join(30)
    stop_sampling.set()
    sampler.join(5)
    api.close()
    time.sleep(0.5)  # the last requests' counters are written once their response is complete

    gw, vllm = scrape(urls["gateway"] + "/metrics"), scrape(urls["vllm"] + "/metrics")
    told = load.prompt_tokens + load.completion_tokens
    counted_gateway = total(gw, "finops_gateway_tokens_total")
    counted_vllm = total(vllm, "vllm:prompt_tokens_total") + total(vllm, "vllm:generation_tokens_total")
    growth: dict[str, dict[str, float]] = {}
    for n, series in memory.items():
        after_warmup = [m for t, m in series if t >= min(10.0, seconds / 5)] or [m for _, m in series]
        base, end = after_warmup[0], after_warmup[-1]
        growth[n] = {"baseline_mib": round(base, 1), "end_mib": round(end, 1), "peak_mib": round(max(after_warmup), 1),
                     "growth_mib": round(end - base, 1), "growth_pct": round(100 * (end - base) / base, 1)}
    error_counts = {"load": load.errors, **{n: loop.errors for n, loop in loops.items()}}
    calls = {n: loop.calls for n, loop in loops.items()}
    last_errors = {n: loop.last_error for n, loop in loops.items() if loop.last_error}
    figures: dict[str, Any] = {
        "seconds": round(elapsed, 1),
        "load": load.as_dict(),
        "errors": error_counts,
        "calls": calls,
        "last_errors": last_errors,
        "tokens": {"told_to_clients": told, "counted_by_gateway": counted_gateway, "counted_by_vllm": counted_vllm,
                   "lost_at_gateway": told - counted_gateway, "lost_at_vllm": told - counted_vllm},
        "memory": growth,
    }
    flat = all(g["growth_pct"] < GROWTH_PCT or g["growth_mib"] < GROWTH_MIB for g in growth.values())
    errors = sum(error_counts.values())
    lost = abs(told - counted_gateway) + abs(told - counted_vllm)
    goals = {"errors": errors == 0, "memory flat": flat, "lost tokens": lost == 0, "load ran": load.requests > 0}
    figures["goals"] = goals

    print(f"soak: {elapsed:.0f} s, {load.requests} requests ({load.requests / elapsed:.1f}/s), "
          f"{calls['api reader']} API reads, {calls['scraper']} scrapes")
    print(f"  errors       load {load.errors}, API reader {loops['api reader'].errors}, "
          f"scraper {loops['scraper'].errors}   goal 0 -> {'pass' if goals['errors'] else 'FAIL'}")
    print(f"  tokens       told {told}, gateway {counted_gateway}, vLLM {counted_vllm}, lost "
          f"{told - counted_gateway}/{told - counted_vllm}   goal 0 -> {'pass' if goals['lost tokens'] else 'FAIL'}")
    for n, g in growth.items():
        print(f"  memory {n:8} {g['baseline_mib']:7.1f} -> {g['end_mib']:7.1f} MiB ({g['growth_pct']:+.1f} %)")
    print(f"  memory flat (each under {GROWTH_PCT:g} % or {GROWTH_MIB:g} MiB) -> {'pass' if flat else 'FAIL'}")
    for n, e in last_errors.items():
        print(f"  last error of {n}: {e}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**figures, "cpus": os.cpu_count()}, indent=2) + "\n")
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
