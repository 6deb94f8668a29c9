"""Attribution kept at landing: re-attribute the days a landing touched into the attr_* tables.

Attribution is per UTC day (docs/definitions.md section 4: every step joins on the day), so the
days a landing touched can be attributed again on their own, in the landing's transaction, and
every other day's rows stay valid. The tables hold amounts in the billing currency for both cost
bases under one shared-cost key (`attr_state`); reports read them (finops/attribution/stored.py).

A store whose key differs from the configuration, or that held facts before these tables existed,
is brought up to date by `rebuild`, a chunk of days per transaction, resumable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import duckdb

from finops.attribution import sql
from finops.attribution.engine import run_stages
from finops.settings import SHARED_KEYS

# Days attributed in one statement run: bounds the temp tables' size during a rebuild.
CHUNK_DAYS = 31

# Table -> the SELECT that fills it from the temp tables of a run (columns in the table's order).
_COPY = {
    "attr_line": """SELECT line_id + $base, day, provider_name, billing_account_id, sub_account_id, service_name,
        region_id, resource_id, resource_key, resource_type, charge_category, pricing_category, billing_currency,
        project, team, environment, model_id, cost_effective, cost_billed, list_cost, committed_cost,
        recoverable_effective, recoverable_billed FROM (""" + sql.LINES_SELECT + ")",  # noqa: S608 - constants
    "attr_alloc": """SELECT line_id + $base, day, project, team, environment, model_id, step, amount_effective,
        amount_billed, list_amount, committed_amount FROM att_alloc""",
    "attr_tok": """SELECT day, rkey, namespace, pod, model_name, project, team, environment, model_id,
        prompt_tokens, generation_tokens, requests, cached_prompt_tokens, prefill_ms, decode_ms FROM att_tok""",
    "attr_gpu": """SELECT day, rkey, host, gpu_uuid, mig_instance, gpu_model, mig_profile, namespace, pod,
        project, team, environment, model_id, hour_cost_effective, hour_cost_billed, hours, busy_sum,
        busy_hourly, samples, gkey, time_share, hour_of_day FROM att_gpu_cost""",
    # A report's currencies and ingested total: a row per day and billing currency (migration 0013).
    "attr_day": """SELECT day, billing_currency, sum(cost_effective), sum(cost_billed) FROM att_cost GROUP BY ALL""",
}


def _daily_fill(basis: str, kept: bool = False) -> str:
    """Attribution per group and day in `basis` (migration 0014), from the temp tables of a run, idle
    hours counted at the stored threshold; or, `kept`, from the kept tables of days [$start, $end),
    idle hours below $idle."""
    span = "WHERE day >= $start AND day < $end"
    if kept:
        alloc = f"(SELECT *, amount_{basis} AS amount FROM attr_alloc {span})"  # noqa: S608 - constants
        gpu = (f"(SELECT *, hour_cost_{basis} AS hour_cost, "  # noqa: S608 - constants
               f"len(list_filter(busy_hourly, lambda x: x < $idle)) AS idle_hours FROM attr_gpu {span})")
        tok = f"(SELECT * FROM attr_tok {span})"  # noqa: S608 - constants
    else:
        alloc = f"(SELECT * REPLACE (amount_{basis} AS amount) FROM att_alloc)"  # noqa: S608 - constants
        gpu = f"(SELECT * REPLACE (hour_cost_{basis} AS hour_cost) FROM att_gpu_cost)"  # noqa: S608 - constants
        tok = "att_tok"
    summed = sql.DAILY_SELECT.format(alloc=alloc, tok=tok, gpu=gpu)
    return f"INSERT INTO attr_daily BY NAME SELECT '{basis}' AS basis, * FROM ({summed})"  # noqa: S608 - constants


_DAILY = tuple(_daily_fill(basis) for basis in ("effective", "billed"))
_DAILY_KEPT = tuple(_daily_fill(basis, kept=True) for basis in ("effective", "billed"))
# The shared step's amounts per group and day under the run's key (migration 0015), from its own
# pieces; sql.SHARED_LANDED adds every other key's.
_SHARED_FILL = """INSERT INTO attr_shared SELECT day, $shared_key, project, team, environment, model_id,
    sum(amount_effective), sum(amount_billed), count(*) FROM att_alloc WHERE step = 'shared' GROUP BY ALL"""
TABLES = (*_COPY, "attr_daily", "attr_shared")
# The stages of a report's attribution, with lines numbered by row id, and no att_line nor att_daily
# (attr_line and attr_daily are filled from their SELECTs).
_STAGES = tuple(sql.COST_BY_ROWID if stage is sql.COST else stage for stage in sql.STAGES
                if stage not in (sql.LINES, sql.DAILY))
_TEMP = ("att_rates", "att_cost", "att_inv", "att_hosts", "att_bill", "att_tok", "att_pod_model", "att_res_model",
         "att_gpu", "att_cand", "att_pieces", "att_alloc", "att_gpu_cost")


@dataclass(frozen=True)
class State:
    """The policy the attr_* tables hold and whether every day is attributed under it."""

    shared_cost_key: str
    complete: bool
    resume_from: date | None
    idle_threshold: float

    def holds(self, shared_cost_key: str, idle_threshold: float) -> bool:
        """Whether the tables are kept under this policy (complete or not)."""
        return self.shared_cost_key == shared_cost_key and self.idle_threshold == idle_threshold


def state(cur: duckdb.DuckDBPyConnection) -> State:
    [(key, complete, resume, idle)] = cur.execute(
        "SELECT shared_cost_key, complete, resume_from, idle_threshold FROM attr_state WHERE id = 1").fetchall()
    return State(key, complete, resume, idle)


def ranges(days: Iterable[date], chunk: int | None = None) -> list[tuple[date, date]]:
    """Sorted days as `[start, end)` runs of consecutive days, each at most `chunk` (CHUNK_DAYS) long."""
    chunk = chunk or CHUNK_DAYS
    out: list[tuple[date, date]] = []
    for d in sorted(set(days)):
        if out and out[-1][1] == d and (out[-1][1] - out[-1][0]).days < chunk:
            out[-1] = (out[-1][0], d + timedelta(days=1))
        else:
            out.append((d, d + timedelta(days=1)))
    return out


def attribute_days(cur: duckdb.DuckDBPyConnection, days: Iterable[date], shared_cost_key: str | None = None) -> int:
    """Replace the attr_* rows of `days` with a fresh attribution of them (inside the caller's transaction).

    Uses the store's policy, or `shared_cost_key` if given. Returns the number of days attributed.
    """
    st = state(cur)
    key = shared_cost_key or st.shared_cost_key
    spans = ranges(days)
    for start, end in spans:
        _attribute_span(cur, start, end, key, st.idle_threshold)
    return sum((end - start).days for start, end in spans)


def _attribute_span(cur: duckdb.DuckDBPyConnection, start: date, end: date, key: str, idle: float) -> None:
    # Amounts stay in each line's billing currency: every currency of the days at rate 1.
    cur.execute("CREATE OR REPLACE TEMP TABLE att_rates AS SELECT DISTINCT billing_currency AS currency, "
                "CAST(1 AS DECIMAL(38,12)) AS rate FROM cost_daily WHERE charge_date >= ? AND charge_date < ?",
                [start, end])
    binds: dict[str, Any] = {"start": start, "end": end, "basis": "effective", "shared_key": key, "idle": idle}
    for table in TABLES:
        cur.execute(f"DELETE FROM {table} WHERE day >= ? AND day < ?", [start, end])  # noqa: S608 - constants
    run_stages(cur, _STAGES, binds)
    [(base,)] = cur.execute("SELECT next_line_id FROM attr_state WHERE id = 1").fetchall()
    binds["base"] = base
    for table, select in _COPY.items():
        run_stages(cur, (f"INSERT INTO {table} {select}",), binds)
    for fill in _DAILY:
        cur.execute(fill)
    run_stages(cur, (_SHARED_FILL, sql.SHARED_LANDED), {**binds, "keys": [k for k in SHARED_KEYS if k != key]})
    [(lines,)] = cur.execute("SELECT coalesce(max(line_id), 0) FROM att_cost").fetchall()
    cur.execute("UPDATE attr_state SET next_line_id = next_line_id + ? WHERE id = 1", [lines])
    for name in _TEMP:
        cur.execute(f"DROP TABLE IF EXISTS {name}")


def _recount_daily(cur: duckdb.DuckDBPyConnection, start: date, end: date, idle: float) -> None:
    """Replace attr_daily's rows of `[start, end)` with sums of the kept tables at idle threshold
    `idle` (what a changed idle threshold alone changes)."""
    cur.execute("DELETE FROM attr_daily WHERE day >= ? AND day < ?", [start, end])
    for fill in _DAILY_KEPT:
        cur.execute(fill, {"start": start, "end": end, "idle": idle})


# What attribution reads of the inventory (sql.INVENTORY): dims per resource and host names.
_INVENTORY_SIGNATURE = """
SELECT resource_key, NULL AS host, max(project), max(team), max(environment), max(model_id)
FROM inventory GROUP BY resource_key
UNION ALL
SELECT DISTINCT resource_key, lower(h), NULL, NULL, NULL, NULL
FROM inventory, unnest(host_names) AS t(h) WHERE h IS NOT NULL
"""


def inventory_before(cur: duckdb.DuckDBPyConnection) -> None:
    """Keep what attribution reads of the inventory, before an inventory landing changes it."""
    cur.execute(f"CREATE OR REPLACE TEMP TABLE att_inventory_before AS {_INVENTORY_SIGNATURE}")


def inventory_days(cur: duckdb.DuckDBPyConnection) -> set[date]:
    """The days whose attribution the inventory landing since `inventory_before` changed: those
    holding facts of a resource (or host) whose dims or host names changed."""
    rows = cur.execute(f"""
        WITH now AS ({_INVENTORY_SIGNATURE}),
        changed AS (SELECT * FROM (SELECT * FROM now EXCEPT SELECT * FROM att_inventory_before)
                    UNION ALL SELECT * FROM (SELECT * FROM att_inventory_before EXCEPT SELECT * FROM now)),
        -- A resource whose dims changed re-attributes the facts reported under its host names too.
        keys AS (SELECT resource_key AS k FROM changed WHERE resource_key IS NOT NULL
                 UNION SELECT host FROM changed WHERE host IS NOT NULL
                 UNION SELECT host FROM (SELECT * FROM now UNION ALL SELECT * FROM att_inventory_before)
                       WHERE host IS NOT NULL AND resource_key IN (SELECT resource_key FROM changed))
        SELECT DISTINCT d FROM (
            SELECT charge_date AS d FROM cost_daily WHERE resource_key IN (SELECT k FROM keys)
            UNION ALL SELECT day FROM gpu_daily WHERE resource_key IN (SELECT k FROM keys)
                                                   OR lower(resource_key) IN (SELECT k FROM keys)
            UNION ALL SELECT day FROM token_daily WHERE resource_key IN (SELECT k FROM keys)
                                                     OR lower(resource_key) IN (SELECT k FROM keys))
        """).fetchall()  # noqa: S608 - constants only
    cur.execute("DROP TABLE att_inventory_before")
    return {r[0] for r in rows}


def data_days(cur: duckdb.DuckDBPyConnection, since: date | None = None) -> list[date]:
    """Every day the store holds cost, GPU or token facts for (from `since`, if given)."""
    where = "WHERE d >= ?" if since else ""
    rows = cur.execute(
        f"SELECT DISTINCT d FROM (SELECT charge_date AS d FROM cost_daily UNION ALL SELECT day FROM gpu_daily "  # noqa: S608
        f"UNION ALL SELECT day FROM token_daily) {where} ORDER BY d", [since] if since else []).fetchall()
    return [r[0] for r in rows]


def rebuild(transaction: Callable[[], Any], shared_cost_key: str,
            progress: Callable[[int, int], None] | None = None, idle_threshold: float | None = None) -> int:
    """Attribute every day of the store under `shared_cost_key` and `idle_threshold` (by default, the
    store's), a chunk per transaction.

    `transaction` opens the store's write transaction (Store.transaction). Idempotent and resumable:
    an interrupted rebuild continues from the first chunk it had not committed; a rebuild of a
    complete store under its own policy does nothing, and one that changes only the idle threshold
    sums attr_daily again from the kept tables. Landings meanwhile attribute under the new policy.
    Returns the number of days attributed; `progress(done, total)` is called after each chunk.
    """
    with transaction() as cur:
        st = state(cur)
        idle = st.idle_threshold if idle_threshold is None else idle_threshold
        if st.holds(shared_cost_key, idle) and st.complete:
            return 0
        recount = st.complete and st.shared_cost_key == shared_cost_key  # only the threshold changes
        resume = st.resume_from if st.holds(shared_cost_key, idle) else None
        cur.execute("UPDATE attr_state SET shared_cost_key = ?, idle_threshold = ?, complete = false, "
                    "resume_from = ? WHERE id = 1", [shared_cost_key, idle, resume])
        days = data_days(cur, resume)
    spans = ranges(days)
    total, done = len(days), 0
    for start, end in spans:
        with transaction() as cur:
            if recount:
                _recount_daily(cur, start, end, idle)
            else:
                _attribute_span(cur, start, end, shared_cost_key, idle)
            cur.execute("UPDATE attr_state SET resume_from = ? WHERE id = 1", [end])
        done += sum(1 for d in days if start <= d < end)
        if progress:
            progress(done, total)
    with transaction() as cur:
        cur.execute("UPDATE attr_state SET complete = true, resume_from = NULL WHERE id = 1")
    return total
