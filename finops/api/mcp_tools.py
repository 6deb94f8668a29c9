"""The reports as tools for assistants: a Model Context Protocol server (the official `mcp` SDK).

Every tool calls the API's own endpoint with the caller's key, so keys, roles, team scoping, limits
and the report cache are the API's, unchanged, and a tool answers exactly what the endpoint does:
- over streamable HTTP (`/mcp` on the service) the key is the MCP request's bearer key, checked
  before the request is read (`McpGate`), and the call goes through the app in process (httpx's
  ASGI transport);
- over stdio (`finops mcp`) the key comes from the environment and the call goes to the running
  service's URL.
A tool's input schema is the API's query model (`ReportQuery`, less `format`); its result is the
API's JSON as structured content, with every decimal number as the exact string the API sent (a
float would round money), plus a one-line text summary an assistant can quote. Errors are the API's
messages (which never carry a key).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

import httpx
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from starlette.datastructures import Headers
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from finops.api.auth import PRINCIPAL_SCOPE_KEY, bearer_key, check_key
from finops.api.errors import ApiError, body
from finops.api.reports import ReportQuery
from finops.api.state import AppState
from finops.reports import CATALOG

PATH = "/mcp"
# Tool name -> report (the API's /v1/reports/{name}).
REPORT_TOOLS: dict[str, str] = {
    "unit_economics": "unit-economics",
    "idle_gpus": "idle-gpus",
    "untagged_spend": "untagged-spend",
    "weekly_summary": "weekly",
    "recommendations": "recommendations",
    "anomalies": "anomalies",
    "forecast": "forecast",
    "budgets": "budgets",
    "build_vs_buy": "build-vs-buy",
    "bill_check": "bill-check",
}
# Totals quoted in a report's text summary, in this order, where the report has them.
SUMMARY_TOTALS = ("cost", "ingested_total", "generation_tokens", "cost_per_1k_generated_tokens", "idle_cost",
                  "idle_hours", "untagged_cost", "untagged_share", "total_cost", "monthly_savings", "anomalies",
                  "deviation_cost", "budgets", "at_risk", "over")
INSTRUCTIONS = ("FinOps for self-hosted LLM inference: cost per 1k tokens, idle GPUs, untagged spend, the weekly "
                "finance summary and savings recommendations, per project, team, environment and model. Money "
                "is in the report currency, exact; windows are [start, end) in UTC days.")

# The caller's `Authorization` header value for this tool call (None: none was given).
AuthorizationOf = Callable[[Context], str | None]
# GET `path` with `params` and the caller's authorization; the API's JSON, or ToolError.
Call = Callable[[Context, str, dict[str, str]], Awaitable[Any]]


def http_call(client: Callable[[], httpx.AsyncClient], authorization_of: AuthorizationOf) -> Call:
    """A Call through `client()` (a base URL, or the app in process) with the caller's authorization."""

    async def call(ctx: Context, path: str, params: dict[str, str]) -> Any:
        auth = authorization_of(ctx)
        async with client() as http:
            resp = await http.get(path, params=params, headers={"Authorization": auth} if auth else {})
        if resp.is_success:
            return exact(json.loads(resp.text, parse_float=Decimal))
        try:
            message = resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = resp.reason_phrase
        raise ToolError(f"{resp.status_code}: {message}")

    return call


def exact(value: Any) -> Any:
    """`value` with every Decimal as its exact text (JSON has no decimal type an SDK keeps)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exact(v) for v in value]
    return value


def _query_text(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def summary(report: str, data: dict[str, Any]) -> str:
    """One line an assistant can quote: the report, its window and currency, its main totals."""
    params, totals = data.get("params", {}), data.get("totals", {})
    quoted = [f"{k} {totals[k]}" for k in SUMMARY_TOTALS if totals.get(k) is not None]
    rows = data.get("rows", [])
    return (f"{report} for [{params.get('start')}, {params.get('end')}) in {params.get('currency') or 'the bill currency'}:"
            f" {', '.join(quoted) or 'no totals'}; {len(rows)} row(s).")


def _report_tool(report: str, call: Call) -> Callable[..., Awaitable[CallToolResult]]:
    """A tool for `report` whose parameters are ReportQuery's fields (less `format`)."""

    async def tool(ctx: Context, **arguments: Any) -> CallToolResult:
        # The SDK drops arguments its schema does not name; the API refuses an unknown parameter
        # rather than answer unfiltered, and so does the tool.
        given = (ctx.request_context.params or {}).get("arguments") or {}
        unknown = sorted(set(given) - set(fields))
        if unknown:
            raise ToolError(f"422: {', '.join(unknown)}: unknown parameter")
        query = {k: _query_text(v) for k, v in arguments.items() if v is not None}
        data = await call(ctx, f"/v1/reports/{report}", query)
        return CallToolResult(content=[TextContent(type="text", text=summary(report, data))], structured_content=data)

    fields = {n: f for n, f in ReportQuery.model_fields.items() if n != "format"}
    params = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None,
                                annotation=Annotated[f.annotation, f]) for n, f in fields.items()]
    ctx_param = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)
    tool.__signature__ = inspect.Signature([*params, ctx_param], return_annotation=CallToolResult)  # type: ignore[attr-defined]
    tool.__annotations__ = {**{p.name: p.annotation for p in params}, "ctx": Context, "return": CallToolResult}
    tool.__name__ = report.replace("-", "_")
    return tool


def build_server(call: Call) -> MCPServer:
    """The MCP server: a tool per report and one for source freshness, all read-only."""
    server = MCPServer("finops", instructions=INSTRUCTIONS)
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    for name, report in REPORT_TOOLS.items():
        needs = " Needs a finance key." if report == "weekly" else ""
        server.add_tool(_report_tool(report, call), name=name, title=CATALOG[report].summary,
                        description=f"{CATALOG[report].summary} (the API's /v1/reports/{report}).{needs}",
                        annotations=read_only)

    async def source_freshness(ctx: Context) -> CallToolResult:
        data = await call(ctx, "/v1/sources", {})
        by_status: dict[str, list[str]] = {}
        for src in data:
            by_status.setdefault(str(src.get("status")), []).append(str(src.get("source")))
        text = f"{len(data)} source(s): " + "; ".join(f"{status}: {', '.join(names)}"
                                                        for status, names in sorted(by_status.items())) + "."
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content={"sources": data})

    server.add_tool(source_freshness, name="source_freshness", title="Source freshness",
                    description="Per source: newest run, status, data through, rows, error and freshness.",
                    annotations=read_only)
    return server


class McpGate:
    """The key of every MCP request is checked before the request is read (401/429 as the API)."""

    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get(PRINCIPAL_SCOPE_KEY) is None:
            client = scope["client"][0] if scope.get("client") else "unknown"
            try:
                scope[PRINCIPAL_SCOPE_KEY] = await check_key(
                    self.state, client, bearer_key(Headers(scope=scope).get("authorization")))
            except ApiError as exc:
                await body(exc.status, exc.message, exc.param, exc.headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def request_authorization(ctx: Context) -> str | None:
    """The `Authorization` header of the HTTP request that carried this tool call."""
    request = ctx.request_context.request
    headers = getattr(request, "headers", None)
    return headers.get("authorization") if headers is not None else None


class McpMount:
    """`/mcp` on the service: the route exists with the app; each run of the app's lifespan builds a
    fresh server (an SDK session manager runs once), so an app can start, stop and start again."""

    def __init__(self, app_asgi: ASGIApp, state: AppState) -> None:
        self.app_asgi, self.state = app_asgi, state
        self.handler: ASGIApp | None = None
        self.route = Route(PATH, endpoint=McpGate(self._serve, state))

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.handler is None:
            await body(503, "mcp: the service is not running", None)(scope, receive, send)
            return
        await self.handler(scope, receive, send)

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app_asgi), base_url="http://finops.internal",
                                 timeout=600.0)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Serve MCP for the duration of the block (the app's lifespan)."""
        server = build_server(http_call(self._client, request_authorization))
        # Keys, not cookies, authenticate every request, so a rebound DNS name gains a page nothing:
        # the Host check would only break access through a proxy or a container name.
        starlette = server.streamable_http_app(streamable_http_path=PATH, stateless_http=True, json_response=True,
                                               transport_security=TransportSecuritySettings(
                                                   enable_dns_rebinding_protection=False))
        [route] = [r for r in starlette.routes if isinstance(r, Route) and r.path == PATH]
        async with server.session_manager.run():
            self.handler = route.endpoint
            try:
                yield
            finally:
                self.handler = None
