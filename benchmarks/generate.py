"""Fleet generator: N GPUs x D days as FOCUS Parquet (the bill) and the project's own fact tables.

    python benchmarks/generate.py --scale small        # 1,000 GPUs x 35 days (default; ~1 min here)
    python benchmarks/generate.py --scale full         # 10,000 GPUs x 365 days
    python benchmarks/generate.py --gpus 2000 --days 60

The fleet: 8 GPUs per host; 80 % of hosts run one vLLM server (1,000 servers at full scale), the
rest sit mostly idle. One host in five is an Azure VM. 70 % of GPU series carry the four dims as
labels, the rest get them from the bill. Bills are daily FOCUS lines: 8 per host (instance, two
volumes, two transfer lines, monitoring, snapshot, IP) with the host's tags (1 in 20 hosts untagged,
1 in 20 partly tagged), and 3 shared lines per host (buckets tagged project+team, NAT gateways
untagged): 11 lines per host-day, ~5M a year at full scale. Values come from hashes, so the same
arguments give the same data.

Everything is generated in DuckDB SQL and written with COPY; the store is filled through the real
paths (FOCUS ingest via `finops.collect.file_task`, telemetry via `finops.collect.run_task`, which
keeps cost_daily, gpu_daily and token_daily in the same transactions).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402

from benchmarks.common import OUT  # noqa: E402

SCALES = {"small": (1_000, 35), "full": (10_000, 365)}
START = {"small": date(2026, 9, 7), "full": date(2025, 10, 6)}  # Mondays


@dataclass(frozen=True)
class Fleet:
    gpus: int
    days: int
    start: date

    @property
    def hosts(self) -> int:
        return max(1, self.gpus // 8)

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days)


# Per-host attributes as SQL over `h` (host number). Hash-based, so deterministic.
HOST = """
    h, h % 5 = 4 AS azure, h % 5 <> 3 AS serving,
    CASE WHEN h % 5 = 4 THEN 'vm-' || lpad(h::VARCHAR, 6, '0') ELSE 'i-0' || lpad(h::VARCHAR, 9, '0') END AS rkey,
    CASE WHEN h % 5 = 4 THEN '/subscriptions/sub-' || (h % 3) || '/resourceGroups/rg-ml/providers/'
         || 'Microsoft.Compute/virtualMachines/vm-' || lpad(h::VARCHAR, 6, '0')
         ELSE 'i-0' || lpad(h::VARCHAR, 9, '0') END AS rid,
    'gpu-node-' || h AS host,
    'proj-' || (h % 50) AS project, 'team-' || (h % 50 % 10) AS team,
    ['prod', 'staging', 'dev'][h % 3 + 1] AS environment, 'model-' || (h % 20) AS model_id,
    h % 10 < 7 AS labelled, h % 20 AS tagmode
"""


def _hosts(f: Fleet) -> str:
    return f"SELECT {HOST} FROM range({f.hosts}) t(h)"  # noqa: S608 - numbers only


def _u(*parts: str) -> str:
    """A uniform pseudo-random number in [0, 1) from the hash of `parts`."""
    return f"((hash({', '.join(parts)}) % 1000003) / 1000003.0)"


def gpu_hours_sql(f: Fleet, day0: date, days: int) -> str:
    """GPU-hour facts (gpu_hours columns) for `days` days from `day0`."""
    busy = (f"CASE WHEN NOT x.serving THEN CASE WHEN {_u('x.h', 'g', 'k')} < 0.1 THEN 0.3 ELSE 0.01 END "
            f"WHEN {_u('x.h', 'g', 'k', '7')} < 0.08 THEN 0.02 "
            f"ELSE round(least(0.98, 0.2 + 0.5 * (0.5 + 0.5 * sin((k % 24) / 24.0 * 2 * pi())) "
            f"+ 0.3 * {_u('x.h', 'g', 'k', '3')}), 4) END")
    return f"""
    SELECT TIMESTAMP '{day0}' + to_hours(k) AS hour_start, x.host, x.rid AS resource_id, x.rkey AS resource_key,
           'GPU-' || lpad(x.h::VARCHAR, 6, '0') || '-' || g AS gpu_uuid, g::VARCHAR AS gpu_index,
           CASE WHEN x.azure THEN 'NVIDIA H100 NVL' ELSE 'NVIDIA H100 80GB HBM3' END AS gpu_model,
           NULL::VARCHAR AS mig_profile, NULL::VARCHAR AS mig_instance,
           CASE WHEN x.serving THEN 'llm' END AS namespace, CASE WHEN x.serving THEN 'vllm-' || x.h END AS pod,
           CASE WHEN x.serving THEN 'vllm' END AS container,
           CASE WHEN x.labelled THEN x.project END AS project, CASE WHEN x.labelled THEN x.team END AS team,
           CASE WHEN x.labelled THEN x.environment END AS environment,
           CASE WHEN x.labelled AND x.serving THEN x.model_id END AS model_id,
           {busy} AS busy, 60 AS samples, round({busy} * 70000, 1) AS memory_used_mib,
           round(0.2 + {busy} * 0.5, 4) AS energy_kwh
    FROM ({_hosts(f)}) x, range(8) gg(g), range({days * 24}) kk(k)
    """  # noqa: S608 - numbers and dates only


def token_hours_sql(f: Fleet, day0: date, days: int) -> str:
    """Token-hour facts (token_hours columns): one vLLM server per serving host."""
    load = f"(0.3 + 0.7 * (0.5 + 0.5 * sin((k % 24) / 24.0 * 2 * pi())) * {_u('x.h', 'k')})"
    return f"""
    SELECT TIMESTAMP '{day0}' + to_hours(k) AS hour_start, x.host || ':8000' AS instance, x.rid AS resource_id,
           x.rkey AS resource_key, 'llm' AS namespace, 'vllm-' || x.h AS pod, x.model_id AS model_name,
           CASE WHEN x.labelled THEN x.project END AS project, CASE WHEN x.labelled THEN x.team END AS team,
           CASE WHEN x.labelled THEN x.environment END AS environment, NULL::VARCHAR AS model_id,
           CAST(2000000 * {load} AS BIGINT) AS prompt_tokens, CAST(600000 * {load} AS BIGINT) AS generation_tokens,
           CAST(3000 * {load} AS BIGINT) AS requests
    FROM ({_hosts(f)}) x, range({days * 24}) kk(k) WHERE x.serving
    """  # noqa: S608 - numbers and dates only


# Line kinds per host-day: (service, category, resource suffix, share of the host's daily price).
HOST_LINES = [
    ("instance", "Compute", "", 1.0), ("volume-a", "Storage", "vol-a", 0.02), ("volume-b", "Storage", "vol-b", 0.01),
    ("transfer-in", "Networking", "dt-in", 0.003), ("transfer-out", "Networking", "dt-out", 0.012),
    ("monitoring", "Management and Governance", "cw", 0.001), ("snapshot", "Storage", "snap", 0.004),
    ("ip", "Networking", "eip", 0.0005),
]


def focus_sql(f: Fleet, day0: date, days: int) -> str:
    """Daily FOCUS 1.0 cost lines: 8 per host-day plus 3 shared per host-day."""
    kinds = " UNION ALL ".join(
        f"SELECT {i} AS kind, '{name}' AS kname, '{cat}' AS cat, '{suffix}' AS suffix, {share} AS share"
        for i, (name, cat, suffix, share) in enumerate(HOST_LINES))
    tags_full = ("json_object('Project', x.project, 'Team', x.team, 'Environment', x.environment, "
                 "'ModelID', CASE WHEN x.serving THEN x.model_id ELSE 'none' END)")
    tags = (f"CASE WHEN x.tagmode = 0 THEN NULL WHEN x.tagmode = 1 THEN json_object('project', x.project, "
            f"'team', x.team)::VARCHAR ELSE {tags_full}::VARCHAR END")
    price = "CASE WHEN x.azure THEN 2350.0 ELSE 2359.68 END"
    cost = f"round({price} * k.share * (0.97 + 0.06 * {_u('x.h', 'k.kind', 'd')}), 6)"
    return f"""
    WITH lines AS (
        SELECT d, x.azure, x.rid, x.rkey, k.kind, k.kname, k.cat, k.suffix, {cost} AS cost, {tags} AS tags,
               x.h
        FROM ({_hosts(f)}) x, ({kinds}) k, range({days}) dd(d)
        UNION ALL
        SELECT d, false, 'bucket-' || x.project || '-' || s, NULL, 100 + s, 'shared', 'Storage', '',
               round(40 * (0.5 + {_u('x.h', 's', 'd')}), 6),
               CASE WHEN s = 2 THEN NULL ELSE json_object('Project', x.project, 'Team', x.team)::VARCHAR END, x.h
        FROM ({_hosts(f)}) x, range(3) ss(s), range({days}) dd(d)
    )
    SELECT CAST(cost AS DECIMAL(18,6)) AS BilledCost,
           CAST(CASE WHEN kind = 0 AND h % 4 = 0 THEN cost * 0.62 ELSE cost END AS DECIMAL(18,6)) AS EffectiveCost,
           CAST(CASE WHEN kind = 0 THEN cost * 1.1 ELSE cost END AS DECIMAL(18,6)) AS ListCost,
           'USD' AS BillingCurrency,
           TIMESTAMP '{day0}' + to_days(d::INTEGER) AS ChargePeriodStart,
           TIMESTAMP '{day0}' + to_days(d::INTEGER + 1) AS ChargePeriodEnd,
           'Usage' AS ChargeCategory,
           CASE WHEN kind >= 100 THEN CASE WHEN azure THEN 'Storage' ELSE 'Amazon Simple Storage Service' END
                WHEN azure THEN CASE kind WHEN 0 THEN 'Virtual Machines (ND)' ELSE 'Azure ' || kname END
                ELSE CASE kind WHEN 0 THEN 'Amazon Elastic Compute Cloud' ELSE 'AWS ' || kname END END AS ServiceName,
           cat AS ServiceCategory,
           CASE WHEN azure THEN 'ea-0001' ELSE '111122223333' END AS BillingAccountId,
           CASE WHEN azure THEN 'sub-' || (h % 3) ELSE 'acct-' || (h % 7) END AS SubAccountId,
           CASE WHEN azure THEN 'Microsoft' ELSE 'AWS' END AS ProviderName,
           CASE WHEN azure THEN 'eastus2' ELSE 'us-east-1' END AS RegionId,
           CASE WHEN suffix = '' THEN rid ELSE rid || '-' || suffix END AS ResourceId,
           CASE WHEN kind = 0 THEN CASE WHEN azure THEN 'Standard_ND96isr_H100_v5' ELSE 'p5.48xlarge' END END
               AS ResourceType,
           CASE WHEN kind = 0 AND h % 4 = 0 THEN 'Committed' ELSE 'Standard' END AS PricingCategory,
           CASE WHEN kind = 0 AND h % 4 = 0 THEN 'sp-0001' END AS CommitmentDiscountId,
           'sku-' || kind AS SkuId, tags AS Tags
    FROM lines
    """  # noqa: S608 - numbers and dates only


def write_focus(path: Path, f: Fleet, rows: int | None = None) -> int:
    """Write the fleet's FOCUS lines (the first `rows` of them, days added as needed) to one Parquet file."""
    per_day = f.hosts * (len(HOST_LINES) + 3)
    days = f.days if rows is None else -(-rows // per_day)
    limit = "" if rows is None else f" LIMIT {int(rows)}"
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"COPY ({focus_sql(f, f.start, days)}{limit}) TO '{path}' (FORMAT parquet, COMPRESSION zstd, "
                "ROW_GROUP_SIZE 122880)")
    [(n,)] = con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchall()
    con.close()
    return int(n)


def _chunks(f: Fleet, days: int) -> list[tuple[date, int]]:
    out, d = [], 0
    while d < f.days:
        out.append((f.start + timedelta(days=d), min(days, f.days - d)))
        d += days
    return out


def _batch(facts: dict[str, Any]) -> Callable[[], Any]:
    from finops.batch import Batch

    return lambda: Batch(facts=facts)


def generate(f: Fleet, out: Path, store_path: Path | None = None, chunk_days: int = 7) -> dict[str, float]:
    """Write focus.parquet, gpu_hours/ and token_hours/ Parquet under `out`, and fill a store."""
    from finops.batch import Task
    from finops.collect import run_task
    from finops.settings import Settings
    from finops.sources.focus import file_task
    from finops.store import open_store
    from finops.tags import TagRules
    from finops.timeutil import Window

    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    focus = out / "focus.parquet"
    lines = write_focus(focus, f)
    timings["focus_parquet_s"] = time.perf_counter() - t0
    settings = Settings(db=store_path or out / "fleet.duckdb")
    for p in (settings.db, Path(str(settings.db) + ".wal")):
        p.unlink(missing_ok=True)
    store = open_store(settings.db, settings.duckdb)
    gen = duckdb.connect()
    try:
        t0 = time.perf_counter()
        r = run_task(store, "focus", file_task(TagRules.from_settings(settings), focus))
        if r.status != "succeeded":
            raise RuntimeError(f"FOCUS ingest failed: {r.error}")
        timings["focus_ingest_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        counts = {"gpu_hours": 0, "token_hours": 0}
        for day0, n in _chunks(f, chunk_days):
            facts = {"gpu_hours": gen.sql(gpu_hours_sql(f, day0, n)).to_arrow_table(),
                     "token_hours": gen.sql(token_hours_sql(f, day0, n)).to_arrow_table()}
            for table, data in facts.items():
                counts[table] += data.num_rows
                (out / table).mkdir(parents=True, exist_ok=True)
                gen.register("_t", data)
                gen.execute(f"COPY _t TO '{out / table / f'{day0}.parquet'}' (FORMAT parquet, COMPRESSION zstd)")
                gen.unregister("_t")
            window = Window(datetime.combine(day0, datetime.min.time()),
                            datetime.combine(day0 + timedelta(days=n), datetime.min.time()))
            res = run_task(store, "prometheus", Task("prometheus", window, _batch(facts)))
            if res.status != "succeeded":
                raise RuntimeError(f"telemetry load failed: {res.error}")
        timings["telemetry_load_s"] = time.perf_counter() - t0
        store.con.execute("CHECKPOINT")
    finally:
        gen.close()
        store.close()
    timings.update(cost_lines=lines, **{k: float(v) for k, v in counts.items()})
    return timings


def fleet_from_args(args: argparse.Namespace) -> Fleet:
    gpus, days = SCALES[args.scale]
    return Fleet(args.gpus or gpus, args.days or days, START[args.scale])


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", choices=sorted(SCALES), default="small", help="small (default) or full")
    p.add_argument("--gpus", type=int, help="override the number of GPUs")
    p.add_argument("--days", type=int, help="override the number of days")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_args(p)
    p.add_argument("--out", type=Path, help="output directory (default benchmarks/out/fleet-<scale>)")
    args = p.parse_args()
    f = fleet_from_args(args)
    out = args.out or OUT / f"fleet-{f.gpus}x{f.days}"
    print(f"generating {f.gpus} GPUs ({f.hosts} hosts) x {f.days} days from {f.start} into {out}")
    t = generate(f, out)
    for k, v in t.items():
        print(f"  {k}: {v:,.2f}" if isinstance(v, float) and k.endswith("_s") else f"  {k}: {int(v):,}")


if __name__ == "__main__":
    main()
