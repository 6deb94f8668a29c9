"""`finops gateway`: its options. The gateway (finops.gateway.cli.main) is imported only when it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def gateway(
    upstream: Annotated[str | None, typer.Option(help="OpenAI-compatible server, e.g. http://127.0.0.1:8000")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with gateway settings and keys")] = None,
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="listen port")] = None,
    trust_headers: Annotated[bool | None, typer.Option(
        "--trust-headers/--no-trust-headers", help="honour X-FinOps-Project/-Team/-Environment")] = None,
    unknown_callers: Annotated[str | None, typer.Option(help="reject (401) or untagged")] = None,
    stream_usage: Annotated[str | None, typer.Option(help="final, or continuous (vLLM only)")] = None,
    upstream_api_key: Annotated[str | None, typer.Option(
        envvar="FINOPS_GATEWAY_UPSTREAM_API_KEY", help="key the upstream expects", show_default=False)] = None,
) -> None:
    """Run the OpenAI-compatible metering gateway in front of vLLM (tokens per project/team/environment)."""
    from finops.gateway.cli import main

    main(upstream=upstream, config=config, host=host, port=port, trust_headers=trust_headers, unknown_callers=unknown_callers, stream_usage=stream_usage, upstream_api_key=upstream_api_key)
