"""What the reliability tests compare: every fact table, the ledger, and per-source settings."""

from __future__ import annotations

from typing import Any

from finops.settings import PrometheusSettings, Settings
from finops.store import Store

# Every table a run writes (facts, rollups, quarantine). `run_id` differs between equal re-runs.
FACT_TABLES = ("cost_lines", "cost_daily", "gpu_hours", "gpu_daily", "token_hours", "token_daily", "inventory",
               "quarantine")


def tables(store: Store) -> list[str]:
    have = {r[0] for r in store.query("SELECT table_name FROM information_schema.tables")}
    return [t for t in FACT_TABLES if t in have]


def snapshot(store: Store, with_run_ids: bool = True) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every fact table, sorted: equal snapshots mean an unchanged store."""
    out = {}
    for t in tables(store):
        cols = {r[0] for r in store.query("SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                                          [t])}
        keep = "*" if with_run_ids or "run_id" not in cols else "* EXCLUDE (run_id)"
        out[t] = sorted(store.query(f"SELECT {keep} FROM {t}"), key=repr)
    return out


def duplicates(store: Store, table: str, key: str) -> list[tuple[Any, ...]]:
    """Key values stored more than once in `table` (`key` is a column list)."""
    return store.query(f"SELECT {key}, count(*) FROM {table} GROUP BY ALL HAVING count(*) > 1")


def ledger(store: Store, source: str) -> list[tuple[Any, ...]]:
    """(status, window_start, window_end, rows) of every run of `source`, oldest first."""
    return store.query("SELECT status, window_start, window_end, rows FROM source_runs WHERE source = ? "
                       "ORDER BY run_id", [source])


def with_prom(settings: Settings, url: str, **fields: Any) -> Settings:
    cfg = PrometheusSettings(**{"url": url, "max_retries": 0, "timeout_seconds": 10, "token_source": "vllm",
                                **fields})
    return settings.model_copy(update={"prometheus": cfg})
