"""The reports as MCP tools, driven by the `mcp` SDK's own client over both transports: streamable
HTTP (`/mcp` on a real uvicorn server) and stdio (`finops mcp` spawned by the client), on worked
example A. A tool answers what the API's endpoint answers for the same key and parameters."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from finops.api.mcp_tools import REPORT_TOOLS
from tests.api.conftest import WEEK, Api, Keys

FINOPS = str(Path(sys.executable).with_name("finops"))
TOOLS = {*REPORT_TOOLS, "source_freshness"}
ARGS = {"start": "2026-11-02", "end": "2026-11-03"}


Connect = Callable[[], AbstractAsyncContextManager[Client]]


def over_http(api: Api, key: str | None) -> Connect:
    @asynccontextmanager
    async def connect() -> AsyncIterator[Client]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http, \
                Client(streamable_http_client(f"{api.url}/mcp", http_client=http)) as client:
            yield client

    return connect


def over_stdio(api: Api, key: str) -> Connect:
    @asynccontextmanager
    async def connect() -> AsyncIterator[Client]:
        env = {"FINOPS_API_KEY": key, "PATH": "/usr/bin:/bin", "HOME": str(Path(api.settings.db).parent)}
        async with Client(StdioServerParameters(command=FINOPS, args=["mcp", "--url", api.url], env=env)) as client:
            yield client

    return connect


def exact_json(resp: httpx.Response) -> Any:
    """The API's JSON with its decimal numbers as their exact text, as the tools give them."""
    def text(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: text(v) for k, v in value.items()}
        if isinstance(value, list):
            return [text(v) for v in value]
        return str(value) if isinstance(value, Decimal) else value

    return text(json.loads(resp.text, parse_float=Decimal))


def run(session: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(session())


def call(connect: Connect, calls: list[tuple[str, dict[str, Any]]]) -> tuple[set[str], list[Any]]:
    """List the tools, then make each call: (tool names, results)."""

    async def session() -> tuple[set[str], list[Any]]:
        async with connect() as c:
            names = {t.name for t in (await c.list_tools()).tools}
            return names, [await c.call_tool(name, args) for name, args in calls]

    out: tuple[set[str], list[Any]] = run(session)
    return out


@pytest.mark.parametrize("transport", ["http", "stdio"])
def test_every_tool_answers_what_the_api_answers(api: Api, keys: Keys, transport: str) -> None:
    client = over_http(api, keys.finance) if transport == "http" else over_stdio(api, keys.finance)
    calls = [(tool, {**ARGS, "group_by": "team"}) for tool in REPORT_TOOLS if tool != "weekly_summary"]
    calls += [("weekly_summary", {"week": WEEK}), ("source_freshness", {})]
    names, results = call(client, calls)
    assert names == TOOLS
    for (tool, args), result in zip(calls, results, strict=True):
        assert not result.is_error, (tool, result.content)
        if tool == "source_freshness":
            want = {"sources": exact_json(api.get("/v1/sources", keys.finance))}
        else:
            want = exact_json(api.get(f"/v1/reports/{REPORT_TOOLS[tool]}", keys.finance, params=args))
        assert result.structured_content == want, tool
        assert result.content[0].text  # a summary to quote
    unit = results[0]
    assert "unit-economics for [2026-11-02, 2026-11-03)" in unit.content[0].text
    assert "cost 534.00," in unit.content[0].text  # example A's control total, exactly as the API sends it
    assert unit.structured_content["totals"]["cost"] == "534.00"


def test_input_schemas_are_the_api_parameters(api: Api, keys: Keys) -> None:
    async def session() -> dict[str, Any]:
        async with over_http(api, keys.viewer)() as c:
            return {t.name: t.input_schema for t in (await c.list_tools()).tools}

    schemas = run(session)
    props = schemas["unit_economics"]["properties"]
    assert {"start", "end", "week", "group_by", "granularity", "cost_basis", "team", "model_id"} <= set(props)
    assert "format" not in props and "ctx" not in props
    assert props["granularity"]["enum"] == ["day", "week", "month", "total"]
    assert schemas["source_freshness"]["properties"] == {}


@pytest.mark.parametrize("transport", ["http", "stdio"])
def test_a_team_scoped_key_sees_only_its_team(api: Api, keys: Keys, transport: str) -> None:
    client = over_http(api, keys.coreai) if transport == "http" else over_stdio(api, keys.coreai)
    _, (own, other, weekly) = call(client, [("unit_economics", {**ARGS, "group_by": "team"}),
                                            ("unit_economics", {**ARGS, "team": "platform"}),
                                            ("weekly_summary", {"week": WEEK})])
    assert not own.is_error
    assert {r["team"] for r in own.structured_content["rows"]} == {"coreai"}
    assert other.is_error and "403" in other.content[0].text and "coreai" in other.content[0].text
    assert weekly.is_error and "finance key" in weekly.content[0].text  # a viewer key, as on the API


def test_a_wrong_key_is_refused_before_any_tool(api: Api, keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    for key in ("fk_not-a-key", None):
        caplog.clear()
        with pytest.raises(Exception, match="TaskGroup") as refused:  # noqa: PT011 - the SDK's own error group
            call(over_http(api, key), [])
        assert "Server returned an error response" in repr(refused.value)
        if key is not None:
            assert "authentication failed" in caplog.text and "fk_not" not in caplog.text
    # What the client met: 401 with the API's error body, before the MCP request was read.
    resp = api.get("/mcp", "fk_not-a-key", headers={"Content-Type": "application/json"})
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
    assert resp.json()["error"]["message"] == "authorization: the key is not valid"
    # Over stdio the key is the service's to judge: every call is refused, naming no key.
    _, [result] = call(over_stdio(api, "fk_not-a-key"), [("unit_economics", ARGS)])
    assert result.is_error and "401" in result.content[0].text and "fk_not" not in result.content[0].text


def test_bad_arguments_are_refused_by_the_schema(api: Api, keys: Keys) -> None:
    _, [bad_date, bad_dim] = call(over_http(api, keys.viewer), [("unit_economics", {"start": "yesterday"}),
                                                                ("unit_economics", {**ARGS, "group_by": "region"})])
    assert bad_date.is_error and "start" in bad_date.content[0].text
    assert bad_dim.is_error and "region" in bad_dim.content[0].text


def test_stdio_without_a_key_says_so_and_stops() -> None:
    import subprocess

    done = subprocess.run([FINOPS, "mcp"], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,  # noqa: S603
                          timeout=60, check=False)
    assert done.returncode == 2 and done.stdout == ""  # stdout is the protocol's: nothing else goes there
    assert "FINOPS_API_KEY" in done.stderr


def test_an_unknown_argument_is_refused_not_ignored(api: Api, keys: Keys) -> None:
    _, [result] = call(over_http(api, keys.viewer), [("unit_economics", {**ARGS, "teams": "zzz"})])
    assert result.is_error and "teams: unknown parameter" in result.content[0].text


def test_the_app_serves_mcp_again_after_a_restart(api_settings: Any, data: Any, keys: Keys) -> None:
    from fastapi.testclient import TestClient

    from finops.api.app import create_app
    from tests.api.conftest import NOW

    app = create_app(api_settings, data, clock=lambda: NOW)
    for _ in range(2):  # each lifespan builds its own MCP session manager (one runs only once)
        with TestClient(app) as client:
            resp = client.post("/mcp", headers={"Authorization": f"Bearer {keys.viewer}",
                                                "Accept": "application/json, text/event-stream"},
                               json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}})
            assert resp.status_code == 200, resp.text
            assert {t["name"] for t in resp.json()["result"]["tools"]} == TOOLS
