"""Worked example A with a MIG GPU (docs/definitions.md 9.7): the same day, plus `i-mig5`, one A100
split into a 4g and a 3g MIG instance. Every figure of the docs' tables is asserted here."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from finops.batch import Batch, Task
from finops.collect import ingest_focus, run_task
from finops.reports import get
from finops.reports.params import build_params
from finops.settings import Settings
from finops.store import Store
from finops.tags import TagRules
from finops.timeutil import Window
from tests.support import example_a

DAY = example_a.DAY
MIG_LINE = ("AWS", "Amazon Elastic Compute Cloud", "i-mig5",
            {"Project": "chatbot", "Team": "coreai", "Environment": "prod"}, "84.00")
A100 = "NVIDIA A100 80GB PCIe"
# (MIG profile, instance, busy all day, pod): the 4g instance serves qwen-7b, the 3g one nothing.
SLICES = [("4g.40gb", "1", 0.75, "qwen-0"), ("3g.40gb", "2", 0.0, None)]
QWEN = (1_000_000, 500_000)  # prompt and generated tokens of the day


@pytest.fixture
def example(store: Store, rules: TagRules, tmp_path: Path) -> Store:
    path = tmp_path / "example-a-mig.csv"
    path.write_text(example_a.focus_csv(DAY, [*example_a.BILL, MIG_LINE]))
    [r] = ingest_focus(store, rules, [path])
    assert r.status == "succeeded", r.error
    facts = example_a.telemetry(DAY)
    gpu = [{"hour_start": DAY + timedelta(hours=h), "host": "host-i-mig5", "resource_id": "i-mig5",
            "resource_key": "i-mig5", "gpu_uuid": "GPU-i-mig5-0", "gpu_index": "0", "gpu_model": A100, "busy": busy,
            "samples": 60, "mig_profile": profile, "mig_instance": instance, "namespace": "serve" if pod else None,
            "pod": pod}
           for profile, instance, busy, pod in SLICES for h in range(24)]
    tokens = [{"hour_start": DAY + timedelta(hours=h), "instance": "host-i-mig5:8000", "resource_id": "i-mig5",
               "resource_key": "i-mig5", "namespace": "serve", "pod": "qwen-0", "model_name": "qwen-7b",
               "prompt_tokens": QWEN[0] // 24 + (QWEN[0] % 24 if h == 0 else 0),
               "generation_tokens": QWEN[1] // 24 + (QWEN[1] % 24 if h == 0 else 0), "requests": 10}
              for h in range(24)]
    facts = {"gpu_hours": pa.concat_tables([facts["gpu_hours"], pa.Table.from_pylist(gpu)], promote_options="default"),
             "token_hours": pa.concat_tables([facts["token_hours"], pa.Table.from_pylist(tokens)],
                                             promote_options="default")}
    task = Task("example-a", Window(DAY, DAY + timedelta(days=1)), lambda: Batch(facts=facts))
    assert run_task(store, "prometheus", task).status == "succeeded"
    return store


def test_the_mig_instances_cost_their_slices(example: Store, settings: Settings) -> None:
    params = build_params(start=DAY.date(), end=(DAY + timedelta(days=1)).date())
    idle = {(r["gpu_uuid"], r["mig_instance"]): r for r in get("idle-gpus")(example, settings, params).rows}
    four, three = idle[("GPU-i-mig5-0", "1")], idle[("GPU-i-mig5-0", "2")]
    # 84.00 / 24 h = 3.50 a GPU-hour, 0.50 a slice-hour: the 4g instance 2.00 an hour, the 3g 1.50.
    with example.transaction() as cur:
        hour = dict(cur.execute("SELECT mig_instance, hour_cost_effective FROM attr_gpu "
                                "WHERE gpu_uuid = 'GPU-i-mig5-0'").fetchall())
    assert hour == {"1": Decimal("2.00"), "2": Decimal("1.50")}
    assert (four["idle_hours"], four["idle_cost"]) == (0, 0)
    assert (three["idle_hours"], three["idle_cost"], three["mig_profile"]) == (24, Decimal("36.00"), "3g.40gb")
    # The rest of example A is as in 9.4.
    assert idle[("GPU-i-gpu4-0", None)]["idle_cost"] == Decimal("48.00")

    ue = {tuple(r[d] for d in ("project", "team", "environment", "model_id")): r
          for r in get("unit-economics")(example, settings, params).rows}
    qwen = ue[("chatbot", "coreai", "prod", "qwen-7b")]
    # The machine's bill carries no model: the one model it served that day takes both instances
    # (the idle 3g instance too), so qwen-7b bears the whole 84.00.
    assert (qwen["cost"], qwen["gpu_hours"], qwen["generation_tokens"]) == (Decimal("84.00"), 48, QWEN[1])
    assert qwen["usage_cost"] == Decimal("36.00")  # 2.00 x 0.75 x 24
    assert qwen["idle_cost"] == Decimal("36.00")  # the 3g instance's 24 idle hours at 1.50
    assert qwen["cost_per_1k_generated_tokens"] == Decimal("0.168")  # 84.00 / 500
    # Example A's own rows are unchanged (9.3).
    assert ue[("chatbot", "coreai", "prod", "llama-70b")]["cost"] == Decimal("240.00")
    assert ue[("search", "platform", "prod", "mistral-7b")]["cost"] == Decimal("96.00")
