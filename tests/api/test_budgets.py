"""/v1/budgets over HTTP and `finops budgets` on the store: create, read, replace, delete, the
checks on what a budget states, the change log, and the budgets report following every change."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finops.cli import app
from finops.settings import Settings
from finops.store import open_store
from finops.store.budgets import list_budgets
from tests.api.conftest import Api, Keys
from tests.api.test_health_metrics_alerts import scrape


def test_a_budget_is_created_read_replaced_and_deleted(api: Api, keys: Keys) -> None:
    with api.client(keys.finance) as fin, api.client(keys.viewer) as viewer:
        made = fin.post("/v1/budgets", json={"name": "core.ai-1", "filters": {"team": " CoreAI "}, "amount": "500.10",
                                             "period": "quarter", "actual_thresholds": [100, 50, 50.5]})
        assert made.status_code == 201, made.text
        body = made.json(parse_float=Decimal)
        assert body["filters"] == {"team": "coreai"} and body["amount"] == Decimal("500.10")
        assert body["actual_thresholds"] == [50, Decimal("50.5"), 100] and body["forecast_thresholds"] == [100]
        assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")
        assert fin.post("/v1/budgets", json={"name": "core.ai-1", "amount": "1"}).status_code == 409
        assert viewer.get("/v1/budgets/core.ai-1").json()["period"] == "quarter"
        # The budgets report follows a change at once: no collection ran in between.
        before = viewer.get("/v1/reports/budgets").json()["rows"]
        assert [r["amount"] for r in before] == [500.1]
        replaced = fin.put("/v1/budgets/core.ai-1", json={"amount": "250", "filters": {"team": "coreai"}})
        assert replaced.status_code == 200 and replaced.json()["period"] == "month"
        assert [r["amount"] for r in viewer.get("/v1/reports/budgets").json()["rows"]] == [250]
        assert viewer.put("/v1/budgets/core.ai-1", json={"amount": "1"}).status_code == 403
        assert fin.delete("/v1/budgets/core.ai-1").status_code == 204
        assert fin.delete("/v1/budgets/core.ai-1").status_code == 404
        assert viewer.get("/v1/budgets").json() == []
    log = api.store.query("SELECT name, action, key_id FROM budget_changes ORDER BY rowid")
    finance_id = keys.finance.split("_")[1]
    assert [(a, k) for _, a, k in log] == [("create", finance_id), ("update", finance_id), ("delete", finance_id)]


@pytest.mark.parametrize(("body", "param"), [
    ({"name": "x", "amount": "0"}, "amount"),
    ({"name": "x", "amount": "10", "filters": {"owner": "me"}}, "filters"),
    ({"name": "x", "amount": "10", "filters": {"team": "__untagged__"}}, "filters"),
    ({"name": "x", "amount": "10", "period": "week"}, "period"),
    ({"name": "x", "amount": "10", "forecast_thresholds": [0]}, "forecast_thresholds"),
    ({"name": "../x", "amount": "10"}, "name"),
    ({"name": "x ", "amount": "10"}, "name"),
    ({"name": "x", "amount": "10", "currency": "usd"}, "currency"),
    ({"name": "x", "amount": "10", "surprise": 1}, "surprise"),
])
def test_what_a_budget_states_is_checked(api: Api, keys: Keys, body: dict[str, object], param: str) -> None:
    with api.client(keys.admin) as admin:
        r = admin.post("/v1/budgets", json=body)
    assert r.status_code == 422, r.text
    assert param in r.text


def test_the_cli_sets_lists_and_deletes_budgets(settings: Settings, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_DB", str(settings.db))
    cli = CliRunner()
    made = cli.invoke(app, ["budgets", "set", "search", "--project", "Search", "--amount", "1200.50",
                            "--actual", "75", "--actual", "100", "--max-cost-per-1k", "0.02"])
    assert made.exit_code == 0, made.output
    assert cli.invoke(app, ["budgets", "set", "bad", "--amount", "ten"]).exit_code == 2
    assert cli.invoke(app, ["budgets", "set", "bad", "--amount", "10", "--period", "year"]).exit_code == 2
    listed = cli.invoke(app, ["budgets", "list"])
    assert listed.exit_code == 0 and "project=search" in listed.output and "1200.50 USD" in listed.output
    store = open_store(settings.db)
    try:
        [b] = list_budgets(store)
    finally:
        store.close()
    assert (b.amount, b.actual_thresholds, b.max_cost_per_1k_generated_tokens) == (
        Decimal("1200.50"), [75, 100], Decimal("0.02"))
    assert cli.invoke(app, ["budgets", "delete", "search"]).exit_code == 0
    assert cli.invoke(app, ["budgets", "delete", "search"]).exit_code == 1


def test_budget_gauges_on_metrics_equal_the_budgets_report(api: Api, keys: Keys) -> None:
    with api.client(keys.finance) as fin:
        assert fin.post("/v1/budgets", json={"name": "coreai", "filters": {"team": "coreai"},
                                             "amount": "300"}).status_code == 201
        report = fin.get("/v1/reports/budgets").json(parse_float=Decimal)
    [row] = report["rows"]
    assert row["actual_cost"] > 0  # example A's coreai spend on 2 November, in November's budget
    samples = scrape(api, keys.viewer)
    label = frozenset({("budget", "coreai")})
    assert samples[("finops_budget_amount", label)] == 300
    assert samples[("finops_budget_actual_cost", label)] == float(row["actual_cost"])
    assert samples[("finops_budget_forecast_cost", label)] == float(row["forecast_cost"])
    assert samples[("finops_anomalies", frozenset({("metric", "cost")}))] == 0  # one day: no history to leave
    assert samples[("finops_kpi_up", frozenset({("report", "budgets")}))] == 1
