"""Alert settings: rules (one model per kind, selected by `kind`), channels (by `type`), exemptions
and the dedupe interval. A rule only says *when* to alert; `finops.alerts.checks` says how each kind
is evaluated, `finops.alerts.channels` how each channel is sent to.

Example (TOML)::

    [[alerts.rules]]
    kind = "idle_gpu"
    min_hours = 6
    min_idle_cost = "10.00"
    severity = "critical"
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from finops.tags import DIMS

Severity = Literal["info", "warning", "critical"]


def known_dims(v: tuple[str, ...]) -> tuple[str, ...]:
    """`group_by` of a rule: one or more dims, in the dims' order."""
    unknown = [d for d in v if d not in DIMS]
    if unknown or not v:
        raise ValueError(f"group_by: choose from {', '.join(DIMS)} (got {', '.join(v) or 'nothing'})")
    return tuple(d for d in DIMS if d in v)


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Names the rule in alert keys and messages; defaults to the kind. Unique among rules.
    name: str = ""
    enabled: bool = True
    severity: Severity = "warning"

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name"):
            return {**data, "name": data.get("kind") or cls.model_fields["kind"].default}
        return data


class UntaggedSpendRule(_Rule):
    """Untagged spend (docs/definitions.md 6.3) over the trailing `window_days` complete days reaches a share or an amount."""

    kind: Literal["untagged_spend"] = "untagged_spend"
    window_days: int = Field(default=7, ge=1, le=92)
    # Fires when either threshold is reached; None disables that threshold.
    min_share: Decimal | None = Field(default=Decimal("0.10"), ge=0, le=1)
    min_amount: Decimal | None = Field(default=None, ge=0)
    scope: Literal["all", "accelerator"] = "all"

    @model_validator(mode="after")
    def _some_threshold(self) -> UntaggedSpendRule:
        if self.min_share is None and self.min_amount is None:
            raise ValueError("untagged_spend: set min_share, min_amount or both")
        return self


class IdleGpuRule(_Rule):
    """A GPU whose current idle streak (docs/definitions.md 6.2 idle hours since its last busy hour) is long and costly."""

    kind: Literal["idle_gpu"] = "idle_gpu"
    min_hours: int = Field(default=6, ge=1)
    min_idle_cost: Decimal = Field(default=Decimal("0"), ge=0)
    # How far back the idle-gpus report looks for the streak (a streak longer than this is cut).
    lookback_days: int = Field(default=3, ge=1, le=31)
    # A GPU silent for longer than this is gone (terminated), not idle: no alert.
    max_silence_hours: int = Field(default=3, ge=0)


class StaleSourceRule(_Rule):
    """A source whose last successful collection is older than its allowed age."""

    kind: Literal["stale_source"] = "stale_source"
    max_age_hours: float = Field(default=30.0, gt=0)
    # Per-source ages, e.g. hourly Prometheus is stale much sooner than daily billing data.
    per_source_hours: dict[str, float] = Field(default_factory=lambda: {"prometheus": 3.0})
    # None: every source that has runs in the ledger, minus `exclude` (manual FOCUS ingests).
    sources: list[str] | None = None
    exclude: list[str] = Field(default_factory=lambda: ["focus"])

    def max_age(self, source: str) -> float:
        return self.per_source_hours.get(source, self.max_age_hours)


class TokenCostRule(_Rule):
    """Cost per 1k generated tokens of a group up more than `min_increase_pct` week over week."""

    kind: Literal["token_cost"] = "token_cost"
    group_by: tuple[str, ...] = ("model_id",)
    min_increase_pct: Decimal = Field(default=Decimal("20"), gt=0)
    # Groups costing less than this in the current week are ignored (noise).
    min_cost: Decimal = Field(default=Decimal("0"), ge=0)

    _dims = field_validator("group_by")(classmethod(lambda cls, v: known_dims(v)))


class BudgetRule(_Rule):
    """A budget (`/v1/budgets`) whose actual or forecast spend reaches one of its thresholds, or whose
    forecast cost per 1k generated tokens passes its ceiling: one alert per budget, period and basis."""

    kind: Literal["budget"] = "budget"
    # A forecast from the first days of a period is mostly history: forecast thresholds count from
    # this many complete days into the period (actual thresholds count at once).
    forecast_after_days: int = Field(default=3, ge=0, le=31)


class AnomalyRule(_Rule):
    """An anomalous day (docs/definitions.md 6.6) among the last `lookback_days` complete days."""

    kind: Literal["anomaly"] = "anomaly"
    group_by: tuple[str, ...] = ("team",)
    lookback_days: int = Field(default=2, ge=1, le=14)
    metrics: tuple[Literal["cost", "cost_per_1k_generated_tokens"], ...] = ("cost", "cost_per_1k_generated_tokens")

    _dims = field_validator("group_by")(classmethod(lambda cls, v: known_dims(v)))


Rule = Annotated[UntaggedSpendRule | IdleGpuRule | StaleSourceRule | TokenCostRule | BudgetRule | AnomalyRule,
                 Field(discriminator="kind")]


def default_rules() -> list[Rule]:
    return [UntaggedSpendRule(), IdleGpuRule(), StaleSourceRule(), TokenCostRule(), BudgetRule(), AnomalyRule()]


class Exemptions(BaseModel):
    """Resources no resource-level rule (untagged spend, idle GPU) alerts on."""

    model_config = ConfigDict(extra="forbid")

    # Raw tag key -> value on the bill (both compared case-insensitively), e.g. finops-ignore=true.
    tags: dict[str, str] = Field(default_factory=lambda: {"finops-ignore": "true"})
    # Resource ids in any spelling (ARN, Azure path, short id): matched by resource key.
    resource_ids: list[str] = Field(default_factory=list)


class _Channel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    url: SecretStr
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    verify_tls: bool | str = True
    timeout_seconds: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=4, ge=1)
    backoff_seconds: float = Field(default=1.0, ge=0)


class WebhookChannel(_Channel):
    type: Literal["webhook"] = "webhook"


class SlackChannel(_Channel):
    type: Literal["slack"] = "slack"


class AlertmanagerChannel(_Channel):
    """`url` is Alertmanager's base URL; alerts go to `<url>/api/v2/alerts`."""

    type: Literal["alertmanager"] = "alertmanager"


Channel = Annotated[WebhookChannel | SlackChannel | AlertmanagerChannel, Field(discriminator="type")]




class AlertSettings(BaseModel):
    """How alerts are evaluated and where they go (wired into `Settings.alerts` by the entry point)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # Rules given here are added to the default rules; one with a default's name (its kind, unless
    # named) replaces that default, and `enabled = false` switches a rule off. `replace_default_rules`
    # makes the given list the whole set.
    rules: list[Rule] = Field(default_factory=default_rules)
    replace_default_rules: bool = False
    channels: list[Channel] = Field(default_factory=list)
    exemptions: Exemptions = Field(default_factory=Exemptions)
    # A firing alert is sent once per channel, then again only after this long while it holds.
    resend_after_minutes: float = Field(default=240.0, gt=0)
    # Rules are evaluated after each collection and on this timer.
    evaluate_every_minutes: float = Field(default=15.0, gt=0)
    # Resolved notifications that failed are retried for this long.
    resolved_retry_hours: float = Field(default=24.0, ge=0)
    # Public base URL of the API (e.g. https://finops.example.com) so messages carry absolute links.
    link_base: str = ""

    @model_validator(mode="before")
    @classmethod
    def _over_the_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "rules" not in data or data.get("replace_default_rules"):
            return data
        given = data["rules"] if isinstance(data["rules"], list) else []

        def name(r: Any) -> str:
            if isinstance(r, dict):
                return str(r.get("name") or r.get("kind"))
            return str(getattr(r, "name", r))

        named = {name(r) for r in given}
        return {**data, "rules": [r for r in default_rules() if r.name not in named] + list(given)}

    def active_rules(self) -> list[Rule]:
        return [r for r in self.rules if r.enabled]

    @model_validator(mode="after")
    def _unique_names(self) -> AlertSettings:
        for what, names in (("rule", [r.name for r in self.rules]), ("channel", [c.name for c in self.channels])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what} names must be unique; repeated: {', '.join(dupes)}")
        return self
