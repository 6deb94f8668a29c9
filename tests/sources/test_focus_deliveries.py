"""A FOCUS file's scope is what it covers, not its name.

Providers re-deliver a whole billing period while it is open, under a new name each time; a later
delivery of a period replaces the earlier one, whatever either file is called, and corrections of a
closed period, delivered in a later period's files, add to what the period billed. The drop folder
and `finops ingest focus` land the same deliveries the same way.
"""

from __future__ import annotations

import csv
import io
import os
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from finops.cli import app
from finops.collect import ingest_focus
from finops.reports import get
from finops.reports.params import build_params
from finops.scheduler.focus_drop import ingest_pending
from finops.settings import Settings
from finops.settings.schedule import FocusDropSettings
from finops.store import Store, open_store
from finops.tags import TagRules

HEADER = ["BillingAccountId", "ProviderName", "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd",
          "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeClass", "ServiceName", "ResourceId",
          "BilledCost", "EffectiveCost", "Tags"]
OCT, NOV, DEC = datetime(2026, 10, 1), datetime(2026, 11, 1), datetime(2026, 12, 1)
Line = tuple[datetime, str, str, str]  # (charge day, resource, cost, charge class)


def delivery(period: datetime, lines: list[Line], account: str = "111") -> str:
    """A FOCUS file of one billing period: daily lines of EC2 on `account`."""
    end = (period + timedelta(days=32)).replace(day=1)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(HEADER)
    for day, resource, cost, charge_class in lines:
        w.writerow([account, "AWS", "USD", period.isoformat() + "Z", end.isoformat() + "Z", day.isoformat() + "Z",
                    (day + timedelta(days=1)).isoformat() + "Z", "Usage", charge_class, "Amazon EC2", resource, cost,
                    cost, '{"team": "core"}'])
    return out.getvalue()


def month(start: datetime, costs: list[str], resource: str = "i-a") -> list[Line]:
    return [(start + timedelta(days=i), resource, c, "") for i, c in enumerate(costs)]


def totals(store: Store) -> dict[tuple[date, str], Decimal]:
    """Billed cost per (month charged, charge class)."""
    rows = store.query("SELECT CAST(date_trunc('month', charge_date) AS DATE), coalesce(charge_class, ''), "
                       "sum(billed_cost) FROM cost_lines GROUP BY ALL")
    return {(m, c): v for m, c, v in rows}


# Three deliveries of November, each more complete than the last; named so that neither the names'
# order nor their lengths tell which came last.
NOVEMBER = [
    ("export-zz.csv", month(NOV, ["10.00", "11.00"])),
    ("a.csv", month(NOV, ["10.00", "11.00", "12.50", "9.25"])),
    ("nov-final-mm.csv", month(NOV, ["10.00", "11.00", "12.50", "9.30", "8.01"])),
]
LAST = sum(Decimal(line[2]) for line in NOVEMBER[-1][1])


def test_a_month_delivered_three_times_under_different_names_counts_the_last(store: Store, rules: TagRules,
                                                                            tmp_path: Path) -> None:
    for name, lines in NOVEMBER:
        (tmp_path / name).write_text(delivery(NOV, lines))
        [r] = ingest_focus(store, rules, [tmp_path / name])
        assert r.status == "succeeded", r.error
    assert totals(store) == {(NOV.date(), ""): LAST}
    assert store.query("SELECT count(*) FROM cost_lines")[0][0] == len(NOVEMBER[-1][1])
    # Ingesting an earlier delivery again makes it the latest: the period is what the last file said.
    [r] = ingest_focus(store, rules, [tmp_path / NOVEMBER[0][0]])
    assert totals(store) == {(NOV.date(), ""): Decimal("21.00")}


def test_other_accounts_and_periods_are_their_own_scopes(store: Store, rules: TagRules, tmp_path: Path) -> None:
    (tmp_path / "oct.csv").write_text(delivery(OCT, month(OCT, ["5.00"])))
    (tmp_path / "nov-111.csv").write_text(delivery(NOV, month(NOV, ["7.00"])))
    (tmp_path / "nov-222.csv").write_text(delivery(NOV, month(NOV, ["3.00"]), account="222"))
    ingest_focus(store, rules, [tmp_path / n for n in ("oct.csv", "nov-111.csv", "nov-222.csv")])
    (tmp_path / "nov-111-again.csv").write_text(delivery(NOV, month(NOV, ["7.50"])))
    ingest_focus(store, rules, [tmp_path / "nov-111-again.csv"])
    by_account = dict(store.query("SELECT billing_account_id || ' ' || CAST(charge_date AS VARCHAR), "
                                  "sum(billed_cost) FROM cost_lines GROUP BY ALL"))
    assert by_account == {"111 2026-10-01": Decimal("5.00"), "111 2026-11-01": Decimal("7.50"),
                          "222 2026-11-01": Decimal("3.00")}


def test_a_closed_month_corrected_by_a_later_delivery(store: Store, settings: Settings, rules: TagRules,
                                                      tmp_path: Path) -> None:
    october = month(OCT, ["100.00", "100.00", "100.00"])
    (tmp_path / "oct.csv").write_text(delivery(OCT, october))
    # November's bill carries its own usage and two corrections of October: a refund of part of
    # 2 October and usage of 3 October that arrived late.
    november = month(NOV, ["50.00"]) + [(OCT + timedelta(days=1), "i-a", "-20.00", "Correction"),
                                        (OCT + timedelta(days=2), "i-b", "7.25", "Correction")]
    (tmp_path / "nov.csv").write_text(delivery(NOV, november))
    for name in ("oct.csv", "nov.csv"):
        [r] = ingest_focus(store, rules, [tmp_path / name])
        assert r.status == "succeeded", r.error
    expected = {(OCT.date(), ""): Decimal("300.00"), (OCT.date(), "Correction"): Decimal("-12.75"),
                (NOV.date(), ""): Decimal("50.00")}
    assert totals(store) == expected
    # October delivered again (it is closed: the same lines) replaces October, never the corrections.
    (tmp_path / "oct-redelivered.csv").write_text(delivery(OCT, october))
    ingest_focus(store, rules, [tmp_path / "oct-redelivered.csv"])
    assert totals(store) == expected
    # November re-delivered with a revised correction replaces November's corrections with it.
    november[1] = (OCT + timedelta(days=1), "i-a", "-25.00", "Correction")
    (tmp_path / "nov-2.csv").write_text(delivery(NOV, november))
    ingest_focus(store, rules, [tmp_path / "nov-2.csv"])
    assert totals(store)[(OCT.date(), "Correction")] == Decimal("-17.75")

    # Reports count the corrections in the month they correct, and the bill check shows them as such.
    params = build_params(start="2026-10-01", end="2026-12-01", cost_basis="billed")
    ue = get("unit-economics")(store, settings, params)
    assert ue.totals["cost"] == Decimal("300.00") - Decimal("17.75") + Decimal("50.00")
    check = get("bill-check")(store, settings, params)
    by_month = {r["period_start"]: r for r in check.rows}
    assert by_month[OCT.date()]["cost"] == Decimal("282.25")
    assert by_month[OCT.date()]["corrections_cost"] == Decimal("-17.75")
    assert by_month[NOV.date()]["corrections_cost"] == 0
    assert sorted((c["resource_id"], c["delivered_in"], c["cost"]) for c in check.tables["corrections"]) == [
        ("i-a", NOV.date(), Decimal("-25.00")), ("i-b", NOV.date(), Decimal("7.25"))]


def _stored(db: Path) -> list[tuple[object, ...]]:
    store = open_store(db)
    try:
        return sorted(store.query("SELECT scope, charge_date, resource_id, billed_cost, charge_class FROM cost_lines"),
                      key=repr)
    finally:
        store.close()


def test_the_drop_folder_and_the_ingest_command_land_deliveries_alike(tmp_path: Path,
                                                                     migrated: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    for i, (name, lines) in enumerate(NOVEMBER):
        path = drop / name
        path.write_text(delivery(NOV, lines))
        os.utime(path, (1_800_000_000 + i * 3600, 1_800_000_000 + i * 3600))  # delivered in this order
    by_folder, by_command = Settings(db=tmp_path / "folder.duckdb"), Settings(db=tmp_path / "command.duckdb")
    for s in (by_folder, by_command):
        (tmp_path / s.db.name).write_bytes(migrated.read_bytes())
    store = open_store(by_folder.db)
    try:
        results = ingest_pending(store, FocusDropSettings(folder=drop, settle_seconds=0),
                                 TagRules.from_settings(by_folder), now=1_900_000_000)
        assert [r.status for r in results] == ["succeeded"] * 3
    finally:
        store.close()
    env = {"FINOPS_DB": str(by_command.db)}
    for name, _ in NOVEMBER:  # the order they were delivered in
        result = CliRunner().invoke(app, ["ingest", "focus", str(drop / name)], env=env)
        assert result.exit_code == 0, result.output
    assert _stored(by_folder.db) == _stored(by_command.db)
    assert sum(row[3] for row in _stored(by_folder.db)) == LAST  # type: ignore[misc]
