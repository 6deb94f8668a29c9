"""Collections landing while 20 clients read reports: no errors, and every answer is consistent."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from finops.batch import Batch, Task
from finops.collect import run_task
from finops.sources.focus import SOURCE as FOCUS
from finops.sources.focus import file_task
from finops.tags import TagRules
from finops.timeutil import Window
from tests.api.conftest import WEEK, Api, Keys
from tests.support.example_a import BILL, DAY, focus_csv, telemetry

READERS = 20
NEW_DAYS = 6  # example A's day is repeated on the rest of its ISO week
DAY_COST = sum(Decimal(line[4]) for line in BILL)
REQUESTS: list[tuple[str, dict[str, str]]] = [
    ("unit-economics", {"week": WEEK}),
    ("unit-economics", {"week": WEEK, "group_by": "team", "granularity": "day"}),
    ("unit-economics", {"week": WEEK, "group_by": "model_id,project"}),
    ("weekly", {"week": WEEK}),
    ("idle-gpus", {"week": WEEK}),
    ("untagged-spend", {"week": WEEK}),
]


def total(rows: list[dict[str, Any]], field: str) -> Any:
    return sum((r[field] for r in rows), Decimal(0))


def check(name: str, body: dict[str, Any]) -> Decimal:
    """Assert a report is internally consistent; return the total cost it saw."""
    rows, t = body["rows"], body["totals"]
    if name == "unit-economics":
        for f in ("cost", "prompt_tokens", "generation_tokens", "gpu_hours", "idle_cost", "usage_cost"):
            assert total(rows, f) == t[f], f
        assert t["ingested_total"] == t["cost"]
        return Decimal(t["cost"])
    if name == "weekly":
        assert total(rows, "cost") == t["cost"] == t["ingested_total"] and t["control_total_matches"]
        assert total(body["chargeback_team"], "cost") == t["cost"]
        return Decimal(t["cost"])
    if name == "idle-gpus":
        assert total(rows, "idle_cost") == t["idle_cost"]
        assert sum(r["idle_hours"] for r in rows) == t["idle_hours"]
        return Decimal(-1)
    assert total(rows, "cost") == t["total_cost"] and total(rows, "untagged_cost") == t["untagged_cost"]
    return Decimal(t["total_cost"])


def land_days(api: Api, tmp_path: Path, done: threading.Event, errors: list[str]) -> None:
    """Bill and telemetry of one more day per step, each through run_task (one transaction each)."""
    rules = TagRules.from_settings(api.settings)
    try:
        for i in range(1, NEW_DAYS + 1):
            day = DAY + timedelta(days=i)
            path = tmp_path / f"day{i}.csv"
            path.write_text(focus_csv(day))
            facts = telemetry(day)
            results = [run_task(api.store, FOCUS, file_task(rules, path)),
                       run_task(api.store, "prometheus",
                                Task(f"day-{i}", Window(day, day + timedelta(days=1)), lambda f=facts: Batch(facts=f)))]
            errors += [f"collection: {r.error}" for r in results if r.status != "succeeded"]
            time.sleep(0.05)  # let readers see each intermediate state
    finally:
        done.set()


def test_reads_stay_consistent_while_collections_land(api: Api, keys: Keys, tmp_path: Path) -> None:
    done = threading.Event()
    errors: list[str] = []
    seen: Counter[Decimal] = Counter()
    answered = Counter[str]()
    lock = threading.Lock()

    def read(n: int) -> None:
        with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {keys.finance}"}, timeout=60) as c:
            i = n
            while not done.is_set() or i < n + 2 * len(REQUESTS):
                name, params = REQUESTS[i % len(REQUESTS)]
                i += 1
                try:
                    r = c.get(f"/v1/reports/{name}", params=params)
                    assert r.status_code == 200, f"{r.status_code} {r.text[:200]}"
                    cost = check(name, json.loads(r.text, parse_float=Decimal))
                except Exception as exc:  # collected, so one reader's failure does not hide the rest
                    with lock:
                        errors.append(f"{name} {params}: {exc!r}")
                    continue
                with lock:
                    answered[name] += 1
                    if cost >= 0:
                        seen[cost] += 1

    readers = [threading.Thread(target=read, args=(n,)) for n in range(READERS)]
    for t in readers:
        t.start()
    writer = threading.Thread(target=land_days, args=(api, tmp_path, done, errors))
    writer.start()
    writer.join(60)
    for t in readers:
        t.join(60)
    assert not errors, errors[:5]
    assert sum(answered.values()) >= READERS * 2 * len(REQUESTS)
    # Each answer saw whole days only (a batch lands atomically), and the last state is all days.
    assert set(seen) <= {DAY_COST * k for k in range(1, NEW_DAYS + 2)}, sorted(seen)
    final = json.loads(api.get("/v1/reports/weekly", keys.finance, params={"week": WEEK}).text, parse_float=Decimal)
    assert final["totals"]["cost"] == DAY_COST * (NEW_DAYS + 1)
    assert len(seen) > 1  # readers did run while data landed
