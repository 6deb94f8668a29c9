"""`finops mcp`: the reports as MCP tools over stdio, for an assistant on this machine (docs/mcp.md).

The tools call the running finops service with the key in `FINOPS_API_KEY`, so the key's role and
team scope apply as on the API. The server speaks MCP on stdout; messages for people go to stderr.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

DEFAULT_URL = "http://127.0.0.1:8080"


def mcp(
    url: Annotated[str | None, typer.Option(
        envvar="FINOPS_API_URL", help="the finops service (default: the one serving FINOPS_DB here, else "
        f"{DEFAULT_URL})", show_default=False)] = None,
) -> None:
    """Serve the reports as MCP tools over stdio, calling the finops service with $FINOPS_API_KEY."""
    key = os.environ.get("FINOPS_API_KEY", "").strip()
    if not key:
        typer.echo("finops mcp: set FINOPS_API_KEY to a key of the finops service (finops keys create)", err=True)
        raise typer.Exit(2)
    base = url or _local_service() or DEFAULT_URL

    import httpx

    from finops.api.mcp_tools import build_server, http_call

    def client() -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base, timeout=600.0)

    build_server(http_call(client, lambda _: f"Bearer {key}")).run("stdio")


def _local_service() -> str | None:
    """The URL of the service that holds this machine's store, if one runs (its key is not used)."""
    from finops.cli.common import settings
    from finops.store.local_access import read

    access = read(settings().db)
    return access.url if access else None
