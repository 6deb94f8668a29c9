"""Our allocations out as FOCUS 1.3, and back in: export, ingest into a new store, the same reports.

Worked example A (two days: the docs' day, and a day whose lines are shared between groups and
split by telemetry), exported with `finops export focus`, its totals the bill's; a new store that
ingests the file (with the same telemetry) gives the same reports to the cent.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from finops.batch import Batch, Task
from finops.cli import app
from finops.collect import ingest_focus, run_task
from finops.reports import get
from finops.reports.focus_export import METHOD, focus_export, to_csv
from finops.reports.params import build_params
from finops.settings import Settings
from finops.store import Store, open_store
from finops.tags import TagRules
from finops.timeutil import Window
from tests.support import example_a

DAY2 = example_a.DAY + timedelta(days=1)
BILL2 = [
    example_a.BILL[0],
    ("AWS", "Amazon Elastic Compute Cloud", "i-gpu2", {"project": "Chatbot", "team": "CoreAI", "environment": "prod"},
     "120.37"),
    ("AWS", "Elastic Load Balancing", "lb-shared", {"Team": "coreai"}, "100.01"),
    ("AWS", "Amazon Simple Storage Service", "bucket-logs", None, "30.005"),
]
WINDOW = {"start": "2026-11-02", "end": "2026-11-04"}
REPORTS = [("unit-economics", {"granularity": "day"}), ("unit-economics", {}), ("idle-gpus", {}),
           ("untagged-spend", {})]


def _telemetry(store: Store, day: object) -> None:
    facts = example_a.telemetry(day)  # type: ignore[arg-type]
    task = Task("example-a", Window(day, day + timedelta(days=1)), lambda: Batch(facts=facts))  # type: ignore[operator]
    assert run_task(store, "prometheus", task).status == "succeeded"


def _example(store: Store, rules: TagRules, tmp: Path) -> None:
    example_a.load(store, rules, tmp)
    (tmp / "day2.csv").write_text(example_a.focus_csv(DAY2, BILL2))
    [r] = ingest_focus(store, rules, [tmp / "day2.csv"])
    assert r.status == "succeeded", r.error
    _telemetry(store, DAY2)


def _reports(store: Store, settings: Settings) -> list[dict[str, object]]:
    return [get(name)(store, settings, build_params(**WINDOW, **extra)).as_dict() for name, extra in REPORTS]


BILLED = sum(Decimal(c) for *_, c in example_a.BILL) + sum(Decimal(c) for *_, c in BILL2)


@pytest.mark.parametrize("ext", ["parquet", "csv"])
def test_the_export_reads_back_to_the_same_reports(store: Store, settings: Settings, rules: TagRules,
                                                   tmp_path: Path, migrated: Path, ext: str) -> None:
    _example(store, rules, tmp_path)
    out = tmp_path / f"allocations.{ext}"
    result = CliRunner().invoke(app, ["export", "focus", "--start", WINDOW["start"], "--end", WINDOW["end"],
                                      "--out", str(out)], env={"FINOPS_DB": str(settings.db)})
    assert result.exit_code == 0, result.output
    expected = _reports(store, settings)

    # The file: zeroed origin rows beside their allocations, whose amounts are the bill's.
    table = focus_export(store, settings, build_params(**WINDOW).start, build_params(**WINDOW).end).to_pylist()
    assert sum((r["BilledCost"] for r in table), Decimal(0)) == BILLED
    assert sum((r["EffectiveCost"] for r in table), Decimal(0)) == BILLED
    assert {r["AllocatedMethodId"] for r in table} == {METHOD}
    origins = [r for r in table if r["x_AttributionStep"] is None]
    assert origins and all(r["BilledCost"] == 0 and r["AllocatedResourceId"] is None for r in origins)
    shared = [r for r in table if r["x_AttributionStep"] == "shared"]
    # lb-shared's line (team coreai only) went to the two coreai groups of day 2: their dims the bill lacked.
    assert sorted(json.loads(r["AllocatedTags"])["modelid"] for r in shared) == ["llama-70b", "mistral-7b"]
    assert all("team" not in json.loads(r["AllocatedTags"]) for r in shared)  # Tags already says it
    assert sum((r["BilledCost"] for r in shared), Decimal(0)) == Decimal("100.01")
    tele = [r for r in table if r["x_AttributionStep"] == "telemetry"]
    assert tele and all(r["x_GpuHours"] and r["x_GpuHours"] > 0 for r in tele)
    if ext == "parquet":
        assert pq.read_table(out).num_rows == len(table)
    else:
        assert out.read_bytes() == to_csv(focus_export(store, settings, build_params(**WINDOW).start,
                                                        build_params(**WINDOW).end))

    # A new store, the same telemetry, the export as its bill: the same reports.
    other = Settings(db=tmp_path / "other.duckdb")
    other.db.write_bytes(migrated.read_bytes())
    back = open_store(other.db)
    try:
        [r] = ingest_focus(back, TagRules.from_settings(other), [out])
        assert (r.status, r.quarantined) == ("succeeded", 0), r.error
        for day in (example_a.DAY, DAY2):
            _telemetry(back, day)
        got = _reports(back, other)
    finally:
        back.close()
    for (name, _), want, have in zip(REPORTS, expected, got, strict=True):
        if name == "untagged-spend":
            # The same spend; what was untagged on the first bill is tagged by the allocations now.
            assert have["totals"]["total_cost"] == want["totals"]["total_cost"] == BILLED
            assert have["totals"]["untagged_cost"] < want["totals"]["untagged_cost"]
            continue
        assert have["rows"] == want["rows"], name
        assert have["totals"] == want["totals"], name
