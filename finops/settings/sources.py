"""Settings of the store and of each source: DuckDB limits, Prometheus, AWS and Azure."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

BILLING_TAG_KEYS = {"project": "Project", "team": "Team", "environment": "Environment", "model_id": "ModelID"}


class DuckDBSettings(BaseModel):
    """Resource limits for the embedded DuckDB (set them explicitly for a long-running service)."""

    memory_limit: str = "4GiB"
    threads: int = 2
    temp_directory: str | None = None


class PrometheusSettings(BaseModel):
    """Where the Prometheus that scrapes dcgm-exporter and vLLM lives, and how its labels map to dims."""

    url: str = "http://127.0.0.1:9090"
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    verify_tls: bool | str = True
    timeout_seconds: float = 30.0
    step_seconds: int = 3600
    # Chunk long windows so no range query exceeds Prometheus's 11,000 points per series.
    max_points_per_query: int = 11000
    # Which metric labels carry each dim (first present wins); model_id falls back to model_name.
    # `label_*` are pod labels as kube-state-metrics exposes them (`model-id` becomes `label_model_id`).
    dim_labels: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "project": ["project", "label_project"],
            "team": ["team", "label_team"],
            "environment": ["environment", "label_environment"],
            "model_id": ["model_id", "label_model_id"],
        }
    )
    # Labels naming the billed resource / host used by attribution rule 2, in order of preference;
    # `provider_id` is the node's (kube_node_info), added where `kubernetes` is on.
    resource_labels: list[str] = Field(
        default_factory=lambda: ["instance_id", "provider_id", "Hostname", "hostname", "instance"])
    # Read kube-state-metrics through this Prometheus: pod labels join the GPU and vLLM series of
    # their pod (namespace, pod), and each node's provider_id names the billed instance of its GPUs.
    kubernetes: bool = False
    # Prefer the metering gateway's per-caller token counters over vLLM's own where both exist.
    token_source: Literal["vllm", "gateway", "gateway_then_vllm"] = "gateway_then_vllm"
    # Retries of one query on connection errors and 429/502/503/504, with exponential backoff.
    max_retries: int = Field(default=2, ge=0)
    retry_backoff_seconds: float = Field(default=0.5, ge=0)
    # A pod or container matching this (full match) on a GPU series is the exporter itself, i.e. the
    # GPU is allocated to no workload (GPU Operator / Helm target labels on unallocated GPUs).
    exporter_workload_pattern: str = r"(nvidia-)?dcgm-exporter(-[a-z0-9-]+)?"


class AwsSettings(BaseModel):
    """Cost Explorer, Data Exports in S3 and EC2 inventory; credentials come from boto3's own chain."""

    regions: list[str] = Field(default_factory=lambda: ["us-east-1"])
    role_arn: str | None = None
    endpoint_url: str | None = None
    effective_metric: Literal["AmortizedCost", "NetAmortizedCost"] = "AmortizedCost"
    billed_metric: str = "UnblendedCost"
    # The tag key queried on the provider's API for each dim (the API matches keys case-sensitively).
    tag_keys: dict[str, str] = Field(default_factory=lambda: dict(BILLING_TAG_KEYS))
    restatement_days: int = 3
    max_attempts: int = 5
    retry_mode: Literal["standard", "adaptive"] = "standard"
    export_bucket: str | None = None
    export_prefix: str = ""
    # Where AWS cost lines come from. Cost Explorer and the Data Exports hold the same spend, so only
    # one of them is collected: `auto` uses the exports when a bucket is configured, else Cost Explorer.
    cost_source: Literal["auto", "cost_explorer", "exports"] = "auto"
    # Credentials: a named profile (None: boto3's default chain), then optionally a role to assume.
    profile: str | None = None
    role_session_name: str = "finops"
    external_id: str | None = None
    # Per-service endpoints (e.g. {"ce": "http://127.0.0.1:5000"}) win over `endpoint_url`; with
    # neither, boto3's own configuration applies (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>).
    endpoint_urls: dict[str, str] = Field(default_factory=dict)
    ce_region: str = "us-east-1"
    export_region: str | None = None
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 60.0
    # Cost Explorer dimensions collected below the four tags; they cost one request per distinct
    # tag tuple in the window (query plan: finops/sources/aws/ce.py). [] collects the tags only.
    ce_dimensions: list[Literal["SERVICE", "LINKED_ACCOUNT"]] = ["SERVICE", "LINKED_ACCOUNT"]
    # In the first N days of a month the previous month is restated too (AWS finalises it then).
    restatement_month_days: int = 5
    # Closed Cost Explorer answers are cached as JSON files (None: `<db dir>/cache/aws_ce`).
    ce_cache: bool = True
    ce_cache_dir: Path | None = None
    # Largest accepted difference between the grouped and the ungrouped total of a window.
    ce_total_tolerance: Decimal = Decimal("0.01")
    # EC2 instance-type patterns (fnmatch) counted as accelerator hosts.
    gpu_instance_patterns: list[str] = Field(default_factory=lambda: ["p*", "g*", "inf*", "trn*", "dl*"])


    def costs_from_exports(self) -> bool:
        return self.cost_source == "exports" or (self.cost_source == "auto" and bool(self.export_bucket))


class AzureSettings(BaseModel):
    """Cost Management Query API scopes and endpoint."""

    scopes: list[str] = Field(default_factory=list)
    base_url: str = "https://management.azure.com"
    verify_tls: bool | str = True
    # The tag key queried on the provider's API for each dim (the API matches keys case-sensitively).
    tag_keys: dict[str, str] = Field(default_factory=lambda: dict(BILLING_TAG_KEYS))
    restatement_days: int = 3
    max_attempts: int = 6
    max_wait_seconds: float = 120.0
    # Documented quota: 12 QPU per 10 s; one month of data is 1 QPU. Space queries accordingly.
    min_seconds_between_queries: float = 1.0
    # In the first N days of a month the restatement window also covers the whole previous month.
    restatement_month_days: int = 5
    # A resource-day's cost must agree across the grouped queries within this much (Azure sums doubles).
    sum_tolerance: Decimal = Decimal("0.000001")
    # Token scope; default `<base_url>/.default`, which is right for the public and sovereign clouds.
    credential_scope: str | None = None
    # Connection errors and 5xx are retried inside azure-core; 429 is always waited out by the collector.
    transport_retries: int = 3
    timeout_seconds: float = 120.0
