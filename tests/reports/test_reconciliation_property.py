"""Property: for random fleets, every report's rows sum to the ingested total, for every group_by."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from finops.batch import Batch, Task
from finops.collect import ingest_focus, run_task
from finops.reports import get
from finops.reports.params import build_params
from finops.settings import Settings
from finops.store import Store, open_store
from finops.tags import TagRules
from finops.timeutil import Window

START = datetime(2026, 11, 2)
DAYS = 3
RATES = {"USD": Decimal(1), "EUR": Decimal("1.0825")}
DIMS = ("project", "team", "environment", "model_id")
KEYS = {"project": ["Project", "project", "user:Project"], "team": ["Team", "team"],
        "environment": ["Environment", "env"], "model_id": ["ModelID", "model"]}
VALUES = {"project": ["chatbot", "Search", "RAG "], "team": ["coreai", "Platform"],
          "environment": ["prod", "Dev"], "model_id": ["llama-70b", "mistral-7b", "Qwen-7B"]}
RESOURCES = ["i-a", "i-b", "vm-c", "i-d", None]

tag = st.fixed_dictionaries({}, optional={d: st.tuples(st.sampled_from(KEYS[d]), st.sampled_from(VALUES[d] + ["", "NULL"]))
                                          for d in DIMS})
line = st.tuples(
    st.integers(0, DAYS - 1), st.sampled_from(RESOURCES), tag,
    st.decimals(min_value=Decimal("-20"), max_value=Decimal("900"), places=4, allow_nan=False),
    st.sampled_from(["USD", "EUR"]),
)
gpu = st.tuples(st.sampled_from(RESOURCES[:-1]), st.integers(0, DAYS * 24 - 1), st.integers(0, 1),
                st.floats(0, 1), st.fixed_dictionaries({}, optional={d: st.sampled_from(VALUES[d]) for d in DIMS[:3]}))
tok = st.tuples(st.sampled_from(RESOURCES[:-1]), st.integers(0, DAYS * 24 - 1), st.sampled_from(VALUES["model_id"]),
                st.integers(0, 10_000), st.integers(0, 5_000))
fleet = st.tuples(st.lists(line, min_size=1, max_size=25), st.lists(gpu, max_size=40), st.lists(tok, max_size=20))


@pytest.fixture(scope="module")
def module_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Settings, Path]]:
    tmp = tmp_path_factory.mktemp("prop")
    s = Settings(db=tmp / "p.duckdb", currency_rates=RATES, report_currency="USD")
    store = open_store(s.db, s.duckdb)
    yield store, s, tmp
    store.close()


def _focus(lines: list) -> str:  # type: ignore[type-arg]
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["BilledCost", "EffectiveCost", "BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd",
                "ChargeCategory", "ServiceName", "BillingAccountId", "ProviderName", "ResourceId", "Tags"])
    for day, res, tags, cost, cur in lines:
        d = START + timedelta(days=day)
        w.writerow([cost, cost, cur, d.isoformat(), (d + timedelta(days=1)).isoformat(), "Usage", "EC2", "a", "AWS",
                    res or "", json.dumps(dict(tags.values())) if tags else "NULL"])
    return out.getvalue()


def _load(store: Store, s: Settings, tmp: Path, lines: list, gpus: list, toks: list) -> None:  # type: ignore[type-arg]
    path = tmp / "fleet.csv"
    path.write_text(_focus(lines))
    [r] = ingest_focus(store, TagRules.from_settings(s), [path])
    assert r.status == "succeeded", r.error
    g_rows = {}
    for res, hour, idx, busy, labels in gpus:
        g_rows[(res, hour, idx)] = {"hour_start": START + timedelta(hours=hour), "resource_id": res, "resource_key": res,
                                    "gpu_uuid": f"GPU-{res}-{idx}", "busy": busy, "samples": 60, **labels}
    t_rows = [{"hour_start": START + timedelta(hours=h), "resource_id": res, "resource_key": res, "model_name": m,
               "prompt_tokens": p, "generation_tokens": g, "requests": 1} for res, h, m, p, g in toks]
    schema_g = pa.schema([("hour_start", pa.timestamp("us")), ("resource_id", pa.string()), ("resource_key", pa.string()),
                          ("gpu_uuid", pa.string()), ("busy", pa.float64()), ("samples", pa.int64())]
                         + [(d, pa.string()) for d in DIMS[:3]])
    facts = {"gpu_hours": pa.Table.from_pylist(list(g_rows.values()), schema=schema_g),
             "token_hours": pa.Table.from_pylist(t_rows, schema=pa.schema(
                 [("hour_start", pa.timestamp("us")), ("resource_id", pa.string()), ("resource_key", pa.string()),
                  ("model_name", pa.string()), ("prompt_tokens", pa.int64()), ("generation_tokens", pa.int64()),
                  ("requests", pa.int64())]))}
    task = Task("prop", Window(START, START + timedelta(days=DAYS)), lambda: Batch(facts=facts))
    assert run_task(store, "prometheus", task).status == "succeeded"


GROUP_BYS = [",".join(c) for n in range(1, 5) for c in itertools.combinations(DIMS, n)]


@hsettings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
           phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target])
@given(fleet=fleet, granularity=st.sampled_from(["day", "week", "total"]),
       shared=st.sampled_from(["gpu_hours", "tokens", "even"]), basis=st.sampled_from(["effective", "billed"]))
def test_rows_sum_to_the_ingested_total(module_store: tuple[Store, Settings, Path], fleet: tuple,  # type: ignore[type-arg]
                                        granularity: str, shared: str, basis: str) -> None:
    store, s, tmp = module_store
    lines, gpus, toks = fleet
    _load(store, s, tmp, lines, gpus, toks)
    expected = sum((cost * RATES[cur] for _, _, _, cost, cur in lines), Decimal(0))
    common = {"start": "2026-11-02", "end": "2026-11-05", "granularity": granularity, "cost_basis": basis,
              "shared_cost_key": shared}
    for group_by in GROUP_BYS:
        ue = get("unit-economics")(store, s, build_params(group_by=group_by, **common))
        total = sum((r["cost"] for r in ue.rows), Decimal(0))
        assert total == ue.totals["ingested_total"], group_by
        assert abs(total - expected) < Decimal("0.005"), (group_by, total, expected)
        assert len({(r["period_start"], *(r[d] for d in group_by.split(","))) for r in ue.rows}) == len(ue.rows)
    weekly = get("weekly")(store, s, build_params(**common))
    assert sum((r["cost"] for r in weekly.rows), Decimal(0)) == weekly.totals["ingested_total"]
    assert weekly.totals["control_total_matches"]
    untagged = get("untagged-spend")(store, s, build_params(**common))
    assert sum((r["cost"] for r in untagged.rows), Decimal(0)) == weekly.totals["ingested_total"]
    fully_tagged = lambda tags: all(d in tags and tags[d][1].strip() not in ("", "NULL") for d in DIMS)  # noqa: E731
    expected_untagged = sum((c * RATES[cur] for _, _, tags, c, cur in lines if not fully_tagged(tags)), Decimal(0))
    assert abs(untagged.totals["untagged_cost"] - expected_untagged) < Decimal("0.005")
