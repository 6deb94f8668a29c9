"""Property: attribution kept at landing equals attribution computed from scratch over the final store.

Random landings in random order (bills restated, telemetry re-collected over overlapping windows,
inventory replaced, hourly detail trimmed by retention), then every report twice: read from the
attr_* tables kept at landing, and computed on the fly from the facts (the store's attribution state
marked incomplete). They must be equal to the cent, and every report must reconcile.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from finops.attribution import materialize
from finops.attribution.materialize import rebuild, state
from finops.attribution.stored import GROUP_PRICED, attribute_stored
from finops.batch import Batch, Task
from finops.collect import ingest_focus, run_task
from finops.reports import NAMES, get, unit_economics, untagged
from finops.reports.model import snapshot, with_attribution
from finops.reports.params import build_params
from finops.settings import Settings
from finops.store import Store, migrate, open_store
from finops.store.retention import apply_retention
from finops.tags import TagRules
from finops.timeutil import Window

START = datetime(2026, 11, 2)
DAYS = 4
DIMS = ("project", "team", "environment", "model_id")
VALUES = {"project": ["chatbot", "search"], "team": ["core", "platform"], "environment": ["prod", "dev"],
          "model_id": ["llama-70b", "qwen-7b"]}
RESOURCES = ["i-a", "i-b", "vm-c"]
HOSTS = {"i-a": "host-a", "i-b": "host-b", "vm-c": "host-c"}

tags = st.fixed_dictionaries({}, optional={d: st.sampled_from(VALUES[d]) for d in DIMS})
cost_line = st.tuples(st.integers(0, DAYS - 1), st.sampled_from([*RESOURCES, None]), tags,
                      st.decimals(min_value=Decimal("-5"), max_value=Decimal("500"), places=4, allow_nan=False),
                      st.sampled_from(["On-Demand", "Committed", None]))
bill = st.tuples(st.just("bill"), st.sampled_from(["a.csv", "b.csv"]), st.lists(cost_line, min_size=1, max_size=12))
# (resource, its key: the resource id or a host name the inventory maps, hour offset in window, GPU, busy, labels,
#  time share: None for a GPU not shared, else a time-sliced pod's share)
gpu_row = st.tuples(st.sampled_from(RESOURCES), st.booleans(), st.integers(0, 47), st.integers(0, 1),
                    st.sampled_from([0.0, 0.01, 0.3, 0.9]),
                    st.fixed_dictionaries({}, optional={d: st.sampled_from(VALUES[d]) for d in DIMS[:3]}),
                    st.sampled_from([None, None, 0.25, 0.75]))
tok_row = st.tuples(st.sampled_from(RESOURCES), st.integers(0, 47), st.sampled_from(VALUES["model_id"]),
                    st.integers(0, 5000), st.integers(0, 3000))
window = st.tuples(st.integers(0, DAYS - 1), st.integers(1, 2))  # first day, days
gpus = st.tuples(st.just("gpus"), window, st.lists(gpu_row, max_size=25))
toks = st.tuples(st.just("tokens"), window, st.lists(tok_row, max_size=12))
inv_row = st.tuples(st.sampled_from(RESOURCES), tags, st.booleans())
inventory = st.tuples(st.just("inventory"), st.lists(inv_row, max_size=3, unique_by=lambda r: r[0]))
retention = st.tuples(st.just("retention"), st.integers(1, DAYS))
landings = st.lists(st.one_of(bill, gpus, toks, inventory, retention), min_size=1, max_size=9)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stored")


def _bill_csv(lines: list[Any]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["BilledCost", "EffectiveCost", "BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd",
                "ChargeCategory", "ServiceName", "BillingAccountId", "ProviderName", "ResourceId", "PricingCategory",
                "Tags"])
    for day, res, t, cost, pricing in lines:
        d = START + timedelta(days=day)
        w.writerow([cost, cost / 2, "USD", d.isoformat(), (d + timedelta(days=1)).isoformat(), "Usage",
                    "Amazon Elastic Compute Cloud", "acct", "AWS", res or "", pricing or "",
                    json.dumps(t) if t else ""])
    return out.getvalue()


def _land(store: Store, s: Settings, tmp: Path, op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "bill":
        path = tmp / op[1]
        path.write_text(_bill_csv(op[2]))
        [r] = ingest_focus(store, TagRules.from_settings(s), [path])
        assert r.status == "succeeded", r.error
        return
    if kind == "retention":
        apply_retention(store, op[1], now=START + timedelta(days=DAYS + 1))
        return
    if kind == "inventory":
        rows = [{"observed_at": START, "provider_name": "AWS", "resource_id": res, "resource_key": res,
                 "instance_type": "p4d.24xlarge", "gpu_count": 2, "host_names": [HOSTS[res]] if mapped else [], **t}
                for res, t, mapped in op[1]]
        schema = pa.schema([("observed_at", pa.timestamp("us")), ("provider_name", pa.string()),
                            ("resource_id", pa.string()), ("resource_key", pa.string()),
                            ("instance_type", pa.string()), ("gpu_count", pa.int32()),
                            ("host_names", pa.list_(pa.string()))] + [(d, pa.string()) for d in DIMS])
        task = Task("inv", None, lambda: Batch(facts={"inventory": pa.Table.from_pylist(rows, schema=schema)}))
        assert run_task(store, "aws_inventory", task).status == "succeeded"
        return
    (first, days), rows = op[1], op[2]
    start = START + timedelta(days=first)
    hours = days * 24
    if kind == "gpus":
        by_key = {}
        for res, by_host, hour, idx, busy, labels, share in rows:
            key = HOSTS[res] if by_host else res
            by_key[(res, hour % hours, idx, share)] = {
                "hour_start": start + timedelta(hours=hour % hours), "host": HOSTS[res], "resource_id": res,
                "resource_key": key, "gpu_uuid": f"GPU-{res}-{idx}", "busy": busy, "samples": 60,
                "namespace": "serve", "pod": f"{res}-pod" if share is None else f"{res}-pod-{share}",
                "time_share": share, **labels}
        schema = pa.schema([("hour_start", pa.timestamp("us")), ("host", pa.string()), ("resource_id", pa.string()),
                            ("resource_key", pa.string()), ("gpu_uuid", pa.string()), ("busy", pa.float64()),
                            ("samples", pa.int64()), ("namespace", pa.string()), ("pod", pa.string()),
                            ("time_share", pa.float64())]
                           + [(d, pa.string()) for d in DIMS[:3]])
        facts = {"gpu_hours": pa.Table.from_pylist(list(by_key.values()), schema=schema)}
    else:
        agg: dict[tuple[Any, ...], dict[str, Any]] = {}
        for res, hour, model, prompt, gen in rows:
            row = agg.setdefault((res, hour % hours, model), {
                "hour_start": start + timedelta(hours=hour % hours), "resource_id": res, "resource_key": res,
                "namespace": "serve", "pod": f"{res}-pod", "model_name": model, "prompt_tokens": 0,
                "generation_tokens": 0, "requests": 0})
            row["prompt_tokens"] += prompt
            row["generation_tokens"] += gen
            row["requests"] += 1
        schema = pa.schema([("hour_start", pa.timestamp("us")), ("resource_id", pa.string()),
                            ("resource_key", pa.string()), ("namespace", pa.string()), ("pod", pa.string()),
                            ("model_name", pa.string()), ("prompt_tokens", pa.int64()),
                            ("generation_tokens", pa.int64()), ("requests", pa.int64())])
        facts = {"token_hours": pa.Table.from_pylist(list(agg.values()), schema=schema)}
    task = Task("prop", Window(start, start + timedelta(days=days)), lambda: Batch(facts=facts))
    assert run_task(store, "prometheus", task).status == "succeeded"


@contextmanager
def from_scratch(store: Store) -> Iterator[None]:
    """Reports compute attribution from the facts while the stored tables are marked incomplete."""
    with store.transaction() as cur:
        cur.execute("UPDATE attr_state SET complete = false")
    try:
        yield
    finally:
        with store.transaction() as cur:
            cur.execute("UPDATE attr_state SET complete = true")


def _reports(store: Store, s: Settings, basis: str) -> dict[str, Any]:
    window = {"start": START.date(), "end": (START + timedelta(days=DAYS)).date(), "cost_basis": basis,
              "shared_cost_key": s.shared_cost_key}
    out = {name: get(name)(store, s, build_params(**window)).as_dict() for name in NAMES}
    out["ue-daily"] = get("unit-economics")(store, s, build_params(granularity="day", **window)).as_dict()
    out["untagged-gpu"] = get("untagged-spend")(store, s, build_params(scope="accelerator", **window)).as_dict()
    # Another shared-cost key than the stored one: what it weighs computed from the stored tables.
    other = "tokens" if s.shared_cost_key != "tokens" else "gpu_hours"
    for name in ("unit-economics", "weekly"):
        out[f"{name}-{other}"] = get(name)(store, s, build_params(**{**window, "shared_cost_key": other})).as_dict()
    # Another idle threshold than the stored one: att_daily summed from the other stored tables.
    out["ue-idle"] = get("unit-economics")(store, s, build_params(idle_threshold=0.5, **window)).as_dict()
    return out


def _rollups_are_direct(store: Store, s: Settings, basis: str) -> None:
    """The weekly report's tables by team, project and model, summed in Python from one pass, equal
    unit economics grouped by each."""
    whole = build_params(start=START.date(), end=(START + timedelta(days=DAYS)).date(), cost_basis=basis,
                         granularity="total")
    sets = (DIMS, ("team",), ("project",), ("model_id",))
    rolled = with_attribution(store, s, whole, lambda cur, att: unit_economics.build_many(cur, att, whole, sets),
                              reads=unit_economics.READS)
    for dims, report in zip(sets, rolled, strict=True):
        direct = get("unit-economics")(store, s, whole.model_copy(update={"group_by": dims}))
        assert (report.rows, report.totals) == (direct.rows, direct.totals)
    # The weekly report's two weeks from one pass over both: each half as if reported alone.
    mid = START.date() + timedelta(days=DAYS // 2)
    halves = (whole.model_copy(update={"end": mid}), whole.model_copy(update={"start": mid}))
    with snapshot(store) as cur:
        atts = [attribute_stored(cur, half, s, reads=unit_economics.READS) for half in halves]
        attribute_stored(cur, whole, s, reads={*unit_economics.READS, *untagged.reads(whole)})
        windows = tuple(zip(atts, halves, strict=True))
        both = unit_economics.build_windows(cur, windows, sets)
        spend = untagged.build_windows(cur, windows)
    for half, ue, unt in zip(halves, both, spend, strict=True):
        for dims, report in zip(sets, ue, strict=True):
            direct = get("unit-economics")(store, s, half.model_copy(update={"group_by": dims}))
            assert (report.rows, report.totals) == (direct.rows, direct.totals)
        assert unt.as_dict() == get("untagged-spend")(store, s, half).as_dict()


counter = iter(range(10**6))


@hsettings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=landings, basis=st.sampled_from(["effective", "billed"]))
def test_stored_attribution_equals_attribution_from_scratch(workdir: Path, ops: list[Any], basis: str,
                                                           migrated: Path) -> None:
    tmp = workdir / f"run{next(counter)}"
    tmp.mkdir()
    s = Settings(db=tmp / "s.duckdb", reports_dir=tmp / "reports")
    shutil.copyfile(migrated, s.db)
    store = open_store(s.db, s.duckdb)
    try:
        for op in ops:
            _land(store, s, tmp, op)
        with store.transaction() as cur:
            assert state(cur).complete and state(cur).shared_cost_key == s.shared_cost_key
        stored = _reports(store, s, basis)
        with from_scratch(store):
            scratch = _reports(store, s, basis)
        assert stored == scratch
        _rollups_are_direct(store, s, basis)
        ue = stored["ue-daily"]
        assert sum((r["cost"] for r in ue["rows"]), Decimal(0)) == ue["totals"]["ingested_total"]
        with store.transaction() as cur:
            column = "billed_cost" if basis == "billed" else "effective_cost"
            [(ingested,)] = cur.execute(f"SELECT coalesce(sum({column}), 0) FROM cost_lines").fetchall()
        assert ue["totals"]["ingested_total"] == ingested
    finally:
        store.close()


def test_a_policy_change_is_rebuilt_resumably_and_reports_follow_it(workdir: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = workdir / "policy"
    tmp.mkdir()
    s = Settings(db=tmp / "s.duckdb", reports_dir=tmp / "reports")
    store = open_store(s.db, s.duckdb)
    chatbot = dict(zip(DIMS[:3], ("chatbot", "core", "prod"), strict=True))
    # vm-c reports no telemetry: its line is shared between the two chatbot groups of the day, by
    # GPU-hours (i-a's group has more) or by generated tokens (i-b's group has more).
    ops: list[Any] = [
        ("bill", "a.csv", [(d, "i-a", {"project": "chatbot"}, Decimal("100"), None) for d in range(DAYS)]
         + [(0, "vm-c", {"project": "chatbot"}, Decimal("50"), None)]),
        ("gpus", (0, 2), [("i-a", False, h, 0, 0.5, chatbot, None) for h in range(0, 48, 3)]
                         + [("i-b", False, 1, 0, 0.5, {**chatbot, "team": "platform"}, None)]),
        ("tokens", (0, 2), [("i-a", h, "llama-70b", 10, 20) for h in range(0, 48, 5)]
                           + [("i-b", 1, "qwen-7b", 10, 5000)]),
    ]
    for op in ops:
        _land(store, s, tmp, op)
    tokens = Settings(db=s.db, reports_dir=s.reports_dir, shared_cost_key="tokens")
    with from_scratch(store):
        expected = _reports(store, tokens, "effective")
    assert _reports(store, s, "effective")["unit-economics"]["rows"] != expected["unit-economics"]["rows"]
    calls: list[tuple[int, int]] = []

    class Interrupt(Exception):
        pass

    def stop_after_first(done: int, total: int) -> None:
        calls.append((done, total))
        raise Interrupt

    # The first chunk commits, then the rebuild is interrupted: the store says incomplete, reports
    # under the new key are still right (computed on the fly), and a second run finishes the rest.
    monkeypatch.setattr(materialize, "CHUNK_DAYS", 1)
    with pytest.raises(Interrupt):
        rebuild(store.transaction, "tokens", stop_after_first)
    with store.transaction() as cur:
        st = state(cur)
    assert (st.shared_cost_key, st.complete, st.resume_from) == ("tokens", False, date(2026, 11, 3))
    assert _reports(store, tokens, "effective") == expected
    assert rebuild(store.transaction, "tokens", lambda d, t: calls.append((d, t))) == DAYS - 1
    assert calls == [(1, DAYS), (1, DAYS - 1), (2, DAYS - 1), (3, DAYS - 1)]
    with store.transaction() as cur:
        assert state(cur).complete
    assert _reports(store, tokens, "effective") == expected
    assert rebuild(store.transaction, "tokens") == 0  # idempotent
    store.close()


def test_a_resource_losing_its_dims_re_attributes_gpu_hours_reported_under_its_host_name(workdir: Path) -> None:
    """Found by the property above: a GPU reporting only its host name takes its dims from the
    resource the inventory maps the host to; when that resource's dims change (the host mapping
    itself unchanged), the days of those GPU-hours must be attributed again."""
    tmp = workdir / "host-dims"
    tmp.mkdir()
    s = Settings(db=tmp / "s.duckdb", reports_dir=tmp / "reports")
    store = open_store(s.db, s.duckdb)
    full = {"project": "chatbot", "team": "core", "model_id": "llama-70b", "environment": "prod"}
    try:
        _land(store, s, tmp, ("gpus", (0, 2), [("vm-c", True, 28, 0, 0.0, {"environment": "prod"}, None)]))
        _land(store, s, tmp, ("inventory", [("vm-c", full, True)]))
        tagged = _reports(store, s, "effective")["idle-gpus"]["rows"]
        assert [(r["project"], r["team"]) for r in tagged] == [("chatbot", "core")]
        _land(store, s, tmp, ("inventory", [("vm-c", {}, True)]))
        stored = _reports(store, s, "effective")
        with from_scratch(store):
            scratch = _reports(store, s, "effective")
        assert stored == scratch
        assert [r["project"] for r in stored["idle-gpus"]["rows"]] == ["__untagged__"]
    finally:
        store.close()


def _upgrade_to_0015_rebuilds_the_shared_amounts(store: Store) -> None:
    """A store at 0014 holding shared pieces is marked for a rebuild by 0015, which fills
    `attr_shared` with what landing keeps."""
    kept = sorted(store.query("SELECT * FROM attr_shared"), key=repr)
    assert {k for _, k, *_ in kept} == {"gpu_hours", "tokens", "even"}
    store.query("DROP TABLE attr_shared")
    store.query("UPDATE alembic_version SET version_num = '0014'")
    assert migrate.upgrade(store) == ("0014", migrate.head_revision())
    with store.transaction() as cur:
        assert not state(cur).complete
    assert rebuild(store.transaction, "gpu_hours") == 2  # the days the bill and telemetry cover
    assert sorted(store.query("SELECT * FROM attr_shared"), key=repr) == kept


def test_another_key_over_a_window_of_billed_gpus_equals_attribution_from_scratch(workdir: Path) -> None:
    """Every GPU-day on a billed resource: under another key the kept group-days are read with only
    the shared step's amounts swapped for the key's (kept per key at landing), and the pieces
    weighed again for reports that read them."""
    tmp = workdir / "billed"
    tmp.mkdir()
    s = Settings(db=tmp / "s.duckdb", reports_dir=tmp / "reports")
    store = open_store(s.db, s.duckdb)
    chatbot = dict(zip(DIMS[:3], ("chatbot", "core", "prod"), strict=True))
    # vm-c reports no telemetry: its line is shared between the two chatbot groups of day 0, by
    # GPU-hours (i-a's group has more) or by generated tokens (i-b's group has more).
    ops: list[Any] = [
        ("bill", "a.csv", [(d, r, {"project": "chatbot"}, Decimal("100"), None) for d in range(2) for r in ("i-a", "i-b")]
         + [(0, "vm-c", {"project": "chatbot"}, Decimal("50"), None)]),
        ("gpus", (0, 2), [("i-a", False, h, 0, 0.5, chatbot, None) for h in range(0, 48, 3)]
                         + [("i-b", False, 1, 0, 0.5, {**chatbot, "team": "platform"}, None)]),
        ("tokens", (0, 2), [("i-a", h, "llama-70b", 10, 20) for h in range(0, 48, 5)]
                           + [("i-b", 1, "qwen-7b", 10, 5000)]),
    ]
    try:
        for op in ops:
            _land(store, s, tmp, op)
        _upgrade_to_0015_rebuilds_the_shared_amounts(store)
        for key in ("tokens", "even"):
            other = Settings(db=s.db, reports_dir=s.reports_dir, shared_cost_key=key)
            reweighed = _reports(store, other, "effective")
            with from_scratch(store):
                expected = _reports(store, other, "effective")
            assert reweighed == expected
            assert reweighed["unit-economics"]["rows"] != _reports(store, s, "effective")["unit-economics"]["rows"]
        with store.transaction() as cur:  # the window this test is about: no GPU priced from its group
            assert cur.execute(GROUP_PRICED, [START.date(), (START + timedelta(days=DAYS)).date()]).fetchall() == [(False,)]
    finally:
        store.close()
