"""FOCUS ingest of a large Parquet file against DuckDB's bare CREATE TABLE AS on the same file.

    python benchmarks/bench_ingest.py                  # 1M rows (default on a small machine)
    python benchmarks/bench_ingest.py --scale full     # 10M rows
    python benchmarks/bench_ingest.py --rows 3000000
    python benchmarks/bench_ingest.py --rows 3000000 --format csv.gz

Each side runs in its own process (so peak RSS is its own), same run, same file, same DuckDB
limits (`--memory-limit`, 2 GB by default, and 2 threads), writing into a fresh database file:
- bound: `CREATE TABLE t AS SELECT * FROM read_parquet(file)` (`read_csv(file)` for CSV.gz, DuckDB's own
  CSV reader detecting the file's dialect and types);
- ours: `finops.collect.run_task(store, "focus", finops.sources.focus.file_task(rules, file))`, i.e. the
  FOCUS reader (validation, quarantine, tag normalisation, resource keys) and the atomic landing
  (replace the file's scope, insert, rebuild cost_daily, attribute the days it covers) in one
  transaction;
- floor: the least work a landing that keeps attribution must do, as bare SQL in one transaction
  (the file's rows as they are, their daily rollup, one allocation row per rollup row; `FLOOR`),
  against the same bound: the goal's room for everything else;
- parse only: `finops.sources.focus.open_focus_file` with its rows streamed and counted, to show
  where the time goes;
- ours, by stage (`of which`, timed inside the same run, each statement by the table it writes):
  the file into `cost_lines` (the source's work before the landing: its header, tag map and
  checks of the whole file; then replacing the scope's rows with the insert that streams the
  file), the `cost_daily` rollup, attribution of the file's days, the rest (quarantine, ledger),
  the commit and the store's checkpoint when it closes.
Goals: ours <= 1.5x the bound (CSV.gz: 2x); peak RSS <= 2.5 GB with the store's memory limit at 2 GB.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import OUT, Measure, peak_rss_mb, print_table, write_json  # noqa: E402
from benchmarks.generate import Fleet, write_focus  # noqa: E402

ROWS = {"small": 1_000_000, "full": 10_000_000}


def phase(name: str, file: Path, db: Path, memory_limit: str) -> dict[str, float]:
    """Run one side in this process; returns seconds, rows and peak RSS."""
    import duckdb

    from finops.settings import DuckDBSettings

    limits = DuckDBSettings(memory_limit=memory_limit)
    t0 = time.perf_counter()
    if name == "bound":
        con = duckdb.connect(str(db), config={"memory_limit": limits.memory_limit, "threads": limits.threads})
        reader = "read_csv" if file.name.endswith(".csv.gz") else "read_parquet"
        con.execute(f"CREATE TABLE t AS SELECT * FROM {reader}(?)", [str(file)])  # noqa: S608 - a constant
        [(rows,)] = con.execute("SELECT count(*) FROM t").fetchall()
        con.close()
    elif name == "floor":
        con = duckdb.connect(str(db), config={"memory_limit": limits.memory_limit, "threads": limits.threads})
        reader = "read_csv" if file.name.endswith(".csv.gz") else "read_parquet"
        cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {reader}(?)", [str(file)]).fetchall()}  # noqa: S608
        keys = ", ".join(f'"{c}"' for c in FLOOR_KEYS if c in cols)
        t0 = time.perf_counter()  # reading the file's schema is not part of it
        con.execute("BEGIN")
        for sql in FLOOR:
            con.execute(sql.format(reader=reader, keys=keys), [str(file)] if "?" in sql else [])
        con.execute("COMMIT")
        [(rows,)] = con.execute("SELECT count(*) FROM t").fetchall()
        con.close()
    elif name == "parse":
        from finops.settings import Settings
        from finops.sources.focus import open_focus_file
        from finops.tags import TagRules

        opened = open_focus_file(file, TagRules.from_settings(Settings(db=db)))
        rows = sum(batch.num_rows for batch in opened.rows)
    else:
        from finops.collect import run_task
        from finops.settings import Settings
        from finops.sources.focus import file_task
        from finops.store import open_store
        from finops.tags import TagRules

        settings = Settings(db=db, duckdb=limits)
        store = open_store(db, settings.duckdb)
        clock = StageClock()
        store.transaction = clock.timed(store.transaction)  # type: ignore[method-assign]
        task = file_task(TagRules.from_settings(settings), file)
        t0 = time.perf_counter()  # schema migration is not part of the ingest
        result = run_task(store, "focus", clock.fetch(task))
        if result.status != "succeeded":
            raise SystemExit(f"ingest failed: {result.error}")
        rows = result.rows
        t1 = time.perf_counter()
        store.close()  # its checkpoint, as the bound's close
        clock.stages["close"] = time.perf_counter() - t1
        return {"seconds": time.perf_counter() - t0, "rows": float(rows), "rss_mb": peak_rss_mb(), **clock.stages}
    return {"seconds": time.perf_counter() - t0, "rows": float(rows), "rss_mb": peak_rss_mb()}


# Where a landing's time goes, by the table each statement writes (else the first it names, for a
# statement that only reads): the file's rows into cost_lines (the INSERT reads the file's stream as
# it goes), the daily rollup (and its before/after comparison), attribution (att_* and attr_*).
STAGES = (("cost_lines", re.compile(r"^cost_lines$")),
          ("cost_daily", re.compile(r"^(cost_daily|_rollup_before)$")),
          ("attribution", re.compile(r"^attr?_\w+$")))
WRITES = re.compile(r"^(?:INSERT INTO|CREATE (?:OR REPLACE )?(?:TEMP )?(?:TABLE|VIEW)|DELETE FROM|UPDATE|DROP TABLE)"
                    r"\s+(\w+)", re.IGNORECASE)
NAMES = re.compile(r"\b(cost_lines|cost_daily|_rollup_before|attr?_\w+)\b")


def stage_of(sql: str) -> str:
    """The stage a statement of the landing belongs to (`other` when none)."""
    text = re.sub(r"^(\s*--[^\n]*\n)*\s*", "", sql)  # leading comments
    written = WRITES.match(text)
    name = written.group(1) if written else next(iter(NAMES.findall(text)), "")
    return next((stage for stage, rx in STAGES if rx.match(name)), "other")


class StageClock:
    """Seconds per landing stage: the source's fetch (`check`: what it does before the rows stream)
    and each statement of the landing's transaction, by `stage_of`."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = dict.fromkeys(("check", *(n for n, _ in STAGES), "other", "commit"), 0.0)

    def fetch(self, task: Any) -> Any:
        def fetch() -> Any:
            t0 = time.perf_counter()
            try:
                return task.fetch()
            finally:
                self.stages["check"] += time.perf_counter() - t0
        return replace(task, fetch=fetch)

    def timed(self, transaction: Callable[[], Any]) -> Callable[[], Any]:
        clock = self

        class Cursor:
            def __init__(self, cur: Any) -> None:
                self._cur = cur

            def execute(self, sql: str, *args: Any, **kw: Any) -> Any:
                stage = stage_of(sql)
                t0 = time.perf_counter()
                try:
                    return self._cur.execute(sql, *args, **kw)
                finally:
                    clock.stages[stage] += time.perf_counter() - t0

            def __getattr__(self, name: str) -> Any:
                return getattr(self._cur, name)

        @contextmanager
        def wrapped() -> Iterator[Any]:
            with transaction() as cur:
                yield Cursor(cur)
                t0 = time.perf_counter()
            clock.stages["commit"] += time.perf_counter() - t0  # the write-ahead log, and a checkpoint
        return wrapped


# The least work a landing as the Build describes it must do, as bare SQL in one transaction:
# the file's rows as they are, their daily rollup, and one allocation row per rollup row (the
# stored attribution's least). No validation, tags, resource keys or shares.
FLOOR_KEYS = ("ChargePeriodStart", "ProviderName", "BillingAccountId", "SubAccountId", "ServiceName",
              "ServiceCategory", "RegionId", "ResourceId", "ResourceType", "ChargeCategory", "PricingCategory",
              "BillingCurrency", "Tags")
FLOOR = (
    "CREATE TABLE t AS SELECT * FROM {reader}(?)",
    "CREATE TABLE d AS SELECT {keys}, sum(BilledCost) AS billed, sum(EffectiveCost) AS effective, "
    "sum(ListCost) AS list, count(*) AS n FROM t GROUP BY ALL",
    "CREATE TABLE a AS SELECT rowid AS line_id, ChargePeriodStart AS day, 'team' AS team, effective, billed FROM d",
)


def run_phase(name: str, file: Path, workdir: Path, memory_limit: str) -> dict[str, float]:
    db = workdir / f"{name}.duckdb"
    proc = subprocess.run([sys.executable, __file__, "--phase", name, "--file", str(file), "--db", str(db),
                           "--memory-limit", memory_limit],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser(description="FOCUS ingest vs bare DuckDB CREATE TABLE AS")
    p.add_argument("--scale", choices=sorted(ROWS), default="small")
    p.add_argument("--rows", type=int)
    p.add_argument("--memory-limit", default="2GB", help="the store's DuckDB memory limit (default 2GB)")
    p.add_argument("--format", choices=["parquet", "csv.gz"], default="parquet", help="the file's format")
    p.add_argument("--phase", choices=["bound", "floor", "ours", "parse"], help=argparse.SUPPRESS)
    p.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.file, args.db, args.memory_limit)))
        return
    rows = args.rows or ROWS[args.scale]
    with tempfile.TemporaryDirectory(prefix="finops-bench-ingest-", dir=OUT if OUT.exists() else None) as tmp:
        work = Path(tmp)
        file = work / "focus.parquet"
        t0 = time.perf_counter()
        n = write_focus(file, Fleet(gpus=10_000, days=365, start=date(2025, 1, 6)), rows)
        if args.format == "csv.gz":
            import duckdb

            parquet, file = file, work / "focus.csv.gz"
            duckdb.execute(f"COPY (SELECT * FROM read_parquet('{parquet}')) TO '{file}' "  # noqa: S608 - our paths
                           "(HEADER, COMPRESSION gzip)")
            parquet.unlink()
        print(f"generated {n:,} FOCUS rows ({file.stat().st_size / 2**20:.0f} MiB {args.format}) in "
              f"{time.perf_counter() - t0:.1f} s")
        bound = run_phase("bound", file, work, args.memory_limit)
        floor = run_phase("floor", file, work, args.memory_limit)
        ours = run_phase("ours", file, work, args.memory_limit)
        parse = run_phase("parse", file, work, args.memory_limit)
    goal = 2.0 if args.format == "csv.gz" else 1.5
    measures = [
        Measure("ingest time", ours["seconds"], "s", bound["seconds"], f"<= {goal}x bound",
                ours["seconds"] <= goal * bound["seconds"],
                note=f"parse alone {parse['seconds']:.1f} s, landing (delete, insert, cost_daily, attribution) "
                     f"{ours['seconds'] - parse['seconds']:.1f} s"),
        # The file into cost_lines alone (its check and the insert that streams it), against the same
        # bound; then what the same transaction adds: the daily rollup and attribution of its days.
        Measure("of which: the file into cost_lines", ours["check"] + ours["cost_lines"], "s", bound["seconds"],
                note=f"before the landing {ours['check']:.1f} s, replace and insert {ours['cost_lines']:.1f} s"),
        Measure("of which: cost_daily", ours["cost_daily"], "s", bound["seconds"]),
        Measure("of which: attribution of the file's days", ours["attribution"], "s", bound["seconds"]),
        Measure("of which: the rest (quarantine, ledger)", ours["other"], "s", bound["seconds"]),
        Measure("of which: commit, and the checkpoint at close", ours["commit"] + ours["close"], "s",
                bound["seconds"], note=f"commit {ours['commit']:.1f} s, close {ours['close']:.1f} s"),
        Measure("floor: the file, its daily rollup, an allocation row per rollup row", floor["seconds"], "s",
                bound["seconds"], f"<= {goal}x bound", floor["seconds"] <= goal * bound["seconds"],
                note="bare SQL in one transaction: the least a landing that keeps attribution must write"),
        Measure("rows per second", ours["rows"] / ours["seconds"], "rows/s", bound["rows"] / bound["seconds"]),
        Measure("peak RSS", ours["rss_mb"], "MiB", bound["rss_mb"], "<= 2560 MiB", ours["rss_mb"] <= 2560),
        Measure("peak RSS, parse only", parse["rss_mb"], "MiB", bound["rss_mb"]),
    ]
    if ours["rows"] != bound["rows"]:
        measures.append(Measure("rows landed", ours["rows"], "rows", bound["rows"], "= file rows", False))
    print_table(f"FOCUS ingest of {n:,} rows ({args.format})", measures)
    write_json("bench_ingest", {"rows": n, "scale": args.scale, "memory_limit": args.memory_limit,
                                "format": args.format}, measures)


if __name__ == "__main__":
    main()
