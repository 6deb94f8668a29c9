"""What ``finops gateway`` does (its options: finops/cli/gateway.py): run the metering gateway under uvicorn."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import httpx
import typer
from pydantic import ValidationError

from finops.settings.gateway import GatewaySettings


def load_gateway_settings(config: Path | None, base: GatewaySettings | None = None,
                          **overrides: Any) -> GatewaySettings:
    """The service's `gateway` section (`base`), then a TOML file (top-level fields or a `[gateway]`
    table, keys under ``[keys."<key>"]``), then flags."""
    data: dict[str, Any] = base.model_dump(exclude_unset=True) if base is not None else {}
    if config is not None:
        try:
            loaded = tomllib.loads(config.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {config}: {exc}", param_hint="--config") from None
        data.update(loaded.get("gateway", loaded))
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return GatewaySettings(**data)
    except ValidationError as exc:
        # Pydantic's message would include the input; keys are secrets, so list locations and reasons only.
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][:1])}: {e['msg']}" for e in exc.errors())
        raise typer.BadParameter(f"invalid gateway settings: {problems}") from None


def main(upstream: Any, config: Any, host: Any, port: Any, trust_headers: Any, unknown_callers: Any, stream_usage: Any, upstream_api_key: Any) -> None:
    """Run the OpenAI-compatible metering gateway in front of vLLM (tokens per project/team/environment)."""
    import uvicorn

    from finops.gateway.app import create_app
    from finops.settings import load_settings
    from finops.tags import TagRules

    service = load_settings()
    s = load_gateway_settings(
        config, service.gateway, upstream_url=upstream, host=host, port=port, trust_headers=trust_headers,
        unknown_callers=unknown_callers, stream_usage=stream_usage, upstream_api_key=upstream_api_key,
    )
    app = create_app(s, rules=TagRules.from_settings(service))
    shown = httpx.URL(s.upstream_url).copy_with(username=None, password=None)  # no credentials in logs
    typer.echo(f"gateway on http://{s.host}:{s.port} -> {shown} "
               f"({len(s.keys)} keys, unknown callers: {s.unknown_callers})", err=True)
    # No access log: /metrics is the record, and a log line per request costs latency.
    uvicorn.run(app, host=s.host, port=s.port, log_level="info", access_log=False, server_header=False)
