"""The notebooks' data access: the API and a read-only snapshot give the same report documents."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from finops.demo.fleet import RESOURCES
from finops.demo.reader import ApiSource, ReadError, SnapshotSource, Unavailable, frame, from_env
from finops.settings import Settings
from finops.timeutil import iso_week
from tests.demo.conftest import Demo, Served, monday_before


def test_api_and_snapshot_give_the_same_documents(demo: Demo, served: Served) -> None:
    api = ApiSource(served.url, served.key)
    snap = SnapshotSource(demo.snapshot, Settings(db=demo.snapshot))
    week = iso_week(monday_before(demo.end))
    start = demo.end - timedelta(days=14)
    for name, params in (("weekly", {"week": week}),
                         ("unit-economics", {"start": start, "end": demo.end, "group_by": "team,model_id",
                                             "granularity": "week"}),
                         ("idle-gpus", {"start": start, "end": demo.end, "idle_threshold": 0.1})):
        a, b = api.report(name, **params), snap.report(name, **params)
        assert a["rows"] and a == b, name
    weekly = api.report("weekly", week=week)
    assert isinstance(weekly["totals"]["ingested_total"], Decimal)  # money stays exact
    assert sum((r["cost"] for r in weekly["rows"]), Decimal(0)) == weekly["totals"]["ingested_total"]
    df = frame(weekly["chargeback_team"])
    assert df["cost"].dtype == float and abs(df["cost"].sum() - float(weekly["totals"]["ingested_total"])) < 0.01


def test_errors_name_the_problem(demo: Demo, served: Served) -> None:
    with pytest.raises(ReadError, match="HTTP 401"):
        ApiSource(served.url, None).report("weekly", week="2026-W01")
    with pytest.raises(ReadError, match="granularity"):
        ApiSource(served.url, served.key).report("unit-economics", granularity="hourly")
    with pytest.raises(ReadError, match="granularity"):
        SnapshotSource(demo.snapshot, Settings(db=demo.snapshot)).report("unit-economics", granularity="hourly")
    with pytest.raises(ReadError, match="cannot be opened read-only"):  # the service holds it for writing
        SnapshotSource(demo.db, Settings(db=demo.db)).report("idle-gpus")
    with pytest.raises(Unavailable):
        ApiSource(served.url, served.key).gpu_hours(demo.end - timedelta(days=1), demo.end)


def test_the_environment_picks_the_source(demo: Demo) -> None:
    api = from_env({"FINOPS_API_URL": "http://127.0.0.1:1", "FINOPS_API_KEY": "fk_x"})
    assert isinstance(api, ApiSource) and api.key == "fk_x"
    snap = from_env({"FINOPS_DB": str(demo.snapshot)})
    assert isinstance(snap, SnapshotSource) and snap.db == demo.snapshot
    hours = snap.gpu_hours(demo.end - timedelta(days=1), demo.end)
    assert len(hours) == sum(r.gpus for r in RESOURCES) * 24 and all(0 <= h["busy"] <= 1 for h in hours)
