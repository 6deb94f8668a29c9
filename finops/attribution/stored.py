"""Reports read attribution from the attr_* tables kept at landing, through the att_* names.

`attribute_stored` gives a report the same att_* relations `attribute` builds, as temp views over
the stored tables for the report's window, cost basis and idle threshold. It computes attribution on
the fly instead (same result, slower) when the stored tables cannot answer: another shared-cost key
than the one stored, a rebuild not finished, or amounts that need converting into another currency.
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal

import duckdb

from finops.attribution import sql
from finops.attribution.engine import Attribution, attribute, resolve_rates
from finops.attribution.materialize import state
from finops.attribution.query import Query
from finops.settings import Settings

log = logging.getLogger(__name__)

BASES = ("effective", "billed")

# The att_* relations reports read; `{b}` is the cost basis, `{w}` the window, `{idle}` the threshold.
VIEWS = {
    "att_line": """SELECT *, cost_{b} AS cost, recoverable_{b} AS recoverable FROM attr_line WHERE {w}""",
    "att_cost": """SELECT * FROM att_line""",
    "att_alloc": """SELECT *, amount_{b} AS amount FROM attr_alloc WHERE {w}""",
    "att_tok": """SELECT * FROM attr_tok WHERE {w}""",
    "att_gpu": """SELECT * FROM attr_gpu WHERE {w}""",
    "att_inv": """SELECT resource_key, max(project) AS project, max(team) AS team, max(environment) AS environment,
                  max(model_id) AS model_id, max(instance_type) AS instance_type, max(gpu_count) AS gpu_count
                  FROM inventory GROUP BY resource_key""",
    "att_gpu_cost": """SELECT *, hour_cost_{b} AS hour_cost, len(list_filter(busy_hourly, lambda x: x < {idle}))
                       AS idle_hours FROM attr_gpu WHERE {w}""",
}
# GPU-hours, for reports that need them (`hourly`): the priced GPU-days' hours, as attribution lays them out.
HOURS = {"att_gpu_hours": sql.GPU_HOURS_SELECT}
def _date(d: date) -> str:
    return f"DATE '{date.fromordinal(d.toordinal()).isoformat()}'"  # a real date, so no quote can get in


def _catalog(cur: duckdb.DuckDBPyConnection) -> tuple[bool, dict[str, str]]:
    """Whether the store keeps attribution (a lake replica has only the facts), and the att_*
    relations an earlier attribution left on this cursor, with their kind (VIEW or table)."""
    rows = cur.execute("SELECT table_name, 'TABLE', temporary FROM duckdb_tables() WHERE table_name = 'attr_state' "
                       "OR (temporary AND table_name LIKE 'att\\_%' ESCAPE '\\') UNION ALL "
                       "SELECT view_name, 'VIEW', true FROM duckdb_views() WHERE temporary AND view_name LIKE 'att\\_%' "
                       "ESCAPE '\\'").fetchall()
    kept = any(name == "attr_state" and not temporary for name, _, temporary in rows)
    return kept, {name: kind for name, kind, temporary in rows if temporary}


def _drop(cur: duckdb.DuckDBPyConnection, left: dict[str, str], kind: str) -> None:
    """Drop the relations of `kind` left on the cursor (a view cannot replace a table, nor the reverse)."""
    for name, k in left.items():
        if (k == "VIEW") == (kind == "VIEW"):
            cur.execute(f'DROP {"VIEW" if kind == "VIEW" else "TABLE"} "{name}"')


def usable(cur: duckdb.DuckDBPyConnection, params: Query, kept: bool = True) -> bool:
    """Whether the stored tables answer `params` (see the module's docstring for when they do not)."""
    if not kept:
        return False
    st = state(cur)
    return st.complete and st.shared_cost_key == params.shared_cost_key and params.cost_basis in BASES


def attribute_stored(cur: duckdb.DuckDBPyConnection, params: Query, settings: Settings,
                     hourly: bool = True) -> Attribution:
    """The att_* relations for `params` on `cur`, read from the stored tables when they can answer."""
    kept, left = _catalog(cur)
    if usable(cur, params, kept):
        window = [params.start, params.end]
        totals = cur.execute(f"SELECT billing_currency, sum(cost_{params.cost_basis}) FROM attr_line "  # noqa: S608
                             "WHERE day >= ? AND day < ? GROUP BY 1 ORDER BY 1", window).fetchall()
        currency, rates = resolve_rates([c for c, _ in totals], params, settings)
        if all(r == Decimal(1) for r in rates.values()):
            _drop(cur, left, "TABLE")
            fill = {"b": params.cost_basis, "ws": _date(params.start), "we": _date(params.end),
                    "idle": repr(float(params.idle_threshold))}
            fill["w"] = f"day >= {fill['ws']} AND day < {fill['we']}"
            views = {**VIEWS, **(HOURS if hourly else {})}
            cur.execute(";\n".join(f"CREATE OR REPLACE TEMP VIEW {name} AS {select.format(**fill)}"
                                    for name, select in views.items()))
            return Attribution(currency, sum((Decimal(t) for _, t in totals), Decimal(0)))
    # Another policy, a rebuild under way, or amounts to convert: attribution from the facts.
    log.debug("attribution computed on the fly for %s..%s", params.start, params.end)
    _drop(cur, left, "VIEW")
    return attribute(cur, params, settings, hourly=hourly)
