"""Settings of the metering gateway: where the upstream is, how callers are identified, how streams are
metered, and the bounds that keep a hostile caller from exhausting its memory or its metrics."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

SHA256_PREFIX = "sha256:"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class CallerTags(BaseModel):
    """The dims one gateway API key is charged to; a missing dim is exported as ``__untagged__``."""

    project: str | None = None
    team: str | None = None
    environment: str | None = None


class GatewaySettings(BaseModel):
    """Everything ``create_app`` needs. Keys are secrets: ``repr=False`` keeps them out of logs and errors."""

    upstream_url: str = "http://127.0.0.1:8000"
    # Sent upstream as ``Authorization: Bearer ...`` (vLLM ``--api-key``); callers' own keys never are.
    upstream_api_key: SecretStr | None = None
    connect_timeout_seconds: float = 5.0
    # The longest wait for the next byte: time to first token of a queued request, or a whole
    # non-streamed completion. Streams are never cut by a total deadline, only by silence.
    read_timeout_seconds: float = 600.0
    write_timeout_seconds: float = 30.0
    pool_timeout_seconds: float = 30.0
    max_connections: int = 1000
    # Gateway API key (or ``sha256:<64 hex>`` of it) -> the dims it is charged to.
    keys: dict[str, CallerTags] = Field(default_factory=dict, repr=False)
    # Honour X-FinOps-Project / -Team / -Environment. Headers attribute, they never authenticate.
    trust_headers: bool = False
    # Callers without a known key: 401 before anything reaches the upstream, or served as __untagged__.
    unknown_callers: Literal["reject", "untagged"] = "reject"
    # "final": usage from the stream's last chunk (any OpenAI-compatible server). "continuous" (vLLM
    # only): also ask for per-chunk cumulative usage, so a stream cut short is still counted exactly.
    stream_usage: Literal["final", "continuous"] = "final"
    # Larger request bodies are refused with 413 before they are read (or as soon as a chunked body
    # passes the limit): the gateway holds a whole body in memory to meter it.
    max_body_bytes: int = 4 * 1024 * 1024
    # Distinct model_id label values exported; later models are counted under "__other__", so a
    # caller (or an upstream echoing request fields) cannot create series without bound.
    max_model_labels: int = 100
    # Any label value taken from a request or an upstream answer is cut to this many characters.
    max_label_length: int = 200
    host: str = "127.0.0.1"
    port: int = 8080

    @field_validator("upstream_url")
    @classmethod
    def _upstream(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("upstream_url must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("keys")
    @classmethod
    def _keys(cls, v: dict[str, CallerTags]) -> dict[str, CallerTags]:
        for n, key in enumerate(v, start=1):
            # Never echo the key itself: the message names the entry by position only.
            if not key.strip():
                raise ValueError(f"gateway key #{n} is empty")
            if key.lower().startswith(SHA256_PREFIX) and not _HEX64.fullmatch(key[len(SHA256_PREFIX):]):
                raise ValueError(f"gateway key #{n} starts with sha256: but is not 64 hex digits")
        return v

    @field_validator("connect_timeout_seconds", "read_timeout_seconds", "write_timeout_seconds",
                     "pool_timeout_seconds")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("timeouts must be positive")
        return v

    @field_validator("max_connections", "max_body_bytes", "max_model_labels", "max_label_length")
    @classmethod
    def _positive_count(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be a positive integer")
        return v
