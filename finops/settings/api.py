"""Settings of the HTTP API (a section the service's Settings carries as `api`)."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator


class ApiSettings(BaseModel):
    """What the HTTP API exposes without a key, and its limits."""

    # /healthz and /readyz answer without a key (probes rarely carry credentials).
    open_health: bool = True
    # /metrics answers without a key with the API's own request metrics; the FinOps KPIs (every
    # team's costs) need an unscoped key. Set False to require an unscoped key for all of /metrics.
    open_metrics: bool = True
    # Also serve the FinOps KPIs on /metrics without a key (anyone who reaches the port then reads
    # every team's cost per 1k tokens, idle cost and untagged share). Needs open_metrics.
    open_metrics_kpis: bool = False
    # Largest request body accepted (413 beyond it); the key is checked before any body is read.
    max_body_bytes: int = Field(default=1 << 20, ge=1)
    # Largest billing file accepted by POST /v1/sources/focus/files (streamed to disk, not to memory).
    max_upload_bytes: int = Field(default=4 << 30, ge=1)
    # Failed authentications per client address and minute before further attempts answer 429.
    auth_failures_per_minute: int = Field(default=10, ge=1)
    # Report results kept in memory, per (report, parameters, format, data version).
    report_cache_entries: int = Field(default=128, ge=0)
    # A verified key is trusted this long without reading the key table again (revoking through
    # the API takes effect at once; the CLI cannot revoke while the server holds the database).
    key_cache_seconds: float = Field(default=10.0, ge=0)
    # The data version (newest succeeded run) is re-read when the database files change, and at
    # least this often regardless.
    data_version_max_age_seconds: float = Field(default=1.0, ge=0)
    # Trailing window of the FinOps KPIs exposed on /metrics.
    metrics_window_days: int = Field(default=7, ge=1, le=93)
    # Longest window a collection started through the API may cover.
    max_run_days: int = Field(default=366, ge=1)
    # How long shutdown waits for collections started through the API.
    shutdown_wait_seconds: float = Field(default=3.0, ge=0)

    @model_validator(mode="after")
    def _kpis_need_open_metrics(self) -> ApiSettings:
        if self.open_metrics_kpis and not self.open_metrics:
            raise ValueError("open_metrics_kpis needs open_metrics (KPIs cannot be open on a closed /metrics)")
        return self
