"""`finops simulate ...`: run the vLLM and dcgm-exporter simulators, or drive load at a server."""

from __future__ import annotations

import json
import os
import socket
from typing import Annotated

import typer

app = typer.Typer(rich_markup_mode=None, help="CPU simulators of vLLM and dcgm-exporter, and a load generator.",
                  no_args_is_help=True)


@app.command("vllm")
def vllm_cmd(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    model: Annotated[str, typer.Option(help="model to pretend to serve")] = "Qwen/Qwen2.5-7B-Instruct-AWQ",
    served_model_name: Annotated[str | None, typer.Option(help="name clients and metrics use")] = None,
    max_model_len: Annotated[int, typer.Option(min=16)] = 8192,
    max_num_seqs: Annotated[int, typer.Option(min=1, help="requests running at once; more wait")] = 64,
    token_delay: Annotated[float, typer.Option(min=0.0, help="seconds per generated token")] = 0.002,
    seed: Annotated[int, typer.Option(help="seed of the generated text")] = 0,
    enable_prompt_tokens_details: Annotated[bool, typer.Option(
        help="report usage.prompt_tokens_details.cached_tokens, as vLLM's flag")] = False,
) -> None:
    """Serve an OpenAI-compatible API with vLLM's /metrics, generating deterministic text."""
    import uvicorn

    from finops.simulate.vllm import VllmSimConfig, create_app

    cfg = VllmSimConfig(model=model, served_model_name=served_model_name, seed=seed,
                        max_model_len=max_model_len, max_num_seqs=max_num_seqs, token_delay=token_delay,
                        enable_prompt_tokens_details=enable_prompt_tokens_details)
    uvicorn.run(create_app(cfg), host=host, port=port, log_level="warning")


def _bindings(values: list[str]) -> dict[int, str]:
    out: dict[int, str] = {}
    for v in values:
        index, sep, url = v.partition("=")
        if not sep or not index.strip().isdigit() or not url.startswith(("http://", "https://")):
            raise typer.BadParameter(f"{v!r}: expected INDEX=URL, e.g. 0=http://vllm:8000", param_hint="--bind")
        out[int(index)] = url.strip()
    return out


@app.command("dcgm")
def dcgm_cmd(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 9400,
    gpus: Annotated[int, typer.Option(min=1, max=64, help="number of simulated GPUs")] = 1,
    bind: Annotated[list[str] | None, typer.Option(
        help="INDEX=URL: GPU INDEX is busy while the vLLM server at URL has requests (repeatable)")] = None,
    hostname: Annotated[str | None, typer.Option(help="Hostname label (default $NODE_NAME or this host)")] = None,
    gpu_model: Annotated[str, typer.Option(help="modelName label")] = "NVIDIA H100 80GB HBM3",
    interval: Annotated[float, typer.Option(min=0.05, help="seconds between samples")] = 1.0,
    saturation: Annotated[float, typer.Option(min=0.1, help="requests in flight that make a GPU 100% busy")] = 4.0,
) -> None:
    """Serve dcgm-exporter metrics for simulated GPUs, busy while their bound vLLM server is."""
    import uvicorn

    from finops.simulate.dcgm import DcgmSimConfig, create_app, make_gpus

    name = hostname or os.environ.get("NODE_NAME") or socket.gethostname()
    try:
        specs = make_gpus(gpus, name, _bindings(bind or []), gpu_model)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--bind") from None
    cfg = DcgmSimConfig(hostname=name, gpus=specs, interval=interval, saturation=saturation)
    uvicorn.run(create_app(cfg), host=host, port=port, log_level="warning")


@app.command("load")
def load_cmd(
    url: Annotated[str, typer.Option(help="server root, e.g. http://127.0.0.1:8000")],
    pattern: Annotated[str, typer.Option(help="steady, bursty or idle-gaps")] = "steady",
    duration: Annotated[float, typer.Option(min=0.1, max=7 * 86400, help="seconds to start requests for")] = 10.0,
    concurrency: Annotated[int, typer.Option(min=1, max=1024)] = 4,
    max_requests: Annotated[int | None, typer.Option(min=1, help="stop after this many requests")] = None,
    max_tokens: Annotated[int, typer.Option(min=1)] = 32,
    model: Annotated[str | None, typer.Option(help="model id (default: the server's first)")] = None,
    period: Annotated[float, typer.Option(min=0.1, help="seconds per burst/gap cycle")] = 4.0,
    seed: Annotated[int, typer.Option()] = 0,
    shared_prefix: Annotated[int, typer.Option(min=0, max=4096,
                                               help="words of a system prompt every request starts with")] = 0,
) -> None:
    """Send requests for a bounded time and print the usage totals the server returned (JSON)."""
    import asyncio

    from finops.simulate.load import PATTERNS, run_load

    if pattern not in PATTERNS:
        raise typer.BadParameter(f"unknown pattern {pattern!r}; choose from {', '.join(PATTERNS)}",
                                 param_hint="--pattern")
    import httpx

    try:
        result = asyncio.run(run_load(url, pattern, duration, concurrency, model=model, max_tokens=max_tokens,
                                      max_requests=max_requests, period=period, seed=seed,
                                      shared_prefix=shared_prefix))
    except httpx.HTTPError as exc:
        typer.echo(f"cannot use {url}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(result.as_dict()))
    if result.requests == 0:
        raise typer.Exit(1)


@app.command("bill")
def bill_cmd(
    out: Annotated[str, typer.Option(help="the FOCUS CSV to write, e.g. in a drop folder")],
    resource_id: Annotated[str, typer.Option(help="the node's resource id (its telemetry's instance_id)")] =
        "local-gpu-node-1",
    hourly_cost: Annotated[str, typer.Option(help="cost of an hour of the node")] = "4.10",
    currency: Annotated[str, typer.Option(help="ISO 4217 code")] = "USD",
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE tag on every line (repeatable)")] = None,
    every: Annotated[float, typer.Option(min=0, help="rewrite every this many seconds; 0: once")] = 0,
) -> None:
    """Write a FOCUS bill for the simulated node: an hourly line from its first run to the current hour."""
    import time
    from decimal import Decimal, InvalidOperation
    from pathlib import Path

    from finops.simulate.bill import BillConfig, write_bill

    try:
        cost = Decimal(hourly_cost)
    except InvalidOperation:
        raise typer.BadParameter(f"{hourly_cost!r} is not a number", param_hint="--hourly-cost") from None
    tags = dict(t.partition("=")[::2] for t in tag or [])
    if any(not k for k in tags):
        raise typer.BadParameter("expected KEY=VALUE", param_hint="--tag")
    cfg = BillConfig(resource_id=resource_id, hourly_cost=cost, currency=currency, tags=tags)
    while True:
        lines = write_bill(Path(out), cfg)
        typer.echo(f"{out}: {lines} hourly lines", err=True)
        if not every:
            return
        time.sleep(every)
