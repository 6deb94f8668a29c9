"""HTTP plumbing of the gateway: the upstream client, which headers cross, ASGI send helpers."""

from __future__ import annotations

import json
from collections.abc import Iterable
from http.cookiejar import CookieJar
from typing import Any

import httpx
from pydantic import SecretStr
from starlette.types import Send

from finops.settings.gateway import GatewaySettings

# Hop-by-hop headers, the caller's credentials and tags, and what httpx or uvicorn set themselves.
_DROP_REQUEST = frozenset({
    b"host", b"content-length", b"authorization", b"connection", b"keep-alive", b"transfer-encoding",
    b"te", b"trailer", b"upgrade", b"proxy-authorization", b"proxy-connection", b"accept-encoding",
    b"cookie", b"x-finops-project", b"x-finops-team", b"x-finops-environment",
})
_DROP_RESPONSE = frozenset({
    "content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive", "date",
    "server", "te", "trailer", "upgrade", "set-cookie",
})


class _NoCookies(CookieJar):
    """The upstream client is shared by every caller, so it must never keep one caller's cookies."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


def build_client(settings: GatewaySettings) -> httpx.AsyncClient:
    """The one upstream client of a gateway process (pooled, keep-alive, no cookies, no proxy env vars)."""
    return httpx.AsyncClient(
        cookies=_NoCookies(),
        base_url=settings.upstream_url,
        timeout=httpx.Timeout(
            connect=settings.connect_timeout_seconds,
            read=settings.read_timeout_seconds,
            write=settings.write_timeout_seconds,
            pool=settings.pool_timeout_seconds,
        ),
        limits=httpx.Limits(max_connections=settings.max_connections,
                            max_keepalive_connections=settings.max_connections),
        follow_redirects=False,
        trust_env=False,
    )


def error_body(message: str, kind: str, status: int, param: str | None = None) -> bytes:
    """An OpenAI-style error object (what the openai clients parse)."""
    return json.dumps({"error": {"message": message, "type": kind, "param": param, "code": status}}).encode()


async def send_json(send: Send, status: int, body: bytes, *, close: bool = False) -> None:
    """A whole JSON answer; ``close`` ends the connection after it instead of keeping it alive."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def upstream_headers(headers: Iterable[tuple[bytes, bytes]], api_key: SecretStr | None) -> list[tuple[bytes, bytes]]:
    """The client's request headers as sent upstream: without its credentials and tags."""
    out = [(k, v) for k, v in headers if k not in _DROP_REQUEST]
    out.append((b"accept-encoding", b"identity"))  # SSE must arrive readable, not gzipped
    if api_key is not None:
        out.append((b"authorization", b"Bearer " + api_key.get_secret_value().encode("latin-1")))
    return out


def response_headers(resp: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in resp.headers.multi_items() if k.lower() not in _DROP_RESPONSE]
