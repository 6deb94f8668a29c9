"""Stored attribution sets up only the relations a report reads, and never leaves one from another window."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from finops.attribution.engine import attribute
from finops.attribution.materialize import rebuild, state
from finops.attribution.stored import attribute_stored
from finops.batch import Batch, Task
from finops.collect import run_task
from finops.reports import anomalies, idle_gpus, unit_economics, untagged
from finops.reports.model import snapshot
from finops.reports.params import build_params
from finops.settings import Settings
from finops.store import Store
from finops.tags import TagRules
from finops.timeutil import Window
from tests.support import example_a


@pytest.fixture
def loaded(store: Store, rules: TagRules, tmp_path: Path) -> Store:
    example_a.load(store, rules, tmp_path)
    return store


def _left(cur: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    views = {r[0] for r in cur.execute("SELECT view_name FROM duckdb_views() WHERE temporary").fetchall()}
    tables = {r[0] for r in cur.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}
    return {"views": {v for v in views if v.startswith("att_")}, "tables": {t for t in tables if t.startswith("att_")}}


# A report reading the allocations as well as unit economics' rows: under another key, the shared
# step's pieces are weighed again.
WEIGHED = (*unit_economics.READS, "att_alloc")


def test_a_report_gets_the_views_it_reads_and_none_from_an_earlier_window(loaded: Store, settings: Settings) -> None:
    day = build_params(start="2026-11-02", end="2026-11-03")
    month = build_params(start="2026-11-01", end="2026-12-01")
    with snapshot(loaded) as cur:
        attribute_stored(cur, day, settings, reads=idle_gpus.READS)
        # att_gpu_hours lays out the hours of att_gpu_cost, so that view comes with it.
        assert _left(cur) == {"views": {"att_gpu", "att_gpu_hours", "att_tok", "att_gpu_cost"}, "tables": set()}
        [(hours,)] = cur.execute("SELECT count(*) FROM att_gpu_hours").fetchall()
        assert hours == 5 * 24

        attribute_stored(cur, month, settings, hourly=False, reads=untagged.reads(month))
        # The day's GPU views are gone: a report reading one it did not name fails instead of
        # reading another window's rows.
        assert _left(cur) == {"views": {"att_line"}, "tables": set()}

        # Another shared-cost key than the stored one, for attribution per group and day: every
        # GPU-day of the day sits on a billed resource, so only the shared step's amounts differ,
        # and they are kept per key. A view, nothing computed.
        tokens = day.model_copy(update={"shared_cost_key": "tokens"})
        attribute_stored(cur, tokens, settings, reads=unit_economics.READS)
        assert _left(cur) == {"views": {"att_daily"}, "tables": set()}
        keyed = unit_economics.build(cur, attribute_stored(cur, tokens, settings, reads=unit_economics.READS), tokens)

        # For a report reading the allocations, which the key weighs: the stored lines, tokens and
        # GPU-days as views, what the key weighs (the shared step's pieces) as temp tables computed
        # from them, and views joining those to the rest of the stored tables. The GPU-days' hour
        # cost is read as stored. The hours are laid out from the GPU-days' view, as stored.
        attribute_stored(cur, tokens, settings, hourly=True, reads=WEIGHED)
        assert _left(cur) == {"views": {"att_line", "att_cost", "att_tok", "att_inv", "att_gpu", "att_gpu_unbilled",
                                        "att_alloc", "att_gpu_cost", "att_daily", "att_gpu_hours"},
                              "tables": {"att_pieces", "att_alloc_shared"}}
        [(hours,)] = cur.execute("SELECT count(*) FROM att_gpu_hours").fetchall()
        assert hours == 5 * 24

        # A window inside one weighed before on the cursor reads its tables, through views of its own
        # days: a mark left in them (shared pieces on another day of the month) is still there after.
        attribute_stored(cur, month.model_copy(update={"shared_cost_key": "tokens"}), settings, reads=WEIGHED)
        cur.execute("INSERT INTO att_alloc_shared BY NAME SELECT * REPLACE (DATE '2026-11-20' AS day, "
                    "'shared' AS step), amount_effective AS amount FROM attr_alloc")
        att = attribute_stored(cur, tokens, settings, reads=WEIGHED)
        marked = "SELECT count(*) FROM att_alloc_shared WHERE day = DATE '2026-11-20'"
        assert cur.execute(marked).fetchall()[0][0] > 0
        for view in ("att_alloc", "att_daily"):
            assert cur.execute(f"SELECT DISTINCT day FROM {view}").fetchall() == [(day.start,)]  # noqa: S608
        reused = unit_economics.build(cur, att, tokens)
        # A later window outside it is weighed again.
        attribute_stored(cur, tokens.model_copy(update={"end": date(2026, 12, 2)}), settings, reads=WEIGHED)
        assert cur.execute(marked).fetchall()[0][0] == 0
    with snapshot(loaded) as cur:  # attribution from the facts
        cur.execute("UPDATE attr_state SET complete = false")
        alone = unit_economics.build(cur, attribute_stored(cur, tokens, settings, reads=unit_economics.READS), tokens)
    assert (reused.rows, reused.totals) == (keyed.rows, keyed.totals) == (alone.rows, alone.totals)

    with snapshot(loaded) as cur:

        # A rebuild under way (the store's attribution incomplete): attribution from the facts, as
        # temp tables, only those the report reads that attribution can leave out.
        cur.execute("UPDATE attr_state SET complete = false")  # rolled back with the snapshot
        attribute_stored(cur, day, settings, hourly=True, reads=unit_economics.READS)
        left = _left(cur)
        assert left["views"] == {"att_daily"} and {"att_alloc", "att_gpu_cost", "att_gpu_hours"} <= left["tables"]
        assert "att_line" not in left["tables"]  # no lines for unit economics
        attribute_stored(cur, month, settings, hourly=False, reads=anomalies.READS)
        assert "att_gpu_hours" not in _left(cur)["tables"] and "att_line" in _left(cur)["tables"]
        attribute_stored(cur, day, settings, reads=unit_economics.READS)
        assert "att_line" not in _left(cur)["tables"]  # the month's lines went with their window
        cur.execute("UPDATE attr_state SET complete = true")

        attribute_stored(cur, day, settings, reads=idle_gpus.READS)
        assert _left(cur) == {"views": {"att_gpu", "att_gpu_hours", "att_tok", "att_gpu_cost"}, "tables": set()}


def test_untagged_spend_under_another_shared_cost_key_reads_the_stored_tables(loaded: Store, settings: Settings) -> None:
    """The key weighs the shared step's pieces, never which lines the rules recover: untagged spend
    under another key is read from the stored tables and equals attribution on the fly."""
    tokens = build_params(start="2026-11-01", end="2026-12-01", shared_cost_key="tokens")
    assert settings.shared_cost_key != "tokens"
    with snapshot(loaded) as cur:
        fly = untagged.build(cur, attribute(cur, tokens, settings, hourly=False), tokens)
        fly_economics = unit_economics.build(cur, attribute(cur, tokens, settings, hourly=False), tokens)
    with snapshot(loaded) as cur:
        stored = untagged.build(cur, attribute_stored(cur, tokens, settings, hourly=False, reads=untagged.reads(tokens)),
                                tokens)
        assert _left(cur) == {"views": {"att_line"}, "tables": set()}
        # Unit economics: attribution per group and day with the key's kept shared amounts.
        economics = unit_economics.build(
            cur, attribute_stored(cur, tokens, settings, hourly=False, reads=unit_economics.READS), tokens)
        assert _left(cur) == {"views": {"att_daily"}, "tables": set()}
    assert stored.totals["recoverable_cost"] > 0  # lines the rules split: what the key could have changed
    assert (stored.rows, stored.totals, stored.tables) == (fly.rows, fly.totals, fly.tables)
    assert (economics.rows, economics.totals) == (fly_economics.rows, fly_economics.totals)
    accelerator = tokens.model_copy(update={"scope": "accelerator"})
    with snapshot(loaded) as cur:
        fly = untagged.build(cur, attribute(cur, accelerator, settings, hourly=False), accelerator)
    with snapshot(loaded) as cur:
        att = attribute_stored(cur, accelerator, settings, hourly=False, reads=untagged.reads(accelerator))
        assert not _left(cur)["tables"]
        assert untagged.build(cur, att, accelerator).rows == fly.rows


def test_idle_gpus_under_another_shared_cost_key_read_the_stored_tables_where_every_gpu_is_billed(
        loaded: Store, settings: Settings) -> None:
    """GPUs priced from their own resource's bill cost the same under any key; a GPU on no billed
    resource is priced from its group's attributed cost, which the key weighs."""
    day = build_params(start="2026-11-02", end="2026-11-03", shared_cost_key="tokens")
    with snapshot(loaded) as cur:
        fly = idle_gpus.build(cur, attribute(cur, day, settings), day)
    with snapshot(loaded) as cur:
        att = attribute_stored(cur, day, settings, reads=idle_gpus.READS)
        assert _left(cur) == {"views": {"att_gpu", "att_gpu_hours", "att_tok", "att_gpu_cost"}, "tables": set()}
        stored = idle_gpus.build(cur, att, day)
    assert stored.totals["idle_cost"] > 0
    assert (stored.rows, stored.totals, stored.tables) == (fly.rows, fly.totals, fly.tables)

    # The next day's telemetry, with no bill that day: its GPUs are priced from their groups.
    after = datetime(2026, 11, 3)
    task = Task("example-a", Window(after, after + timedelta(days=1)),
                lambda: Batch(facts=example_a.telemetry(after)))
    assert run_task(loaded, "prometheus", task).status == "succeeded"
    both = day.model_copy(update={"end": date(2026, 11, 4)})
    with snapshot(loaded) as cur:
        fly = idle_gpus.build(cur, attribute(cur, both, settings), both)
    with snapshot(loaded) as cur:
        reweighed = idle_gpus.build(cur, attribute_stored(cur, both, settings, reads=idle_gpus.READS), both)
        assert {"att_gpu", "att_gpu_cost"} <= _left(cur)["views"] and "att_gpu_regrouped" in _left(cur)["tables"]
    assert (reweighed.rows, reweighed.totals) == (fly.rows, fly.totals)


def test_unit_economics_at_another_idle_threshold_sums_the_stored_views_until_rebuilt_under_it(
        loaded: Store, settings: Settings) -> None:
    """attr_daily keeps idle cost at the stored idle threshold; a report asking another sums att_daily
    from the other stored views, and a rebuild under that threshold makes attr_daily answer it."""
    month = build_params(start="2026-11-01", end="2026-12-01", granularity="day")
    busy = month.model_copy(update={"idle_threshold": 0.9})
    with snapshot(loaded) as cur:
        fly = unit_economics.build(cur, attribute(cur, busy, settings, hourly=False), busy)
        usual = unit_economics.build(cur, attribute(cur, month, settings, hourly=False), month)
    with snapshot(loaded) as cur:
        summed = unit_economics.build(cur, attribute_stored(cur, busy, settings, reads=unit_economics.READS), busy)
        assert _left(cur) == {"views": {"att_daily", "att_alloc", "att_tok", "att_gpu_cost"}, "tables": set()}
    assert fly.totals["idle_cost"] > usual.totals["idle_cost"]  # the threshold matters in this window
    assert (summed.rows, summed.totals) == (fly.rows, fly.totals)

    with snapshot(loaded) as cur:
        lines_before = cur.execute("SELECT next_line_id, (SELECT count(*) FROM attr_alloc) FROM attr_state").fetchall()
    assert rebuild(loaded.transaction, settings.shared_cost_key, idle_threshold=0.9) > 0
    with snapshot(loaded) as cur:
        # Only attr_daily was summed again: the lines kept their ids, the pieces were not rewritten.
        assert cur.execute("SELECT next_line_id, (SELECT count(*) FROM attr_alloc) FROM attr_state").fetchall() \
            == lines_before
        kept = unit_economics.build(cur, attribute_stored(cur, busy, settings, reads=unit_economics.READS), busy)
        assert _left(cur) == {"views": {"att_daily"}, "tables": set()}
        assert state(cur).idle_threshold == 0.9
    assert (kept.rows, kept.totals) == (fly.rows, fly.totals)
