"""What keeping attribution at landing costs: each landing kind, and the part of it that re-attributes.

    python benchmarks/bench_landing.py                  # on the 1,000-GPU x 35-day fleet
    python benchmarks/bench_landing.py --gpus 4000      # any fleet benchmarks/generate.py makes

On a copy of a generated fleet's store (benchmarks/generate.py; generated first if missing), times:
- one hour of telemetry: the last hour of GPU-hours and token-hours of every GPU, re-collected (a
  Prometheus collection; it re-attributes the day it falls in);
- one day of cost lines: a FOCUS file of the fleet's last day, landed as a new file;
- a restatement of a month: a FOCUS file of 30 days landed, then a version of it with every cost
  changed landed in its place, alternately (each timed landing changes all 30 days);
- the same month delivered again unchanged (exports re-deliver whole months): only days whose
  daily rollup changed are attributed again, so none are.
`attribution` is the time spent in `finops.attribution.materialize.attribute_days` inside the
landing's transaction; `landing` the whole `run_task` (fetch, replace, rollups, attribution, commit).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from benchmarks.common import OUT, Measure, best_of, print_table, write_json  # noqa: E402
from benchmarks.generate import add_args, fleet_from_args, generate, gpu_hours_sql, token_hours_sql  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description="the cost of keeping attribution at landing")
    add_args(p)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    fleet = fleet_from_args(args)
    out = OUT / f"fleet-{fleet.gpus}x{fleet.days}"
    if not (out / "fleet.json").exists():
        print(f"generating {fleet.gpus} GPUs x {fleet.days} days ...")
        gen = generate(fleet, out)
        (out / "fleet.json").write_text(json.dumps({"config": {"gpus": fleet.gpus, "days": fleet.days,
                                                               "start": str(fleet.start)}, "generate": gen}))

    from finops.attribution import materialize
    from finops.batch import Batch, Task
    from finops.collect import run_task
    from finops.settings import Settings
    from finops.sources.focus import file_task
    from finops.store import open_store
    from finops.tags import TagRules
    from finops.timeutil import Window

    work = OUT / f"landing-{fleet.gpus}x{fleet.days}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copy(out / "fleet.duckdb", work / "store.duckdb")
    last = fleet.end - timedelta(days=1)
    con = duckdb.connect()
    focus = out / "focus.parquet"
    day_file, month_file = work / "day.parquet", work / "month.parquet"
    day_changed, month_changed = work / "day-changed.parquet", work / "month-changed.parquet"
    # Paths and dates below are this script's own (COPY takes no bound parameters).
    copy = "COPY (SELECT * FROM read_parquet('{src}') WHERE CAST(ChargePeriodStart AS DATE) {cond}) TO '{dst}' (FORMAT parquet)"
    con.execute(copy.format(src=focus, cond=f"= DATE '{last}'", dst=day_file))
    con.execute(copy.format(src=focus, cond=f">= DATE '{fleet.end - timedelta(days=30)}'", dst=month_file))
    changed = "COPY (SELECT * REPLACE (EffectiveCost + 0.01 AS EffectiveCost) FROM read_parquet('{src}')) TO '{dst}' (FORMAT parquet)"
    con.execute(changed.format(src=month_file, dst=month_changed))
    con.execute(changed.format(src=day_file, dst=day_changed))
    hour = datetime.combine(last, datetime.min.time()) + timedelta(hours=23)
    facts: dict[str, Any] = {
        table: con.sql(f"SELECT * FROM ({sql}) WHERE hour_start >= ?", params=[hour]).to_arrow_table()  # noqa: S608
        for table, sql in (("gpu_hours", gpu_hours_sql(fleet, last, 1)), ("token_hours", token_hours_sql(fleet, last, 1)))
    }
    # The same hour with every GPU a little busier: a collection that changes the day.
    busier = {**facts, "gpu_hours": facts["gpu_hours"].set_column(
        facts["gpu_hours"].schema.get_field_index("busy"), "busy",
        pc.min_element_wise(pc.add(facts["gpu_hours"]["busy"], 0.01), 1.0))}
    lines = {name: con.execute("SELECT count(*) FROM read_parquet(?)", [str(f)]).fetchall()[0][0]
             for name, f in (("day", day_file), ("month", month_file))}
    con.close()

    settings = Settings(db=work / "store.duckdb")
    store = open_store(settings.db, settings.duckdb)
    spent: list[float] = []
    attribute_days = materialize.attribute_days

    def timed(cur: Any, days: Any, key: str | None = None) -> int:
        t0 = time.perf_counter()
        try:
            return attribute_days(cur, days, key)
        finally:
            spent.append(time.perf_counter() - t0)

    materialize.attribute_days = timed  # type: ignore[assignment]
    rules = TagRules.from_settings(settings)
    window = Window(hour, hour + timedelta(hours=1))
    # Each timed landing alternates between two versions of its data, so every one changes its days.
    hours, days, months = (itertools.cycle(v) for v in ((busier, facts), (day_changed, day_file),
                                                         (month_changed, month_file)))
    landed = [month_file]

    def restate() -> Any:
        landed[0] = next(months)
        return run_task(store, "focus", file_task(rules, landed[0], scope="month"))

    kinds = {
        "one hour of telemetry (all GPUs)": lambda: run_task(store, "prometheus", Task(
            "prometheus", window, (lambda f: lambda: Batch(facts=f))(next(hours)))),
        "one day of cost lines": lambda: run_task(store, "focus", file_task(rules, next(days), scope="day")),
        "restatement of a month of cost lines (every day changed)": restate,
        "the same month delivered again": lambda: run_task(store, "focus", file_task(rules, landed[0], scope="month")),
    }
    measures: list[Measure] = []
    try:
        # First landings, not timed: the timed ones replace these.
        run_task(store, "focus", file_task(rules, month_file, scope="month"))
        run_task(store, "focus", file_task(rules, day_file, scope="day"))
        run_task(store, "prometheus", Task("prometheus", window, lambda: Batch(facts=facts)))
        for name, fn in kinds.items():
            spent.clear()
            t, result = best_of(fn, args.repeat)
            assert result.status == "succeeded", result.error
            att = sorted(spent)[len(spent) // 2]
            measures.append(Measure(f"{name}: landing", t, "s", note=f"{result.rows:,} rows"))
            measures.append(Measure(f"{name}: attribution", att, "s", note=f"{att / t:.0%} of the landing"))
    finally:
        materialize.attribute_days = attribute_days  # type: ignore[assignment]
        store.close()
    print_table(f"Landing on {fleet.gpus:,} GPUs x {fleet.days} days ({lines['day']:,} lines a day)", measures)
    write_json("bench_landing", {"gpus": fleet.gpus, "days": fleet.days, "lines": lines}, measures)


if __name__ == "__main__":
    main()
