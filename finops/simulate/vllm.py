"""A CPU simulator of vLLM's OpenAI-compatible server (`finops simulate vllm`).

Serves `/v1/models`, `/v1/completions`, `/v1/chat/completions` (streaming and not), `/health`,
`/metrics` with vLLM's metric names, and sleep mode's `/sleep`, `/wake_up` and `/is_sleeping` (vLLM
serves them in its development mode; while asleep, generation answers 503). Output text is deterministic for a given server seed, request
seed and prompt; every generated token takes `token_delay` seconds so load shows in the gauges.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from finops.simulate import openai_api as oa
from finops.simulate.engine import Counted, Engine, EngineConfig
from finops.simulate.text import Plan, chat_prompt, plan_output, tokens

DEFAULT_MODEL = "Qwen/Qwen2.5-7B-Instruct-AWQ"


@dataclass(frozen=True)
class VllmSimConfig:
    """Command-line knobs of the simulator, named like vLLM's own flags."""

    model: str = DEFAULT_MODEL
    served_model_name: str | None = None
    seed: int = 0
    max_model_len: int = 8192
    max_num_seqs: int = 64
    token_delay: float = 0.002
    # As vLLM's flag: `usage.prompt_tokens_details.cached_tokens` in responses (else null).
    enable_prompt_tokens_details: bool = False

    @property
    def name(self) -> str:
        """The `model_name` label and the id clients address: the served name, else the model."""
        return self.served_model_name or self.model


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "BadRequestError") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


@dataclass(frozen=True)
class Job:
    """One engine request: its prompt tokens and planned output; `counted` is filled as it runs."""

    prompt: tuple[str, ...]
    plan: Plan
    counted: Counted

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt)


def _sse(payload: dict[str, Any] | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


def _joined(words: list[str] | tuple[str, ...]) -> str:
    return " ".join(words)


def create_app(cfg: VllmSimConfig) -> FastAPI:
    """A FastAPI app holding its own engine and metrics registry."""
    engine = Engine(EngineConfig(model_name=cfg.name, max_model_len=cfg.max_model_len,
                                 max_num_seqs=cfg.max_num_seqs, token_delay=cfg.token_delay))
    app = FastAPI(title="vLLM simulator", docs_url=None, redoc_url=None)
    app.state.engine = engine

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(oa.error_body(exc.message, exc.kind, exc.status), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # vLLM answers malformed requests with 400, not FastAPI's 422.
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse(oa.error_body("; ".join(parts), "BadRequestError", 400), status_code=400)

    def usage(jobs: list[Job], produced: int) -> dict[str, Any]:
        cached = sum(j.counted.cached_tokens for j in jobs) if cfg.enable_prompt_tokens_details else None
        return oa.usage(sum(j.prompt_tokens for j in jobs), produced, cached)

    def job(prompt: str, prompt_ids: tuple[str, ...], req: oa._Sampling, max_tokens: int | None) -> Job:
        prompt_tokens = len(prompt_ids)
        if engine.sleep_level:
            raise ApiError(503, "The engine is sleeping.", "ServiceUnavailableError")
        if req.model not in (None, cfg.name):
            raise ApiError(404, f"The model `{req.model}` does not exist.", "NotFoundError")
        if req.n != 1:
            raise ApiError(400, "n > 1 is not supported by the simulator")
        if req.stream_options is not None and not req.stream:
            raise ApiError(400, "Stream options can only be defined when `stream=True`.")
        if prompt_tokens == 0:
            raise ApiError(400, "The prompt cannot be empty")
        room = cfg.max_model_len - prompt_tokens
        if max_tokens is None and room > 0:
            max_tokens = room
        if max_tokens is None or max_tokens > room:
            raise ApiError(400, f"This model's maximum context length is {cfg.max_model_len} tokens. However, "
                           f"you requested {prompt_tokens + (max_tokens or 0)} tokens ({prompt_tokens} in the "
                           f"messages, {max_tokens or 0} in the completion). Please reduce the length of the "
                           "messages or completion.")
        plan = plan_output(prompt, server_seed=cfg.seed, request_seed=req.seed, max_tokens=max_tokens,
                           min_tokens=req.min_tokens, ignore_eos=req.ignore_eos, stop=req.stop_list())
        return Job(prompt_ids, plan, Counted())

    async def run(j: Job) -> list[str]:
        async with aclosing(engine.generate(j.prompt, j.plan, j.counted)) as gen:
            return [w async for w in gen]

    def include_usage(req: oa._Sampling) -> tuple[bool, bool]:
        opts = req.stream_options or oa.StreamOptions()
        return opts.include_usage, opts.include_usage and opts.continuous_usage_stats

    async def stream(jobs: list[Job], rid: str, obj: str, req: oa._Sampling,
                     chunk: Any) -> AsyncIterator[str]:
        """SSE for completions (`chunk` builds a choice) and chat; usage last when asked, then [DONE]."""
        final_usage, continuous = include_usage(req)
        produced = 0
        for index, j in enumerate(jobs):
            if obj == "chat.completion.chunk":
                yield _sse(oa.envelope(rid, "chat.completion.chunk", cfg.name,
                                       [oa.chat_delta({"role": "assistant", "content": ""}, None)]))
            n = len(j.plan.words)
            async with aclosing(engine.generate(j.prompt, j.plan, j.counted)) as gen:
                i = 0
                async for word in gen:
                    i += 1
                    produced += 1
                    extra = {"usage": usage(jobs, produced)} if continuous else {}
                    piece = word if i == 1 else f" {word}"
                    reason = j.plan.finish_reason if i == n else None
                    yield _sse(oa.envelope(rid, obj, cfg.name, [chunk(index, piece, reason)], **extra))
            if n == 0:
                yield _sse(oa.envelope(rid, obj, cfg.name, [chunk(index, "", j.plan.finish_reason)]))
        if final_usage:
            yield _sse(oa.envelope(rid, obj, cfg.name, [], usage=usage(jobs, produced)))
        yield _sse("[DONE]")

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(engine.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/sleep")
    async def sleep(level: int = 1) -> Response:
        if level not in (1, 2):
            raise ApiError(400, "level must be 1 or 2")
        engine.sleep(level)
        return Response(status_code=200)

    @app.post("/wake_up")
    async def wake_up() -> Response:
        engine.wake_up()
        return Response(status_code=200)

    @app.get("/is_sleeping")
    async def is_sleeping() -> dict[str, bool]:
        return {"is_sleeping": engine.sleep_level > 0}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{
            "id": cfg.name, "object": "model", "created": 0, "owned_by": "vllm", "root": cfg.model,
            "parent": None, "max_model_len": cfg.max_model_len}]}

    @app.post("/v1/completions", response_model=None)
    async def completions(req: oa.CompletionRequest) -> dict[str, Any] | StreamingResponse:
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if not prompts:
            raise ApiError(400, "The prompt cannot be empty")
        jobs = [job(p, tokens(p), req, req.max_tokens) for p in prompts]
        rid = oa.new_id("cmpl")
        if req.stream:
            return StreamingResponse(stream(jobs, rid, "text_completion", req, oa.completion_choice),
                                     media_type="text/event-stream")
        outputs = await asyncio.gather(*(run(j) for j in jobs))
        choices = [oa.completion_choice(i, _joined(words), j.plan.finish_reason)
                   for i, (j, words) in enumerate(zip(jobs, outputs, strict=True))]
        produced = sum(len(w) for w in outputs)
        return oa.envelope(rid, "text_completion", cfg.name, choices, system_fingerprint=None,
                           usage=usage(jobs, produced))

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(req: oa.ChatRequest) -> dict[str, Any] | StreamingResponse:
        contents = [m.text() for m in req.messages]
        rendered = "\n".join(f"{m.role}: {c}" for m, c in zip(req.messages, contents, strict=True))
        prompt = chat_prompt([(m.role, c) for m, c in zip(req.messages, contents, strict=True)])
        j = job(rendered, prompt, req, req.max_completion_tokens or req.max_tokens)
        rid = oa.new_id("chatcmpl")
        if req.stream:
            def delta(_: int, piece: str, reason: str | None) -> dict[str, Any]:
                return oa.chat_delta({"content": piece} if piece or reason is None else {}, reason)

            return StreamingResponse(stream([j], rid, "chat.completion.chunk", req, delta),
                                     media_type="text/event-stream")
        words = await run(j)
        return oa.envelope(rid, "chat.completion", cfg.name, [oa.chat_choice(_joined(words), j.plan.finish_reason)],
                           system_fingerprint=None, usage=usage([j], len(words)),
                           prompt_logprobs=None)

    return app
