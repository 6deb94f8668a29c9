"""The one settings tree: every section typed, sensible defaults, errors at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from finops.settings import Settings, load_settings
from finops.settings.alerts import IdleGpuRule
from finops.tags import DIMS


def test_every_section_is_a_typed_model_read_from_the_config_file(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "finops.toml"
    config.write_text("""
db = "/var/lib/finops/finops.duckdb"
[api]
report_cache_entries = 7
[schedule.weekly]
hour = 9
[alerts]
rules = [{kind = "idle_gpu", min_hours = 4}]
[recommendations]
headroom = "0.25"
[gateway]
upstream_url = "http://vllm:8000"
""")
    monkeypatch.setenv("FINOPS_CONFIG", str(config))
    s = load_settings()
    assert s.api.report_cache_entries == 7
    assert s.schedule.weekly.hour == 9
    assert IdleGpuRule(min_hours=4) in s.alerts.rules and len(s.alerts.rules) == 6  # it replaces the default
    assert str(s.recommendations.headroom) == "0.25"
    assert s.gateway.upstream_url == "http://vllm:8000"
    assert s.reports_dir == Path("/var/lib/finops/reports")  # beside the store, not the working directory


@pytest.mark.parametrize(("section", "value", "fragment"), [
    ("schedule", {"weekly": {"hour": 25}}, "schedule.weekly.hour"),
    ("api", {"report_cache_entries": -1}, "api.report_cache_entries"),
    ("alerts", {"rules": [{"kind": "nope"}]}, "alerts.rules."),
    ("gateway", {"upstream_url": "ftp://x"}, "gateway.upstream_url"),
])
def test_a_bad_section_fails_at_start_up_naming_the_field(section: str, value: object, fragment: str) -> None:
    with pytest.raises(ValidationError) as err:
        Settings(**{section: value})  # type: ignore[arg-type]
    assert fragment in str(err.value)


def test_the_dims_are_the_schema_s_and_others_are_refused() -> None:
    assert Settings().dims == DIMS
    assert Settings(dims=list(DIMS)).dims == DIMS  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="dims are fixed to project, team, environment, model_id"):
        Settings(dims=["project", "team", "environment", "model_id", "cost_center"])  # type: ignore[call-arg]
