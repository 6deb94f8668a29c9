"""A small load generator for an OpenAI-compatible server (`finops simulate load`).

Workers send chat and completion requests, streaming and not, and add up the `usage` the server
returned (cached prompt tokens too, where the server reports `prompt_tokens_details`). With
`shared_prefix`, every prompt starts with the same words, like a common system prompt, so a server's
prefix cache has something to find. The run is bounded: no request starts after `duration` seconds or once `max_requests` have
started, and requests still in flight get at most `request_timeout` more seconds.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from finops.simulate.text import prompt_words


def _steady(t: float, concurrency: int, period: float) -> int:
    return concurrency


def _bursty(t: float, concurrency: int, period: float) -> int:
    # A quarter of each period at full concurrency over a low base load.
    return concurrency if t % period < period / 4 else max(1, concurrency // 4)


def _idle_gaps(t: float, concurrency: int, period: float) -> int:
    # Half of each period busy, half with no requests at all.
    return concurrency if t % period < period / 2 else 0


# Pattern name -> how many workers may have a request in flight at `t` seconds into the run.
PATTERNS: dict[str, Callable[[float, int, float], int]] = {
    "steady": _steady,
    "bursty": _bursty,
    "idle-gaps": _idle_gaps,
}

# Request kinds cycled through: (endpoint, streaming).
KINDS = (("chat", False), ("completions", True), ("chat", True), ("completions", False))


@dataclass
class LoadResult:
    """The usage the server reported, summed over the requests that completed."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    finish_reasons: Counter[str] = field(default_factory=Counter)
    elapsed_seconds: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, usage: dict[str, Any], reasons: list[str]) -> None:
        self.requests += 1
        self.prompt_tokens += int(usage["prompt_tokens"])
        self.completion_tokens += int(usage["completion_tokens"])
        self.cached_tokens += int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        self.finish_reasons.update(reasons)

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "total_tokens": self.total_tokens,
                "cached_tokens": self.cached_tokens,
                "finish_reasons": dict(self.finish_reasons), "elapsed_seconds": round(self.elapsed_seconds, 3)}


def request_body(kind: str, stream: bool, model: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "stream": stream}
    if kind == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def parse_stream(lines: list[str]) -> tuple[dict[str, Any] | None, list[str]]:
    """Usage and finish reasons from the `data:` lines of an SSE response."""
    usage, reasons = None, []
    for line in lines:
        if not line.startswith("data:") or line[5:].strip() == "[DONE]":
            continue
        chunk = json.loads(line[5:])
        usage = chunk.get("usage") or usage
        reasons += [c["finish_reason"] for c in chunk.get("choices", []) if c.get("finish_reason")]
    return usage, reasons


async def _one(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    if body["stream"]:
        async with client.stream("POST", path, json=body) as resp:
            resp.raise_for_status()
            usage, reasons = parse_stream([line async for line in resp.aiter_lines()])
    else:
        resp = await client.post(path, json=body)
        resp.raise_for_status()
        data = resp.json()
        usage, reasons = data.get("usage"), [c["finish_reason"] for c in data["choices"]]
    if not usage:
        raise ValueError(f"{path}: response carried no usage")
    return usage, reasons


async def _model(client: httpx.AsyncClient) -> str:
    resp = await client.get("/v1/models")
    resp.raise_for_status()
    return str(resp.json()["data"][0]["id"])


async def run_load(url: str, pattern: str = "steady", duration: float = 10.0, concurrency: int = 4, *,
                   model: str | None = None, max_tokens: int = 32, max_requests: int | None = None,
                   period: float = 4.0, seed: int = 0, request_timeout: float = 30.0,
                   shared_prefix: int = 0) -> LoadResult:
    """Drive load at `url` (the server root, e.g. `http://127.0.0.1:8000`) and return the usage received."""
    if pattern not in PATTERNS:
        raise ValueError(f"pattern {pattern!r} is unknown; choose from {', '.join(PATTERNS)}")
    if duration <= 0 or concurrency < 1 or max_tokens < 1 or period <= 0:
        raise ValueError("duration, period, concurrency and max_tokens must be positive")
    active, result, rng = PATTERNS[pattern], LoadResult(), random.Random(seed)
    started = 0
    prefix = prompt_words(random.Random(seed + 1), shared_prefix) + " " if shared_prefix else ""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=request_timeout, limits=limits) as client:
        name = model or await _model(client)
        t0 = time.monotonic()
        deadline = t0 + duration

        async def worker(i: int) -> None:
            nonlocal started
            while time.monotonic() < deadline and (max_requests is None or started < max_requests):
                if i >= active(time.monotonic() - t0, concurrency, period):
                    await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
                    continue
                kind, stream = KINDS[started % len(KINDS)]
                body = request_body(kind, stream, name, prefix + prompt_words(rng, rng.randint(8, 48)),
                                    max_tokens)
                started += 1
                path = "/v1/chat/completions" if kind == "chat" else "/v1/completions"
                try:
                    result.add(*await asyncio.wait_for(_one(client, path, body), request_timeout))
                except (httpx.HTTPError, ValueError, KeyError, TimeoutError):
                    result.errors += 1

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        result.elapsed_seconds = time.monotonic() - t0
    return result
