"""The prompt/generation split and the prefix cache on /metrics and in the weekly workbook's Models
sheet, on worked example A with vLLM V1 signals (docs/definitions.md 9.6)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta

import pytest
from openpyxl import load_workbook

from finops.batch import Batch, Task
from finops.collect import run_task
from finops.timeutil import Window
from tests.api.conftest import WEEK, Api, Keys
from tests.api.test_health_metrics_alerts import scrape, series
from tests.support import example_a


def with_v1_signals(api: Api) -> None:
    """Re-collect example A's day with the V1 signals (a collection replaces its window)."""
    day = example_a.DAY
    facts = example_a.telemetry(day, v1=True)
    task = Task("example-a", Window(day, day + timedelta(days=1)), lambda: Batch(facts=facts))
    assert run_task(api.store, "prometheus", task).status == "succeeded"


def test_split_and_cache_gauges(start_api: Callable[..., Api], keys: Keys) -> None:
    api = start_api(metrics_window_days=8)
    with_v1_signals(api)
    samples = scrape(api, keys.viewer)
    llama = frozenset({("project", "chatbot"), ("team", "coreai"), ("environment", "prod"), ("model_id", "llama-70b")})
    assert samples[("finops_cost_per_1m_prompt_tokens", llama)] == pytest.approx(5.0)  # 60.00 / 12M tokens
    assert samples[("finops_cost_per_1m_generation_tokens", llama)] == pytest.approx(45.0)  # 180.00 / 4M
    assert sum(series(samples, "finops_cache_savings").values()) == pytest.approx(28.0)  # 20.00 + 8.00


def test_the_weekly_workbook_has_a_models_sheet(start_api: Callable[..., Api], keys: Keys) -> None:
    api = start_api()
    with_v1_signals(api)
    r = api.get("/v1/reports/weekly", keys.finance, params={"week": WEEK, "format": "xlsx"})
    assert r.status_code == 200
    ws = load_workbook(io.BytesIO(r.content))["models"]
    header = [c.value for c in ws[1]]
    rows = {row[0]: dict(zip(header, row, strict=True)) for row in ws.iter_rows(min_row=2, values_only=True)}
    assert rows["llama-70b"]["prompt_cost"] == 60 and rows["llama-70b"]["generation_cost"] == 180
    assert rows["llama-70b"]["cache_savings"] == 20 and rows["llama-70b"]["split_basis"] == "prefill_decode_time"
    assert rows["mistral-7b"]["split_basis"] == "mixed"
