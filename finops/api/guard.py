"""`BodyGuard`: a request's key is checked before its body is read, and a body is bounded.

FastAPI reads and parses a route's body before it resolves the route's dependencies, so the key
check of `finops.api.auth` would come after a client without a key had made the server buffer
whatever it sent. This ASGI middleware runs first, for every request that carries a body
(`Content-Length` above 0, or `Transfer-Encoding`):

1. the `Authorization` key is checked, as the dependency does (401 without a valid key, 429 while
   the address is over its failed-authentication limit), before one byte of the body is read;
2. a `Content-Length` above `max_body_bytes` answers 413 at once; a body without a length
   (chunked) is read up to `max_body_bytes` and answers 413 as soon as it goes over;
3. a body within the limit is handed to the app, which parses it as before.

Only admin operations take a body, so a valid key costs a legitimate client nothing; a body sent
without one is refused on every path (an open operation such as /healthz ignores bodies anyway).
Early answers say `Connection: close`: the unread rest of the body is not waited for.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from finops.api.auth import PRINCIPAL_SCOPE_KEY, bearer_key, check_key
from finops.api.errors import ApiError, body
from finops.api.state import AppState

CLOSE = {"Connection": "close"}


class BodyGuard:
    """Key first, then at most `max_body_bytes` of body (see the module docstring)."""

    def __init__(self, app: ASGIApp, state: AppState, max_body_bytes: int,
                 streamed: dict[str, int] | None = None) -> None:
        self.app, self.state, self.limit = app, state, max_body_bytes
        self.streamed = streamed or {}  # path -> its own limit: the route streams the body itself

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = _length(headers)
        if length == 0 and "transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body: the route's own dependencies check the key
            return
        client = scope["client"][0] if scope.get("client") else "unknown"
        try:
            scope[PRINCIPAL_SCOPE_KEY] = await check_key(self.state, client, bearer_key(headers.get("authorization")))
        except ApiError as exc:
            await body(exc.status, exc.message, exc.param, {**exc.headers, **CLOSE})(scope, receive, send)
            return
        limit = self.streamed.get(scope.get("path", ""))
        if limit is not None:  # a file upload: its declared length is bounded, the route streams it
            if "content-length" not in headers or length is None or "transfer-encoding" in headers:
                await body(411, "body: send the file with a Content-Length", "body", CLOSE)(scope, receive, send)
            elif length > limit:
                await self._too_large(scope, receive, send, f"{length} bytes is more", limit)
            else:
                await self.app(scope, receive, send)
            return
        if length is not None and length > self.limit:
            await self._too_large(scope, receive, send, f"{length} bytes is more")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(scope, receive, send, "more")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, size: str, limit: int | None = None) -> None:
        setting = "max_upload_bytes" if limit is not None else "max_body_bytes"
        message = f"body: {size} than the {limit or self.limit} bytes a request may carry ({setting})"
        await body(413, message, "body", CLOSE)(scope, receive, send)


def _length(headers: Headers) -> int | None:
    """The declared body length: 0 when there is none, None when it is not a number (left to the server)."""
    raw = headers.get("content-length")
    if raw is None:
        return 0
    try:
        return max(int(raw), 0)
    except ValueError:
        return None


def _replay(data: bytes, receive: Receive) -> Receive:
    """A receive channel that yields the buffered body once, then the client's own messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}
        return await receive()

    return replay
