"""A minimal OpenAI-compatible upstream for the gateway's tests, speaking vLLM's wire format.

A raw ASGI app (run it under uvicorn with ``tests.support.uvicorn_server.serve``). It counts its own tokens
the way vLLM's counters do: prompt tokens when a request starts, generation tokens one by one as they
are produced, aborted requests included. Its "tokenizer" is whitespace: one word, one token.
Knobs: ``fail`` (answer every request with that status), ``token_delay`` (seconds per decode step, so a
disconnect can land mid-stream), ``break_after`` (drop the connection after that many tokens),
``echo_model`` (serve whatever model the request names, as a router or a LoRA server does),
``usage_patch`` (fields written over every ``usage`` object it sends, to send invalid counts).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.types import Receive, Scope, Send


def words(value: Any) -> int:
    """Tokens of a prompt value: words of a string, of text parts, or the length of a token-id list."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return len(value)
        return sum(words(v) for v in value)
    if isinstance(value, dict):
        return words(value.get("text") or value.get("content") or "")
    return 0


def prompt_tokens(path: str, body: dict[str, Any]) -> int:
    if path.endswith("/chat/completions"):
        return sum(words(m.get("content")) for m in body.get("messages", []))
    if path.endswith("/embeddings"):
        return words(body.get("input"))
    return words(body.get("prompt"))


@dataclass
class Call:
    """One request as the upstream saw it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int = 200
    prompt_tokens: int = 0
    generation_tokens: int = 0
    cancelled: bool = False
    answered: bool = False  # the last byte was handed to the server
    finished: bool = False


@dataclass
class FakeUpstream:
    served_model: str = "Tiny-LLM"
    token_delay: float = 0.0
    fail: tuple[int, str] | None = None
    break_after: int | None = None
    echo_model: bool = False
    usage_patch: dict[str, Any] | None = None
    default_max_tokens: int = 8
    linger_after_done: float = 0.0  # seconds between a stream's [DONE] and its end
    calls: list[Call] = field(default_factory=list)
    prompt_tokens_total: int = 0
    generation_tokens_total: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- counters, as vLLM keeps them ------------------------------------------------------------
    def _prefill(self, call: Call, n: int) -> None:
        with self._lock:
            call.prompt_tokens = n
            self.prompt_tokens_total += n

    def _decode(self, call: Call) -> None:
        with self._lock:
            call.generation_tokens += 1
            self.generation_tokens_total += 1

    def wait_finished(self, timeout: float = 5.0) -> None:
        """Block until every request the upstream saw has ended (answered, failed or cancelled)."""
        deadline = time.monotonic() + timeout
        while not all(c.finished for c in self.calls):
            if time.monotonic() > deadline:
                raise AssertionError("upstream requests still running")
            time.sleep(0.01)

    # -- ASGI ------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (msg := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        raw = b""
        while True:
            msg = await receive()
            raw += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        path = scope["path"]
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        if path == "/v1/models":
            return await _json(send, 200, {"object": "list", "data": [
                {"id": self.served_model, "object": "model", "owned_by": "fake"}]})
        body = json.loads(raw or b"{}")
        call = Call(path, headers, body)
        self.calls.append(call)
        try:
            await self._serve(call, receive, send)
        finally:
            call.finished = True

    async def _serve(self, call: Call, receive: Receive, send: Send) -> None:
        if self.fail is not None:
            call.status = self.fail[0]
            return await _json(send, self.fail[0], {"error": {
                "message": self.fail[1], "type": "BadRequestError", "param": None, "code": self.fail[0]}})
        self._prefill(call, prompt_tokens(call.path, call.body))
        # Like vLLM, abort the request as soon as the client disconnects.
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                if not call.answered:  # uvicorn also reports a disconnect once the answer is complete
                    call.cancelled = True
                    tg.cancel_scope.cancel()

            tg.start_soon(watch)
            if call.path.endswith("/embeddings"):
                await self._embeddings(call, send)
            elif call.body.get("stream"):
                await self._stream(call, send)
            else:
                await self._complete(call, send)
            tg.cancel_scope.cancel()

    def _plan(self, call: Call) -> tuple[int, int, bool]:
        b = call.body
        n = int(b.get("n") or 1)
        max_tokens = int(b.get("max_completion_tokens") or b.get("max_tokens") or self.default_max_tokens)
        return n, max_tokens, call.path.endswith("/chat/completions")

    def _usage(self, prompt: int, completion: int) -> dict[str, Any]:
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        return {**usage, **(self.usage_patch or {})}

    def _model(self, call: Call) -> Any:
        return call.body.get("model") if self.echo_model else self.served_model

    async def _complete(self, call: Call, send: Send) -> None:
        n, max_tokens, chat = self._plan(call)
        texts = [""] * n
        for step in range(max_tokens):
            await anyio.sleep(self.token_delay)
            for i in range(n):
                self._decode(call)
                texts[i] += f"w{step} "
        choices: list[dict[str, Any]] = [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "length"} if chat
            else {"index": i, "text": t, "finish_reason": "length"} for i, t in enumerate(texts)]
        call.answered = True
        await _json(send, 200, {
            "id": "cmpl-1", "object": "chat.completion" if chat else "text_completion", "created": 1,
            "model": self._model(call), "choices": choices,
            "usage": self._usage(call.prompt_tokens, call.generation_tokens)})

    async def _embeddings(self, call: Call, send: Send) -> None:
        inputs = call.body.get("input")
        items = inputs if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else [inputs]
        call.answered = True
        usage = {"prompt_tokens": call.prompt_tokens, "total_tokens": call.prompt_tokens, **(self.usage_patch or {})}
        await _json(send, 200, {
            "object": "list", "model": self._model(call),
            "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(items))],
            "usage": usage})

    async def _stream(self, call: Call, send: Send) -> None:
        n, max_tokens, chat = self._plan(call)
        opts = call.body.get("stream_options") or {}
        include_usage = opts.get("include_usage") is True
        continuous = include_usage and opts.get("continuous_usage_stats") is True
        per_choice = [0] * n
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8")]})

        async def event(choice: dict[str, Any], i: int) -> None:
            chunk: dict[str, Any] = {
                "id": "chatcmpl-1" if chat else "cmpl-1",
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": 1, "model": self._model(call), "choices": [choice]}
            if continuous:
                chunk["usage"] = self._usage(call.prompt_tokens, per_choice[i])
            await _sse(send, chunk)

        if chat:
            for i in range(n):
                await event({"index": i, "delta": {"role": "assistant", "content": ""},
                             "logprobs": None, "finish_reason": None}, i)
        for step in range(max_tokens):
            await anyio.sleep(self.token_delay)
            if self.break_after is not None and step >= self.break_after:
                return  # leaves the response incomplete: uvicorn drops the connection
            last = step == max_tokens - 1
            for i in range(n):
                self._decode(call)
                per_choice[i] += 1
                text = f"w{step} "
                finish = "length" if last else None
                await event({"index": i, "delta": {"content": text}, "logprobs": None, "finish_reason": finish}
                            if chat else {"index": i, "text": text, "logprobs": None, "finish_reason": finish}, i)
        if include_usage:
            await _sse(send, {"id": "x", "object": "chat.completion.chunk" if chat else "text_completion",
                              "created": 1, "model": self._model(call), "choices": [],
                              "usage": self._usage(call.prompt_tokens, call.generation_tokens)})
        call.answered = True
        if self.linger_after_done:
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True})
            await anyio.sleep(self.linger_after_done)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


async def _json(send: Send, status: int, obj: Any) -> None:
    body = json.dumps(obj).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _sse(send: Send, obj: Any) -> None:
    await send({"type": "http.response.body", "body": b"data: " + json.dumps(obj).encode() + b"\n\n",
                "more_body": True})
