"""`AlertSettings`: rules, channels, exemptions and the dedupe interval, as one configuration model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from finops.alerts.channels import Channel
from finops.alerts.rules import Exemptions, Rule, default_rules


class AlertSettings(BaseModel):
    """How alerts are evaluated and where they go (wired into `Settings.alerts` by the entry point)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    rules: list[Rule] = Field(default_factory=default_rules)
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

    @model_validator(mode="after")
    def _unique_names(self) -> AlertSettings:
        for what, names in (("rule", [r.name for r in self.rules]), ("channel", [c.name for c in self.channels])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what} names must be unique; repeated: {', '.join(dupes)}")
        return self
