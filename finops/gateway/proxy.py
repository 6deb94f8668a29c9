"""One proxied request: forward it upstream, stream the answer back chunk by chunk, count what it cost.

A watcher task listens for the client's ``http.disconnect`` during the whole exchange; when the client
leaves, the exchange's task is cancelled, which closes the upstream connection, and that is how the
upstream learns of it (vLLM aborts the request on disconnect).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import anyio
import httpx
from starlette.types import Receive, Scope, Send

from finops.gateway.identity import Caller, Identifier
from finops.gateway.intake import Rejected, check_declared_length, read_body
from finops.gateway.labels import ModelLabels
from finops.gateway.metering import RequestPlan, StreamMeter, parse_response, plan_request
from finops.gateway.metrics import GatewayMetrics, Outcome
from finops.gateway.wire import error_body, response_headers, send_json, upstream_headers
from finops.settings.gateway import GatewaySettings
from finops.tags import UNTAGGED, TagRules

log = logging.getLogger(__name__)

CLIENT_CLOSED = 499  # nginx's convention for "the client went away before the answer was complete"


@dataclass
class Gateway:
    """What every exchange shares: settings, the upstream client, the caller identifier, the metrics."""

    settings: GatewaySettings
    client: httpx.AsyncClient
    identifier: Identifier
    metrics: GatewayMetrics
    rules: TagRules
    models: ModelLabels = field(init=False)
    _urls: dict[str, httpx.URL] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.settings
        self.models = ModelLabels(self.rules, s.max_model_labels, s.max_label_length)

    def url(self, path: str, query: bytes) -> httpx.URL:
        """The upstream URL for a path, joined to the base URL once per path (httpx's merge is costly)."""
        url = self._urls.get(path) if not query else None
        if url is None:
            base = self.client.base_url
            raw = base.raw_path.rstrip(b"/") + path.encode("latin-1") + (b"?" + query if query else b"")
            url = base.copy_with(raw_path=raw)
            if not query:
                self._urls[path] = url
        return url

    def upstream_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        return upstream_headers(scope["headers"], self.settings.upstream_api_key)


class _State:
    __slots__ = ("finished", "client_gone")

    def __init__(self) -> None:
        self.finished = False
        self.client_gone = False


class Exchange:
    """One request through the gateway; ``run`` returns when the answer is sent or the client left."""

    def __init__(self, gw: Gateway, caller: Caller, metered: bool, t0: float) -> None:
        self.gw, self.caller, self.metered, self.t0 = gw, caller, metered, t0
        self.state = _State()
        self.status = CLIENT_CLOSED
        self.model: str | None = None  # the served model, only ever from a 2xx answer
        self.prompt = self.generation = 0
        self.ttft: float | None = None
        self.bad_usage: str | None = None
        self.meter: StreamMeter | None = None  # the stream's, once one is relayed

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = self.gw.settings
        try:
            check_declared_length(scope["headers"], settings.max_body_bytes)
            body = await read_body(receive, settings.max_body_bytes)
            if body is None:
                self.state.client_gone = True
                self._record()
                return
            plan = plan_request(body, settings.stream_usage) if self.metered else RequestPlan(body)
        except Rejected as exc:
            return await self._reject(send, exc)
        method = scope["method"]
        # A plain asyncio task rather than an anyio task group: uvicorn always runs asyncio, and the
        # task group's machinery was a third of the gateway's CPU time per request.
        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.get_running_loop().create_task(self._watch(receive, task))
        try:
            await self._exchange(scope, send, method, plan)
        except Exception:
            self.status = 500  # a bug of ours; Starlette answers 500 if nothing was sent yet
            raise
        except asyncio.CancelledError:
            if not self.state.client_gone:
                raise  # not ours (server shutdown): let it propagate
            task.uncancel()  # ours: the client left, the exchange is over, end normally
        finally:
            self.state.finished = True
            watcher.cancel()
            self._record()

    async def _watch(self, receive: Receive, task: asyncio.Task[None]) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        # A client that leaves after the stream's [DONE] left with the whole answer: not a client
        # that gave up (the upstream's end of stream may simply not have reached us yet).
        if not self.state.finished and not (self.meter is not None and self.meter.done):
            self.state.client_gone = True
            task.cancel()

    async def _exchange(self, scope: Scope, send: Send, method: str, plan: RequestPlan) -> None:
        gw = self.gw
        url = gw.url(scope["path"], scope.get("query_string", b""))
        request = gw.client.build_request(method, url, headers=gw.upstream_headers(scope),
                                          content=plan.body if method != "GET" else None)
        resp: httpx.Response | None = None
        try:
            try:
                resp = await gw.client.send(request, stream=True)
                is_stream = resp.headers.get("content-type", "").startswith("text/event-stream")
                if resp.status_code >= 400 or not is_stream:
                    data = await resp.aread()
            except httpx.TimeoutException:
                return await self._fail(send, 504, "upstream timed out")
            except httpx.HTTPError:
                return await self._fail(send, 502, "upstream unreachable or failed")
            if resp.status_code >= 400 or not is_stream:
                return await self._whole(send, resp, data)
            await self._stream(send, resp, plan)
        finally:
            if resp is not None:
                # Closing an unfinished stream drops the upstream connection: the cancellation signal.
                with anyio.move_on_after(5, shield=True):
                    await resp.aclose()

    async def _reject(self, send: Send, exc: Rejected) -> None:
        self.status = exc.status
        self.state.finished = True
        self._record()  # before answering, so a scrape after the answer sees it
        # 413: close the connection rather than let the server read and discard the rest of the body.
        await send_json(send, exc.status, error_body(exc.message, "invalid_request_error", exc.status, exc.param),
                        close=exc.status == 413)

    async def _fail(self, send: Send, status: int, message: str) -> None:
        self.status = status
        self.state.finished = True
        await send_json(send, status, error_body(message, "gateway_error", status))

    async def _whole(self, send: Send, resp: httpx.Response, data: bytes) -> None:
        self.status = resp.status_code
        if self.metered and 200 <= resp.status_code < 300:
            self.model, self.prompt, self.generation, self.bad_usage = parse_response(data)
        headers = response_headers(resp)
        headers.append((b"content-length", str(len(data)).encode()))
        self.state.finished = True
        await send({"type": "http.response.start", "status": resp.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": data, "more_body": False})

    async def _stream(self, send: Send, resp: httpx.Response, plan: RequestPlan) -> None:
        meter = self.meter = StreamMeter(plan)
        try:
            await send({"type": "http.response.start", "status": resp.status_code,
                        "headers": response_headers(resp)})
            tail = b""
            status = resp.status_code
            try:
                async for raw in resp.aiter_bytes():
                    out = meter.feed(raw)
                    if self.ttft is None and meter.chunk_tokens:
                        self.ttft = time.perf_counter() - self.t0
                    if out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
                tail = meter.flush()
            except httpx.HTTPError as exc:
                # Headers are out: tell the client in-band, the way vLLM reports errors mid-stream.
                status = 504 if isinstance(exc, httpx.TimeoutException) else 502
                tail = meter.flush() + b"data: " + error_body("upstream stream interrupted", "gateway_error",
                                                              status) + b"\n\n"
            self.status = meter.error or status
            self.state.finished = True
            await send({"type": "http.response.body", "body": tail, "more_body": False})
        finally:
            self.model = meter.model
            self.prompt, self.generation = meter.tokens()
            self.bad_usage = meter.bad_usage
            if meter.final_usage is None and meter.done and self.metered and not (meter.error or self.bad_usage):
                log.warning("upstream stream ended without a usage chunk; generation counted by chunks")

    def _record(self) -> None:
        if self.state.client_gone:
            self.status = CLIENT_CLOSED
        # Tokens and the model are only ever set from a 2xx answer or a stream that began (then cut
        # short or ended by an in-band error); an upstream 4xx/5xx leaves them unset. Never the model
        # the request named: callers could otherwise mint one label value per request.
        model = self.gw.models.label(self.model)
        if self.bad_usage:
            log.warning("upstream usage not counted (model %s): %s", model, self.bad_usage)
        self.gw.metrics.record(Outcome(
            caller=self.caller,
            model_id=model,
            status=self.status,
            prompt_tokens=self.prompt,
            generation_tokens=self.generation,
            duration=time.perf_counter() - self.t0,
            ttft=self.ttft,
            metered=self.metered,
            bad_usage=self.bad_usage is not None,
        ))


async def proxy(gw: Gateway, scope: Scope, receive: Receive, send: Send, metered: bool) -> None:
    """Identify the caller (401 before anything goes upstream), then run the exchange."""
    t0 = time.perf_counter()
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    caller = gw.identifier.identify(headers)
    if caller is None:
        gw.metrics.record(Outcome(Caller(), UNTAGGED, 401, 0, 0, time.perf_counter() - t0))
        await send_json(send, 401, error_body("invalid or missing API key", "authentication_error", 401))
        return
    await Exchange(gw, caller, metered, t0).run(scope, receive, send)
