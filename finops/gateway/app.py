"""The gateway's ASGI app: OpenAI-compatible routes proxied to the upstream, plus /metrics and /health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from finops.gateway.identity import Identifier
from finops.gateway.metrics import CONTENT_TYPE, GatewayMetrics
from finops.gateway.proxy import Gateway, proxy
from finops.gateway.wire import build_client
from finops.settings.gateway import GatewaySettings
from finops.tags import DIMS, TagRules

# Path -> (methods, metered). /v1/models is proxied (callers need it) but carries no tokens.
ROUTES: dict[str, tuple[tuple[str, ...], bool]] = {
    "/v1/completions": (("POST",), True),
    "/v1/chat/completions": (("POST",), True),
    "/v1/embeddings": (("POST",), True),
    "/v1/models": (("GET",), False),
}


class _Proxied:
    """An ASGI endpoint for one proxied path (a class, so Starlette hands it the raw ASGI triple)."""

    def __init__(self, holder: dict[str, Gateway], metered: bool) -> None:
        self.holder, self.metered = holder, metered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await proxy(self.holder["gw"], scope, receive, send, self.metered)


def create_app(
    config: GatewaySettings,
    upstream_client: httpx.AsyncClient | None = None,
    *,
    rules: TagRules | None = None,
) -> Starlette:
    """Build the gateway. Without ``upstream_client`` one is built at startup and closed at shutdown;
    a client passed in belongs to the caller. ``rules`` normalise tag values (default: built-in rules)."""
    metrics = GatewayMetrics()
    tag_rules = rules or TagRules.build(DIMS)
    identifier = Identifier(config, tag_rules)
    holder: dict[str, Gateway] = {}

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        client = upstream_client or build_client(config)
        holder["gw"] = Gateway(config, client, identifier, metrics, tag_rules)
        try:
            yield
        finally:
            if upstream_client is None:
                await client.aclose()

    async def metrics_endpoint(_: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def health(_: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [Route(path, _Proxied(holder, metered), methods=list(methods))
              for path, (methods, metered) in ROUTES.items()]
    routes += [Route("/metrics", metrics_endpoint), Route("/health", health)]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.metrics = metrics
    return app
