"""Invalid report parameters give a clear error naming the parameter and change nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from finops.reports.params import ParamError, build_params
from finops.settings import Settings
from finops.store import Store
from finops.tags import TagRules
from tests.support import example_a


@pytest.mark.parametrize(
    "kwargs,param,fragment",
    [
        ({"group_by": "project,region"}, "group_by", "unknown dimension(s) 'region'"),
        ({"group_by": "project;drop table x"}, "group_by", "unknown dimension"),
        ({"start": "2026-11-05", "end": "2026-11-03"}, "end", "must be after start"),
        ({"start": "2026-11-03", "end": "2026-11-03"}, "end", "must be after start"),
        ({"week": "2026-47"}, "week", "not an ISO week"),
        ({"week": "2026-W54"}, "week", "does not exist"),
        ({"week": "2026-W47", "start": "2026-11-01"}, "week", "not both"),
        ({"start": "yesterday"}, "start", "not a date"),
        ({"granularity": "hour"}, "granularity", "'day', 'week', 'month' or 'total'"),
        ({"cost_basis": "list"}, "cost_basis", "'effective' or 'billed'"),
        ({"scope": "gpu"}, "scope", "'all' or 'accelerator'"),
        ({"idle_threshold": 1.5}, "idle_threshold", "less than or equal to 1"),
        ({"required_tags": "owner"}, "required_tags", "unknown dimension"),
        ({"currency": "US Dollar"}, "currency", "not a currency code"),
        ({"start": "1990-01-01", "end": "2026-01-01"}, "end", "at most"),
    ],
)
def test_bad_parameters_name_the_parameter(kwargs: dict[str, str], param: str, fragment: str) -> None:
    with pytest.raises(ParamError) as exc:
        build_params(**kwargs)
    assert exc.value.param == param
    assert fragment in exc.value.message


def test_cli_rejects_injection_and_leaves_the_store_unchanged(store: Store, rules: TagRules, settings: Settings,
                                                              tmp_path: Path) -> None:
    example_a.load(store, rules, tmp_path)
    before = store.query("SELECT count(*), sum(billed_cost) FROM cost_lines")
    tables = store.query("SELECT table_name FROM information_schema.tables ORDER BY 1")
    store.close()
    proc = subprocess.run(
        [sys.executable, "-m", "finops", "report", "unit-economics", "--start", "2026-11-02", "--end",
         "2026-11-03", "--group-by", "project;drop table cost_lines"],
        env={"FINOPS_DB": str(settings.db), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "--group-by" in proc.stderr and "unknown dimension" in proc.stderr
    from finops.store import open_store

    again = open_store(settings.db, settings.duckdb)
    try:
        assert again.query("SELECT count(*), sum(billed_cost) FROM cost_lines") == before
        assert again.query("SELECT table_name FROM information_schema.tables ORDER BY 1") == tables
    finally:
        again.close()


def test_mixed_currencies_are_an_error_naming_them(store: Store, rules: TagRules, settings: Settings,
                                                   tmp_path: Path) -> None:
    from decimal import Decimal

    from finops.collect import ingest_focus
    from finops.reports import get

    path = tmp_path / "eur.csv"
    path.write_text(example_a.focus_csv(currency="EUR"))
    ingest_focus(store, rules, [path])
    example_a.load(store, rules, tmp_path)
    params = build_params(start="2026-11-02", end="2026-11-03")
    with pytest.raises(ParamError, match="EUR, USD") as exc:
        get("unit-economics")(store, settings, params)
    assert exc.value.param == "currency"
    with_rates = settings.model_copy(update={"currency_rates": {"EUR": Decimal("1.10")}, "report_currency": "USD"})
    report = get("unit-economics")(store, with_rates, params)
    assert report.currency == "USD"
    assert report.totals["cost"] == Decimal("534") + Decimal("534") * Decimal("1.10")


def test_a_weekly_report_whose_two_weeks_bill_in_different_currencies_asks_for_one(
        store: Store, rules: TagRules, settings: Settings, tmp_path: Path) -> None:
    """Both weeks are compared in one currency: the week before in EUR and this week in USD need
    `currency` (or rates), and with a rate the week before is converted."""
    from datetime import timedelta
    from decimal import Decimal

    from finops.collect import ingest_focus
    from finops.reports import get

    path = tmp_path / "eur.csv"
    path.write_text(example_a.focus_csv(day=example_a.DAY - timedelta(days=7), currency="EUR"))
    ingest_focus(store, rules, [path])
    example_a.load(store, rules, tmp_path)
    params = build_params(week="2026-W45")  # 2026-11-02..09; the week before holds the EUR bill
    with pytest.raises(ParamError, match="EUR, USD") as exc:
        get("weekly")(store, settings, params)
    assert exc.value.param == "currency"
    with_rates = settings.model_copy(update={"currency_rates": {"EUR": Decimal("1.10")}, "report_currency": "USD"})
    report = get("weekly")(store, with_rates, params)
    summary = {r["metric"]: r for r in report.tables["summary"]}
    assert report.currency == "USD"
    assert summary["total_cost"]["this_week"] == Decimal("534")
    assert summary["total_cost"]["previous_week"] == Decimal("534") * Decimal("1.10")
