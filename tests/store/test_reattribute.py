"""Attribution kept at landing is brought up to date after a policy change: by `finops db
reattribute`, and by `finops serve` at start; until then reports compute it and stay right."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from finops.attribution.materialize import state
from finops.cli import app
from finops.reports import get
from finops.reports.params import build_params
from finops.scheduler.jobs import Jobs
from finops.settings import Settings
from finops.settings.schedule import ScheduleSettings
from finops.store import Store, open_store
from finops.store.migrate import upgrade
from finops.tags import TagRules
from tests.support import example_a

WINDOW = {"start": example_a.DAY.date(), "end": example_a.DAY.date().replace(day=example_a.DAY.day + 1)}


def _kept(store: Store) -> tuple[str, bool, int]:
    with store.transaction() as cur:
        st = state(cur)
        [(rows,)] = cur.execute("SELECT count(*) FROM attr_alloc").fetchall()
    return st.shared_cost_key, st.complete, rows


def _cost_by_team(store: Store, s: Settings) -> dict[str, object]:
    params = build_params(group_by="team", shared_cost_key=s.shared_cost_key, **WINDOW)
    return {r["team"]: r["cost"] for r in get("unit-economics")(store, s, params).rows}


def test_db_reattribute_rebuilds_under_the_configured_key_once(settings: Settings, rules: TagRules,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(settings.db, settings.duckdb)
    example_a.load(store, rules, tmp_path)
    assert _kept(store)[:2] == ("gpu_hours", True)
    store.close()
    monkeypatch.setenv("FINOPS_DB", str(settings.db))
    monkeypatch.setenv("FINOPS_SHARED_COST_KEY", "even")

    first = CliRunner().invoke(app, ["db", "reattribute"])
    assert first.exit_code == 0, first.output
    assert "1 day(s) attributed under shared_cost_key=even" in first.output
    second = CliRunner().invoke(app, ["db", "reattribute"])
    assert second.exit_code == 0, second.output
    assert "already up to date (shared_cost_key=even, idle_threshold=0.05)" in second.output

    store = open_store(settings.db, settings.duckdb)
    try:
        key, complete, rows = _kept(store)
        assert (key, complete) == ("even", True) and rows > 0
    finally:
        store.close()


def test_the_service_reattributes_at_start_and_reports_are_right_meanwhile(settings: Settings, store: Store,
                                                                            rules: TagRules, tmp_path: Path) -> None:
    example_a.load(store, rules, tmp_path)
    even = settings.model_copy(update={"shared_cost_key": "even"})
    with store.transaction() as cur:
        cur.execute("UPDATE attr_state SET complete = false")
    expected = _cost_by_team(store, even)  # computed from the facts
    jobs = Jobs(store, even, ScheduleSettings(enabled=False))
    assert jobs.attribution_outdated()
    assert jobs.run_reattribute() == 1
    assert not jobs.attribution_outdated()
    assert _kept(store)[:2] == ("even", True)
    assert _cost_by_team(store, even) == expected  # now read from the kept tables


def test_upgrading_a_store_that_holds_facts_waits_for_a_rebuild(settings: Settings) -> None:
    store = open_store(settings.db, settings.duckdb, migrate=False)
    try:
        upgrade(store, "0004")  # the schema before attribution was kept
        with store.transaction() as cur:
            cur.execute("INSERT INTO cost_daily (charge_date, source, scope, provider_name, billing_currency, project, "
                        "team, environment, model_id, billed_cost, effective_cost, committed_cost, estimated, lines) "
                        "VALUES (?, 'focus', 'f', 'AWS', 'USD', 'p', 't', 'e', 'm', 5, 5, 0, false, 1)",
                        [WINDOW["start"]])
        upgrade(store)
        assert _kept(store) == ("gpu_hours", False, 0)
        assert _cost_by_team(store, settings) == {"t": 5}  # computed from the facts meanwhile
        assert Jobs(store, settings, ScheduleSettings(enabled=False)).run_reattribute() == 1
        assert _kept(store) == ("gpu_hours", True, 1)
        assert _cost_by_team(store, settings) == {"t": 5}
    finally:
        store.close()


def test_a_restated_bill_reattributes_only_the_days_it_changed(store: Store, rules: TagRules, tmp_path: Path) -> None:
    from datetime import timedelta

    from finops.sources.focus import open_focus_file
    from finops.store.ledger import start_run
    from finops.store.load import replace_window

    days = [example_a.DAY + timedelta(days=i) for i in range(3)]
    bill = tmp_path / "bill.csv"

    def write(bills: list[list]) -> None:  # type: ignore[type-arg]
        parts = [example_a.focus_csv(day, b).splitlines() for day, b in zip(days, bills, strict=True)]
        bill.write_text("\n".join(parts[0] + [line for p in parts[1:] for line in p[1:]]) + "\n")

    def land() -> set[object]:
        run_id = start_run(store, "focus", str(bill), None)
        with store.transaction() as cur:
            landed = replace_window(cur, "cost_lines", run_id=run_id, source="focus", scope=str(bill), window=None,
                                    data=open_focus_file(bill, rules).rows)
        return set(landed.days)

    write([example_a.BILL] * 3)
    assert land() == {d.date() for d in days}  # new: every day
    assert land() == set()  # the same bill again: no day changed
    restated = [(*line[:4], "241.00") if i == 0 else line for i, line in enumerate(example_a.BILL)]
    write([example_a.BILL, restated, example_a.BILL])
    assert land() == {days[1].date()}  # one line of the middle day changed
