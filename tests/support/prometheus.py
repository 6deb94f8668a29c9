"""A real Prometheus for tests: re-exports `finops.demo.prometheus`, where the helper lives (the demo uses it too)."""

from finops.demo.prometheus import (
    BLOCK,
    CONFIG,
    PROMETHEUS,
    PROMTOOL,
    RETENTION,
    OMSeries,
    PortTaken,
    PrometheusServer,
    backfill,
    backfill_series,
    free_port,
    write_openmetrics,
)

__all__ = [
    "BLOCK",
    "CONFIG",
    "PROMETHEUS",
    "PROMTOOL",
    "RETENTION",
    "OMSeries",
    "PortTaken",
    "PrometheusServer",
    "backfill",
    "backfill_series",
    "free_port",
    "write_openmetrics",
]
