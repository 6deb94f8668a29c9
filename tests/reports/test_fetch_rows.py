"""A report's rows as Python values: the same values, types and digits as pyarrow's own conversion."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb

from finops.reports.model import fetch_rows


def test_rows_carry_the_values_pyarrow_gives_dates_and_decimals_included(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "rows.duckdb"))
    # Days repeat (a report's periods), some are NULL; so are some amounts.
    con.execute("""
        CREATE TABLE t AS SELECT i,
            CASE WHEN i % 7 = 0 THEN NULL ELSE DATE '2026-11-01' + CAST(i % 40 AS INTEGER) END AS day,
            CASE WHEN i % 11 = 0 THEN NULL ELSE CAST(i / 3 AS DECIMAL(38,12)) END AS cost,
            CAST(-i / 100 AS DECIMAL(18,2)) AS credit, 'g' || (i % 5) AS grp
        FROM range(20000) r(i)""")
    sql = "SELECT * FROM t ORDER BY i"
    rows = fetch_rows(con, sql)
    expected = con.sql(sql).to_arrow_table().to_pylist()
    assert len(rows) == len(expected) == 20000
    assert rows == expected
    # Same digits and exponents, not only equal numbers; dates are dates, NULLs None.
    assert [str(r["cost"]) for r in rows[:50]] == [str(r["cost"]) for r in expected[:50]]
    assert rows[1]["day"] == date(2026, 11, 2) and rows[0]["day"] is None and rows[0]["cost"] is None
    assert rows[3]["cost"] == Decimal("1.000000000000") and rows[3]["credit"] == Decimal("-0.03")
