"""How much latency the metering gateway adds, measured against calling the upstream directly.

One run, loopback only, bounded in count and time. The fake OpenAI-compatible upstream of the tests
(answers at once, no GPU) and the gateway each run under uvicorn in their own process, as deployed;
one client alternates direct and gateway requests so both see the same machine state.

    .venv/bin/python benchmarks/gateway_latency.py [--requests 400] [--max-seconds 60] [--json PATH]

Prints a table (measure, ours = via the gateway, bound = direct to the upstream, ratio, goal,
pass/fail) and writes the figures as JSON. Goal: under 2 ms added at p50.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import socket
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fake upstream lives with the tests

KEY = "sk-bench"
GOAL_ADDED_MS = 2.0
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "say something short"}], "max_tokens": 16}


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _run_upstream(sock: socket.socket) -> None:
    import uvicorn

    from tests.gateway.upstream import FakeUpstream

    uvicorn.Server(uvicorn.Config(FakeUpstream(), log_level="warning", access_log=False, ws="none")).run(
        sockets=[sock])


def _run_gateway(sock: socket.socket, upstream_url: str) -> None:
    import uvicorn

    from finops.gateway import CallerTags, GatewaySettings, create_app

    settings = GatewaySettings(upstream_url=upstream_url, keys={KEY: CallerTags(project="bench", team="perf")})
    uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", access_log=False, ws="none")).run(
        sockets=[sock])


def _wait_ready(client: httpx.Client, url: str, deadline: float) -> None:
    while True:
        try:
            if client.get(url, headers={"authorization": f"Bearer {KEY}"}).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"server at {url} did not start")
        time.sleep(0.05)


def _whole(client: httpx.Client, base: str) -> float:
    t = time.perf_counter()
    r = client.post(base + "/v1/chat/completions", json=CHAT)
    r.raise_for_status()
    return time.perf_counter() - t


def _first_token(client: httpx.Client, base: str) -> tuple[float, float]:
    t = time.perf_counter()
    first = None
    with client.stream("POST", base + "/v1/chat/completions", json={**CHAT, "stream": True}) as r:
        for line in r.iter_lines():
            if first is None and '"content": "w' in line:
                first = time.perf_counter() - t
    return first or float("nan"), time.perf_counter() - t


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=400, help="pairs (direct + gateway) per measure")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--max-seconds", type=float, default=60.0, help="stop measuring after this long")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "gateway_latency.json")
    args = ap.parse_args(argv)

    up_sock, gw_sock = _listen(), _listen()
    up_url = f"http://127.0.0.1:{up_sock.getsockname()[1]}"
    gw_url = f"http://127.0.0.1:{gw_sock.getsockname()[1]}"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_run_upstream, args=(up_sock,), daemon=True),
             ctx.Process(target=_run_gateway, args=(gw_sock, up_url), daemon=True)]
    for p in procs:
        p.start()
    up_sock.close()
    gw_sock.close()
    # TCP_NODELAY on the client too, or small writes wait for delayed ACKs (~40 ms on Linux).
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    client = httpx.Client(transport=transport, headers={"authorization": f"Bearer {KEY}"}, timeout=10,
                          trust_env=False)
    try:
        deadline = time.monotonic() + 20
        _wait_ready(client, up_url + "/v1/models", deadline)
        _wait_ready(client, gw_url + "/health", deadline)
        for _ in range(args.warmup):
            _whole(client, up_url), _whole(client, gw_url)
            _first_token(client, up_url), _first_token(client, gw_url)

        samples: dict[str, dict[str, list[float]]] = {m: {"direct": [], "gateway": []}
                                                      for m in ("whole", "first_token", "stream_total")}
        cpu0 = [_cpu_seconds(p.pid) for p in procs]
        stop = time.monotonic() + args.max_seconds
        for i in range(args.requests):
            if time.monotonic() > stop:
                break
            # Alternate which goes first so neither side always gets the warmer caches.
            order = (("direct", up_url), ("gateway", gw_url))
            for side, base in order if i % 2 == 0 else order[::-1]:
                samples["whole"][side].append(_whole(client, base))
                ft, total = _first_token(client, base)
                samples["first_token"][side].append(ft)
                samples["stream_total"][side].append(total)
        cpu = [_cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0, strict=True)]
    finally:
        client.close()
        for p in procs:
            p.terminate()
            p.join(5)

    rows = []
    for measure, label in (("whole", "non-streamed request"), ("first_token", "stream, first token"),
                           ("stream_total", "stream, whole (16 tokens)")):
        for q, qname in ((0.5, "p50"), (0.99, "p99")):
            ours, bound = _pct(samples[measure]["gateway"], q), _pct(samples[measure]["direct"], q)
            added = ours - bound
            graded = qname == "p50" and measure != "stream_total"
            rows.append({
                "measure": f"{label} {qname} (ms)", "ours": round(ours, 3), "bound": round(bound, 3),
                "ratio": round(ours / bound, 3) if bound else None, "added_ms": round(added, 3),
                "goal": f"added < {GOAL_ADDED_MS:g} ms" if graded else "report",
                "pass": (added < GOAL_ADDED_MS) if graded else None,
            })
    n = len(samples["whole"]["direct"])
    # CPU per request, less sensitive to other load than wall-clock latency. Each pair sends a whole
    # request and a stream each way: the gateway serves 2, the upstream 4 (direct and via the gateway).
    up_cpu = cpu[0] / (4 * n) * 1000 if n else 0.0
    gw_cpu = cpu[1] / (2 * n) * 1000 if n else 0.0
    rows.append({"measure": "server CPU per request (ms)", "ours": round(gw_cpu, 3), "bound": round(up_cpu, 3),
                 "ratio": round(gw_cpu / up_cpu, 3) if up_cpu else None, "added_ms": round(gw_cpu, 3),
                 "goal": "report", "pass": None})
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    print(f"gateway added latency, {n} request pairs per measure, loopback, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} (other work on the machine inflates both sides and the gap)")
    print(f"{'measure':34} {'ours':>9} {'bound':>9} {'ratio':>7}  {'goal':17} pass/fail")
    for r in rows:
        verdict = "-" if r["pass"] is None else ("PASS" if r["pass"] else "FAIL")
        ratio = f"{r['ratio']:7.2f}" if r["ratio"] is not None else f"{'-':>7}"
        print(f"{r['measure']:34} {r['ours']:9.3f} {r['bound']:9.3f} {ratio}  {r['goal']:17} {verdict}"
              f"   (added {r['added_ms']:+.3f} ms)")
    result = {
        "benchmark": "gateway_latency", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "pairs": n, "ours": "via the gateway", "bound": "direct to the upstream",
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "load_average_1m": round(load[0], 2)},
        "rows": rows,
        "means_ms": {m: {side: round(statistics.fmean(v) * 1000, 3) for side, v in sides.items() if v}
                     for m, sides in samples.items()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0 if all(r["pass"] is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
