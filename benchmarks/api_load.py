"""Latency and throughput of the HTTP API for the cached weekly report under concurrent clients.

One run, loopback only, bounded in count and time. The API runs under uvicorn in its own process
on a DuckDB file holding worked example A repeated over one ISO week. httpx sets up and checks
(first answer fills the cache; every later body must equal it); the load itself comes from
`--clients` coroutines in this process, each on its own keep-alive connection, each sending its
next request as soon as the last is answered. `--client raw` (default) speaks minimal HTTP/1.1 on
asyncio streams, `--client httpx` uses httpx.AsyncClient: on a 2-core machine httpx's own CPU per
request is a large part of what would be measured (the table shows client and server CPU).

    .venv/bin/python benchmarks/api_load.py [--clients 50] [--requests 5000] [--max-seconds 60]
                                            [--client raw|httpx] [--json PATH]

Prints a table (measure, ours, goal, pass/fail) and writes the figures as JSON.
Goal: p99 under 100 ms at 50 concurrent clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import socket
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # worked example A lives with the tests

WEEK = "2026-W45"
PATH = f"/v1/reports/weekly?week={WEEK}"
GOAL_P99_MS = 100.0


def _prepare(db: Path) -> str:
    """A database with example A on each day of the week, and a finance key (returned)."""
    from finops.settings import Settings
    from finops.store import open_store
    from finops.store.keys import create_key
    from finops.tags import TagRules
    from tests.support.example_a import DAY, load

    settings = Settings(db=db)
    store = open_store(db)
    try:
        for i in range(7):
            load(store, TagRules.from_settings(settings), db.parent, DAY + timedelta(days=i))
        return create_key(store, "finance", name="bench")[1]
    finally:
        store.close()


def _serve(sock: socket.socket, db: Path) -> None:
    import uvicorn

    from finops.api import create_app
    from finops.settings import Settings

    app = create_app(Settings(db=db))
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, ws="none")).run(sockets=[sock])


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000.0 if ordered else float("nan")


async def _raw_worker(host: str, port: int, request: bytes, expected: bytes, stop: float,
                      budget: list[int], latencies: list[float], failures: list[int]) -> None:
    """One keep-alive connection sending `request` again as soon as each answer is read.

    HTTP/1.1 by hand (status line, headers, Content-Length body): a general-purpose client costs
    a millisecond or more of CPU per request, which on a small machine would measure the client.
    """
    reader, writer = await asyncio.open_connection(host, port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while budget[0] > 0 and time.monotonic() < stop:
            budget[0] -= 1
            t = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - t)
            if not head.startswith(b"HTTP/1.1 200") or body != expected:
                failures[0] += 1
    finally:
        writer.close()


async def _httpx_worker(client: httpx.AsyncClient, expected: bytes, stop: float, budget: list[int],
                        latencies: list[float], failures: list[int]) -> None:
    while budget[0] > 0 and time.monotonic() < stop:
        budget[0] -= 1
        t = time.perf_counter()
        try:
            r = await client.get(PATH)
            ok = r.status_code == 200 and r.content == expected
        except httpx.HTTPError as exc:
            print(f"request failed: {exc!r}", file=sys.stderr)
            ok = False
        latencies.append(time.perf_counter() - t)
        failures[0] += not ok


async def _load(url: str, key: str, clients: int, requests: int, max_seconds: float,
                kind: str) -> tuple[list[float], int, float]:
    # TCP_NODELAY on the client too, or small writes wait for delayed ACKs (~40 ms on Linux).
    transport = httpx.AsyncHTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                                         limits=httpx.Limits(max_connections=clients,
                                                             max_keepalive_connections=clients))
    latencies: list[float] = []
    failures, budget = [0], [requests]
    async with httpx.AsyncClient(base_url=url, transport=transport, timeout=30, trust_env=False,
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        first = await client.get(PATH)  # fills the cache: what is measured is the cached answer
        first.raise_for_status()
        expected = first.content
        stop = time.monotonic() + max_seconds
        start = time.perf_counter()
        if kind == "httpx":
            await asyncio.gather(*(client.get("/healthz") for _ in range(clients)))  # open the connections
            start = time.perf_counter()
            await asyncio.gather(*(_httpx_worker(client, expected, stop, budget, latencies, failures)
                                   for _ in range(clients)))
        else:
            parsed = httpx.URL(url)
            request = (f"GET {PATH} HTTP/1.1\r\nHost: {parsed.host}:{parsed.port}\r\n"
                       f"Authorization: Bearer {key}\r\n\r\n").encode()
            await asyncio.gather(*(_raw_worker(parsed.host, parsed.port or 80, request, expected, stop, budget,
                                               latencies, failures) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return latencies, failures[0], elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=5000, help="requests in all, at most")
    ap.add_argument("--max-seconds", type=float, default=60.0, help="stop measuring after this long")
    ap.add_argument("--client", choices=("raw", "httpx"), default="raw",
                    help="raw: minimal HTTP/1.1 on asyncio streams (default); httpx: httpx.AsyncClient")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "api_load.json")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="finops-api-load-") as tmp:
        db = Path(tmp) / "finops.duckdb"
        key = _prepare(db)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        proc = mp.get_context("fork").Process(target=_serve, args=(sock, db), daemon=True)
        proc.start()
        sock.close()
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(url + "/readyz", timeout=2, trust_env=False).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the API did not start")
                time.sleep(0.05)
            cpu0 = _cpu_seconds(proc.pid)
            client0 = os.times()
            latencies, errors, elapsed = asyncio.run(_load(url, key, args.clients, args.requests, args.max_seconds,
                                                           args.client))
            client_cpu = sum(os.times()[:2]) - sum(client0[:2])
            cpu = _cpu_seconds(proc.pid) - cpu0
        finally:
            proc.terminate()
            proc.join(10)

    n = len(latencies)
    p50, p99 = _pct(latencies, 0.5), _pct(latencies, 0.99)
    rows: list[dict[str, Any]] = [
        {"measure": "p50 latency (ms)", "ours": round(p50, 2), "goal": "report", "pass": None},
        {"measure": "p99 latency (ms)", "ours": round(p99, 2), "goal": f"< {GOAL_P99_MS:g} ms", "pass": p99 < GOAL_P99_MS},
        {"measure": "max latency (ms)", "ours": round(max(latencies) * 1000, 2) if n else None, "goal": "report",
         "pass": None},
        {"measure": "throughput (requests/s)", "ours": round(n / elapsed, 1) if elapsed else None, "goal": "report",
         "pass": None},
        {"measure": "server CPU per request (ms)", "ours": round(cpu / n * 1000, 3) if n else None, "goal": "report",
         "pass": None},
        {"measure": "client CPU per request (ms)", "ours": round(client_cpu / n * 1000, 3) if n else None,
         "goal": "report", "pass": None},
        {"measure": "errors or wrong bodies", "ours": errors, "goal": "0", "pass": errors == 0},
    ]
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    print(f"GET {PATH} (cached), {args.clients} concurrent {args.client} clients, {n} requests in {elapsed:.1f} s, loopback, "
          f"{os.cpu_count()} CPUs, load average {load[0]:.2f} (the load generator shares the machine)")
    print(f"{'measure':30} {'ours':>10}  {'goal':10} pass/fail")
    for r in rows:
        verdict = "-" if r["pass"] is None else ("PASS" if r["pass"] else "FAIL")
        print(f"{r['measure']:30} {r['ours']!s:>10}  {r['goal']:10} {verdict}")
    result = {
        "benchmark": "api_load", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "request": f"GET {PATH}", "client": args.client, "clients": args.clients, "requests": n, "seconds": round(elapsed, 3),
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "load_average_1m": round(load[0], 2)},
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0 if all(r["pass"] is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
