"""One typed settings tree: defaults, then a TOML config file, then ``FINOPS_*`` environment variables.

Every section is a pydantic model in this package (`sources`, `schedule`, `alerts`, `api`,
`recommendations`, `gateway`), so a typo in any section is an error at start-up. Settings are built
once at an entry point (``load_settings``) and passed down; nothing reads the environment at import time.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from finops.settings.alerts import AlertSettings
from finops.settings.anomalies import AnomalySettings
from finops.settings.api import ApiSettings
from finops.settings.build_vs_buy import BuildVsBuySettings
from finops.settings.forecast import ForecastSettings
from finops.settings.gateway import GatewaySettings
from finops.settings.recommendations import RecommendationSettings
from finops.settings.schedule import ScheduleSettings
from finops.settings.sources import (
    BILLING_TAG_KEYS,
    AwsSettings,
    AzureSettings,
    DuckDBSettings,
    PrometheusSettings,
)
from finops.tags import DIMS

# How the shared step splits a line between the groups it could belong to (docs/attribution.md).
SharedKey = Literal["gpu_hours", "tokens", "even"]
SHARED_KEYS: tuple[str, ...] = get_args(SharedKey)

__all__ = ["BILLING_TAG_KEYS", "SHARED_KEYS", "AlertSettings", "AnomalySettings", "ApiSettings", "AwsSettings",
           "AzureSettings", "DuckDBSettings", "GatewaySettings", "PrometheusSettings", "RecommendationSettings",
           "ScheduleSettings", "Settings", "SharedKey", "load_settings"]

class Settings(BaseSettings):
    """All settings of the service. Nested sections read ``FINOPS_<SECTION>_<FIELD>`` (e.g. ``FINOPS_AZURE_BASE_URL``) variables."""

    model_config = SettingsConfigDict(
        env_prefix="FINOPS_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
    )

    db: Path = Path("./finops.duckdb")
    duckdb: DuckDBSettings = Field(default_factory=DuckDBSettings)
    # Extra tag keys per dim, added to the built-in aliases of finops.tags.
    tag_aliases: dict[str, list[str]] = Field(default_factory=dict)
    required_tags: list[str] = Field(default_factory=lambda: list(DIMS))
    lowercase_values: bool = True
    missing_values: list[str] = Field(default_factory=lambda: ["", "null", "none", "n/a"])
    shared_cost_key: SharedKey = "gpu_hours"
    idle_threshold: float = 0.05
    # Unit economics' prompt/generation split where vLLM exposes no prefill and decode time: a
    # generated token weighs this many prompt tokens (docs/definitions.md 6.1 says why 4).
    generation_weight: Decimal = Field(default=Decimal(4), gt=0, le=1000)
    # Rates into one report currency, e.g. {"EUR": "1.08"} with report_currency "USD".
    report_currency: str | None = None
    currency_rates: dict[str, Decimal] = Field(default_factory=dict)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    aws: AwsSettings = Field(default_factory=AwsSettings)
    azure: AzureSettings = Field(default_factory=AzureSettings)
    # Where the weekly job writes its files; default `reports/` beside the database file.
    reports_dir: Path = Path("./reports")
    # Hourly GPU/token detail older than this many days is dropped daily by the scheduler; the daily
    # rollups are kept forever (finops.store.retention). None keeps everything.
    retention_keep_hourly_days: int | None = None
    api: ApiSettings = Field(default_factory=ApiSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    recommendations: RecommendationSettings = Field(default_factory=RecommendationSettings)
    anomalies: AnomalySettings = Field(default_factory=AnomalySettings)
    forecast: ForecastSettings = Field(default_factory=ForecastSettings)
    build_vs_buy: BuildVsBuySettings = Field(default_factory=BuildVsBuySettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)

    @field_validator("required_tags")
    @classmethod
    def _lower_names(cls, v: list[str]) -> list[str]:
        names = [d.strip().lower() for d in v]
        unknown = [d for d in names if d not in DIMS]
        if unknown:
            raise ValueError(f"unknown dim(s) {', '.join(unknown)}; the dims are {', '.join(DIMS)}")
        return names

    @model_validator(mode="before")
    @classmethod
    def _reports_beside_the_db(cls, data: Any) -> Any:
        # Files go beside the store, not into whatever directory the service was started from.
        if isinstance(data, dict) and data.get("reports_dir") is None and data.get("db") is not None:
            return {**data, "reports_dir": Path(data["db"]).parent / "reports"}
        return data

    @model_validator(mode="before")
    @classmethod
    def _fixed_dims(cls, data: Any) -> Any:
        # The four dims are the schema's columns. An old `dims` setting naming others would have
        # been silently ignored at best; say why instead.
        if isinstance(data, dict) and "dims" in data and [str(d).strip().lower() for d in data["dims"]] != list(DIMS):
            raise ValueError(f"dims are fixed to {', '.join(DIMS)}; map other tag keys onto them with tag_aliases")
        return data

    @property
    def dims(self) -> tuple[str, ...]:
        return DIMS

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("FINOPS_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Build the settings once, at an entry point (CLI, server, test)."""
    return Settings(**overrides)
