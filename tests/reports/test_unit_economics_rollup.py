"""The weekly report's tables by team, project and model are summed in Python from one pass of unit
economics: the sums must be DuckDB's, to the last of the 12 places."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from finops.reports.unit_economics import SUMMED, _rollup

# Usage costs as the query leaves them for rollups: hour cost (12 places) x busy (12 places).
usage = st.decimals(min_value=Decimal("-1000"), max_value=Decimal("100000"), places=24, allow_nan=False)
row = st.tuples(st.sampled_from(["core", "platform", "__unallocated__"]), st.sampled_from(["chat", "search"]), usage,
                st.decimals(min_value=Decimal("-5"), max_value=Decimal("500"), places=12, allow_nan=False),
                st.one_of(st.none(), st.integers(0, 10**12)))


@settings(max_examples=40)
@given(rows=st.lists(row, min_size=1, max_size=30))
def test_rolled_up_usage_cost_and_order_are_duckdbs(rows: list[tuple[str, str, Decimal, Decimal, int | None]]) -> None:
    period = date(2026, 11, 2)
    raw = [{"period": period, "team": team, "project": project, "usage_cost": u, "cost": cost,
            "cached_prompt_tokens": cached, "busy_sum": Decimal("0.5"),
            **{k: 1 for k in SUMMED if k not in ("usage_cost", "cost")}}
           for team, project, u, cost, cached in rows]
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE r (team VARCHAR, project VARCHAR, u DECIMAL(38,24), cost DECIMAL(38,12), c BIGINT)")
        con.executemany("INSERT INTO r VALUES (?, ?, ?, ?, ?)", [list(r) for r in rows])
        expected = con.execute("""
            SELECT team, CAST(sum(u) AS DECIMAL(38,12)), sum(cost), sum(c)::BIGINT, count(*) FROM r GROUP BY team
            ORDER BY team = '__unallocated__', sum(cost) DESC, team""").fetchall()
    finally:
        con.close()
    got = _rollup(raw, ("team",))
    assert [(r["team"], r["usage_cost"], r["cost"], r["cached_prompt_tokens"], r["requests"]) for r in got] == expected
