"""FOCUS ingest: the real FinOps Foundation sample, re-ingest, quarantine and unreadable files."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from finops.collect import ingest_focus
from finops.sources.focus import BATCH_ROWS, open_focus_file
from finops.store import Store
from finops.tags import TagRules
from tests.conftest import FOCUS_SAMPLE

HEADER = ("BilledCost,EffectiveCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,"
          "ServiceName,BillingAccountId,ProviderName,ResourceId,Tags")


def _snapshot(store: Store) -> dict[str, list[tuple[object, ...]]]:
    tables = ["cost_lines", "cost_daily", "quarantine"]
    return {t: sorted(map(tuple, store.query(f"SELECT * FROM {t}")), key=repr) for t in tables}


def _raw_sums_per_provider() -> dict[str, Decimal]:
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT ProviderName, sum(CAST(BilledCost AS DECIMAL(38,12))) FROM read_csv('{FOCUS_SAMPLE}', "
        "all_varchar=true) GROUP BY 1"
    ).fetchall()
    return {p: s for p, s in rows}


def _stored_sums(store: Store) -> dict[str, Decimal]:
    return dict(store.query("SELECT provider_name, sum(billed_cost) FROM cost_lines GROUP BY 1"))


def test_sample_file_ingests_with_every_row_accounted_for(store: Store, rules: TagRules) -> None:
    [result] = ingest_focus(store, rules, [FOCUS_SAMPLE])
    assert result.status == "succeeded", result.error
    assert result.rows + result.quarantined == 1000
    assert _stored_sums(store) == _raw_sums_per_provider()
    assert store.query("SELECT sum(billed_cost) FROM cost_daily") == store.query("SELECT sum(billed_cost) FROM cost_lines")
    # Quirks: NULL literals, space-separated UTC timestamps, the extra Id column.
    assert store.query("SELECT count(*) FROM cost_lines WHERE tags IS NULL")[0][0] == 289
    assert store.query("SELECT min(charge_period_start) FROM cost_lines")[0][0].year == 2024


def test_reingesting_the_same_file_replaces_never_doubles(store: Store, rules: TagRules) -> None:
    ingest_focus(store, rules, [FOCUS_SAMPLE])
    first = _snapshot(store)
    [again] = ingest_focus(store, rules, [FOCUS_SAMPLE])
    assert again.status == "succeeded"
    second = _snapshot(store)
    assert _stored_sums(store) == _raw_sums_per_provider()
    assert store.query("SELECT count(*) FROM cost_lines")[0][0] == 1000
    # Only the run id differs.
    strip = lambda rows: sorted((r[1:] for r in rows), key=repr)  # noqa: E731
    assert strip(first["cost_lines"]) == strip(second["cost_lines"])
    assert first["cost_daily"] == second["cost_daily"]


def test_sample_tags_are_normalised_through_aliases(tmp_path: Path, store: Store) -> None:
    rules = TagRules.build(["project", "team", "environment", "model_id"],
                           extra_aliases={"project": ["application"], "team": ["business_unit"]})
    ingest_focus(store, rules, [FOCUS_SAMPLE])
    row = store.query(
        "SELECT project, team, environment FROM cost_lines WHERE tags LIKE '%BrightLensMatrix%' LIMIT 1")
    assert row == [("brightlensmatrix", "viennaai", "dev")]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_bad_rows_are_quarantined_with_line_and_reason(tmp_path: Path, store: Store, rules: TagRules) -> None:
    lines = [
        HEADER,
        '10.5,10.5,USD,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z,Usage,EC2,acct,AWS,i-1,"{""Project"": ""a""}"',
        "abc,1,USD,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z,Usage,EC2,acct,AWS,i-2,",
        "1,1,USD,yesterday,2026-11-03T00:00:00Z,Usage,EC2,acct,AWS,i-3,",
        "NaN,1,USD,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z,Usage,EC2,acct,AWS,i-4,",
        "1,1,XYZ,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z,Usage,EC2,acct,AWS,i-5,",
        "1,1,USD,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z,Usage,EC2,acct,AWS,i-6,{not json",
        "1,1,USD,2026-11-02T00:00:00Z",
        "-3.25,-3.25,USD,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z,Credit,EC2,acct,AWS,,",
    ]
    path = _write(tmp_path / "bad.csv", "\n".join(lines) + "\n")
    [r] = ingest_focus(store, rules, [path])
    assert r.status == "succeeded"
    assert (r.rows, r.quarantined) == (2, 6)
    reasons = dict(store.query("SELECT line, reason FROM quarantine ORDER BY line"))
    assert set(reasons) == {3, 4, 5, 6, 7, 8}
    assert "BilledCost: not a finite number" in reasons[3]
    assert "ChargePeriodStart: not a timestamp" in reasons[4]
    assert "BilledCost" in reasons[5]
    assert "unknown currency XYZ" in reasons[6]
    assert "Tags: invalid JSON" in reasons[7]
    assert "unreadable CSV row" in reasons[8]
    # The negative credit is valid and kept.
    assert store.query("SELECT sum(billed_cost) FROM cost_lines")[0][0] == Decimal("7.25")


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("empty.csv", "", "the file is empty"),
        ("header_only.csv", HEADER + "\n", "no rows"),
        ("wrong_header.csv", "date,amount,currency\n2026-11-02,1.0,USD\n", "not a FOCUS file: missing required column(s) BilledCost"),
        ("dupes.csv", HEADER + ",BilledCost\n", "duplicate column(s) in the header: BilledCost"),
        ("truncated.csv",
         HEADER + "\n1,1,USD,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z,Usage,EC2,acct,AWS,i-1,\n1,1,US",
         "truncated"),
    ],
)
def test_unreadable_files_fail_clearly_and_change_nothing(tmp_path: Path, store: Store, rules: TagRules,
                                                          name: str, content: str, message: str) -> None:
    ingest_focus(store, rules, [FOCUS_SAMPLE])
    before = _snapshot(store)
    [r] = ingest_focus(store, rules, [_write(tmp_path / name, content)])
    assert r.status == "failed"
    assert message in (r.error or "")
    assert _snapshot(store) == before
    assert store.query("SELECT status, error FROM source_runs WHERE run_id = ?", [r.run_id])[0][0] == "failed"


def test_truncated_gzip_fails_and_changes_nothing(tmp_path: Path, store: Store, rules: TagRules) -> None:
    full = tmp_path / "full.csv.gz"
    full.write_bytes(gzip.compress(FOCUS_SAMPLE.read_bytes()))
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    [ok] = ingest_focus(store, rules, [full])
    assert ok.status == "succeeded" and ok.rows == 1000
    before = _snapshot(store)
    [r] = ingest_focus(store, rules, [cut])
    assert r.status == "failed"
    assert _snapshot(store) == before


def test_parquet_and_focus_1_3_provider_column(tmp_path: Path, store: Store, rules: TagRules) -> None:
    con = duckdb.connect()
    path = tmp_path / "focus13.parquet"
    con.execute(
        f"""COPY (SELECT 12.5::DECIMAL(18,6) AS BilledCost, 10.0::DECIMAL(18,6) AS EffectiveCost, 'USD' AS BillingCurrency,
               TIMESTAMP '2026-11-02 00:00:00' AS ChargePeriodStart, TIMESTAMP '2026-11-03 00:00:00' AS ChargePeriodEnd,
               'Usage' AS ChargeCategory, 'Virtual Machines' AS ServiceName, 'ba' AS BillingAccountId,
               'Microsoft' AS ServiceProviderName, 'Old' AS ProviderName, 1 AS x_Custom,
               '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/VM-3' AS ResourceId,
               '{{"Project": "Search"}}' AS Tags) TO '{path}' (FORMAT parquet)"""
    )
    [r] = ingest_focus(store, rules, [path])
    assert r.status == "succeeded", r.error
    assert store.query("SELECT provider_name, resource_key, project, billed_cost, effective_cost FROM cost_lines") == [
        ("Microsoft", "vm-3", "search", Decimal("12.5"), Decimal("10"))
    ]


def test_bad_rows_of_every_batch_are_quarantined_as_the_rows_stream(tmp_path: Path, store: Store,
                                                                     rules: TagRules) -> None:
    """The rows are checked as they stream to the store, a batch at a time: bad rows in the first,
    a middle and the last batch all reach the quarantine with their row, the others land, and the
    quarantine is complete once the rows have been read."""
    n = 2 * BATCH_ROWS + 100
    bad = [1, BATCH_ROWS + 7, n]
    path = tmp_path / "big.parquet"
    duckdb.connect().execute(
        f"""COPY (SELECT CASE WHEN i IN ({", ".join(map(str, bad))}) THEN 'abc' ELSE '0.25' END AS BilledCost,
                  '0.25' AS EffectiveCost, 'USD' AS BillingCurrency,
                  TIMESTAMP '2026-11-02 00:00:00' + to_hours(i % 48) AS ChargePeriodStart,
                  TIMESTAMP '2026-11-02 01:00:00' + to_hours(i % 48) AS ChargePeriodEnd, 'Usage' AS ChargeCategory,
                  'EC2' AS ServiceName, 'acct' AS BillingAccountId, 'AWS' AS ProviderName, 'i-' || i AS ResourceId,
                  NULL AS Tags FROM range(1, {n + 1}) t(i)) TO '{path}' (FORMAT parquet)""")
    opened = open_focus_file(path, rules)
    rows = opened.rows.read_all()
    assert rows.num_rows == n - len(bad)
    assert [(q["line"], q["reason"]) for q in opened.quarantine] == [
        (i, "BilledCost: not a finite number within DECIMAL(38,12): abc") for i in bad]
    [r] = ingest_focus(store, rules, [path])
    assert (r.status, r.rows, r.quarantined) == ("succeeded", n - len(bad), len(bad)), r.error
    assert [line for (line,) in store.query("SELECT line FROM quarantine ORDER BY line")] == bad
    assert store.query("SELECT sum(billed_cost) FROM cost_lines") == [(Decimal("0.25") * (n - len(bad)),)]


def test_quarantined_lines_are_the_file_lines_when_values_span_lines(tmp_path: Path, store: Store,
                                                                     rules: TagRules) -> None:
    """DuckDB counts a CSV's records as lines; a quoted value over two lines shifts every line after
    it, for the records DuckDB rejects and for rows with bad values alike."""
    row = "2026-11-02T00:00:00Z,2026-11-02T01:00:00Z,Usage,EC2,acct,AWS"
    lines = [
        HEADER,
        f'1,1,USD,{row},"i-1\non two lines",',  # lines 2-3
        "1,1,USD,2026-11-02T00:00:00Z",  # line 4: too few columns
        f"abc,1,USD,{row},i-2,",  # line 5
        f"2,1,USD,{row},i-3,",
        f"2,1,XYZ,{row},i-4,",  # line 7
    ]
    path = _write(tmp_path / "spanning.csv", "\n".join(lines) + "\n")
    [r] = ingest_focus(store, rules, [path])
    assert (r.status, r.rows, r.quarantined) == ("succeeded", 2, 3), r.error
    reasons = dict(store.query("SELECT line, reason FROM quarantine ORDER BY line"))
    assert sorted(reasons) == [4, 5, 7]
    assert reasons[4].startswith("unreadable CSV row")
    assert reasons[5].startswith("BilledCost") and "unknown currency XYZ" in reasons[7]
