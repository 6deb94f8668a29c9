"""A two-node GPU cluster, against a real Prometheus: kube-state-metrics, dcgm-exporter with pod
attribution and vLLM series backfilled as their exporters expose them (and as a Prometheus scraping
them without honor_labels stores them). The bill knows only the nodes' instances, tagged with the
cluster; the FinOps labels are on the pods. Expected amounts are computed here from the scenario by
the documented rule: a node's day splits over its pods' groups by GPU-hours, and a GPU no pod holds
is idle at the node's hour cost (docs/attribution.md, docs/definitions.md 6.2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from finops.collect import collect, ingest_focus
from finops.reports.idle_gpus import idle_gpus
from finops.reports.params import build_params
from finops.reports.unit_economics import unit_economics
from finops.settings import PrometheusSettings, Settings
from finops.store import Store
from finops.tags import TagRules
from finops.timeutil import Window
from tests.support.prometheus import OMSeries, PrometheusServer

D = datetime(2026, 11, 10)
T0 = int(D.replace(tzinfo=UTC).timestamp())
HOUR = 3600
# Scrapes every 5 minutes, 150 s past, so none sits on an hour edge.
SCRAPES = range(T0 - HOUR + 150, T0 + 25 * HOUR, 300)
NODES = {"node-a": ("aws:///us-east-1a/i-0aaa", "240.00"), "node-b": ("aws:///us-east-1b/i-0bbb", "96.00")}
LABELS = {  # pod -> its FinOps labels, as kube-state-metrics exposes the allow-listed ones
    "alpha-1": {"label_project": "chatbot", "label_team": "alpha", "label_environment": "prod", "label_model_id": "llama-70b"},
    "alpha-2": {"label_project": "chatbot", "label_team": "alpha", "label_environment": "prod", "label_model_id": "llama-70b"},
    "beta-1": {"label_project": "search", "label_team": "beta", "label_environment": "prod", "label_model_id": "mistral-7b"},
    "gamma-1": {"label_project": "batch", "label_team": "gamma", "label_environment": "dev", "label_model_id": "qwen-7b"},
}
EXPORTER = "nvidia-dcgm-exporter-7xk2p"
# GPU (UUID, MIG instance) -> (node, [(pod or None, first hour, end hour)])
GPUS = {
    ("GPU-a0", ""): ("node-a", [("alpha-1", -1, 25)]),
    ("GPU-a1", ""): ("node-a", [("alpha-1", -1, 25)]),
    ("GPU-a2", ""): ("node-a", [("beta-1", -1, 25)]),
    ("GPU-a3", ""): ("node-a", [(None, -1, 25)]),  # no pod: idle, at node-a's hour cost
    ("GPU-b0", ""): ("node-b", [("gamma-1", -1, 12), ("alpha-2", 12, 25)]),  # the pod changes at noon
    # GPU-b1 is split in two MIG slices: one for alpha-2 all day, one for gamma-1 until noon, then idle.
    ("GPU-b1", "1"): ("node-b", [("alpha-2", -1, 25)]),
    ("GPU-b1", "2"): ("node-b", [("gamma-1", -1, 12), (None, 12, 25)]),
}
POD_NODE = {"alpha-1": "node-a", "beta-1": "node-a", "gamma-1": "node-b", "alpha-2": "node-b", EXPORTER: "node-a"}


def cluster_series() -> list[OMSeries]:
    ksm = {"job": "kube-state-metrics", "instance": "10.0.0.9:8080"}
    out = [OMSeries("kube_pod_labels", {**ksm, "namespace": "ml", "pod": pod, **labels}, "gauge",
                    [(t, 1.0) for t in SCRAPES]) for pod, labels in LABELS.items()]
    # The exporter's own pod is labelled too: its labels must never reach the GPU it leaves unused.
    out.append(OMSeries("kube_pod_labels", {**ksm, "namespace": "gpu-operator", "pod": EXPORTER,
                                            "label_team": "platform"}, "gauge", [(t, 1.0) for t in SCRAPES]))
    out += [OMSeries("kube_pod_info", {**ksm, "namespace": "gpu-operator" if pod == EXPORTER else "ml", "pod": pod,
                                       "node": node, "uid": f"uid-{pod}", "host_ip": "10.0.1.1"}, "gauge",
                     [(t, 1.0) for t in SCRAPES]) for pod, node in POD_NODE.items()]
    out += [OMSeries("kube_node_info", {**ksm, "node": node, "provider_id": provider, "kernel_version": "6.8"},
                     "gauge", [(t, 1.0) for t in SCRAPES]) for node, (provider, _) in NODES.items()]
    for (uuid, mig), (node, spans) in GPUS.items():
        for pod, first, end in spans:
            # dcgm-exporter's labels (its pod mapping adds the workload's namespace/pod/container);
            # Prometheus adds the exporter's own as the target's, renaming the mapped ones exported_*.
            labels = {"gpu": uuid[-1], "UUID": uuid, "Hostname": node, "modelName": "NVIDIA H100 80GB HBM3",
                      "namespace": "gpu-operator", "pod": EXPORTER, "container": "nvidia-dcgm-exporter"}
            if mig:
                labels |= {"GPU_I_ID": mig, "GPU_I_PROFILE": "3g.40gb"}
            if pod:
                labels |= {"exported_namespace": "ml", "exported_pod": pod, "exported_container": "vllm"}
            times = [t for t in SCRAPES if T0 + first * HOUR <= t < T0 + end * HOUR]
            out.append(OMSeries("DCGM_FI_PROF_GR_ENGINE_ACTIVE", labels, "gauge",
                                [(t, 0.5 if pod else 0.0) for t in times]))
    vllm = {"namespace": "ml", "pod": "alpha-1", "instance": "10.0.2.7:8000", "job": "vllm", "model_name": "llama-70b"}
    out.append(OMSeries("vllm:generation_tokens_total", vllm, "counter",
                        [(t, float(100 * i)) for i, t in enumerate(SCRAPES)]))
    return out


def bill_csv() -> str:
    head = "BilledCost,EffectiveCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,ServiceName," \
           "BillingAccountId,ProviderName,ResourceId,Tags\n"
    rows = [f'{cost},{cost},USD,{D:%Y-%m-%d}T00:00:00Z,{D + timedelta(days=1):%Y-%m-%d}T00:00:00Z,Usage,'
            f'Amazon Elastic Compute Cloud,123456789012,AWS,arn:aws:ec2:us-east-1:123456789012:instance/'
            f'{provider.rsplit("/", 1)[1]},"{json.dumps({"cluster": "prod-eks"}).replace(chr(34), chr(34) * 2)}"'
            for provider, cost in NODES.values()]
    return head + "\n".join(rows) + "\n"


@pytest.fixture
def landed(store: Store, settings: Settings, rules: TagRules, tmp_path: Path) -> Settings:
    bill = tmp_path / "bill.csv"
    bill.write_text(bill_csv())
    assert ingest_focus(store, rules, [bill])[0].status == "succeeded"
    with PrometheusServer.from_series(tmp_path / "prom", cluster_series()) as prom:
        cfg = settings.model_copy(update={"prometheus": PrometheusSettings(
            url=prom.url, max_retries=0, timeout_seconds=10, kubernetes=True, token_source="vllm")})
        [run] = collect(store, cfg, "prometheus", Window(D, D + timedelta(days=1)))
    assert run.status == "succeeded", run.error
    assert run.details["pods"] == 5 and run.details["nodes"] == 2
    return cfg


def test_each_node_bill_splits_over_its_pods_by_gpu_hours(store: Store, landed: Settings) -> None:
    params = build_params(start=D.date(), end=(D + timedelta(days=1)).date(), group_by="team")
    got = {r["team"]: r["cost"] for r in unit_economics(store, landed, params).rows}
    assert got.pop("__untagged__") == 0  # the unused GPU's hours: idle, never a group's cost
    a_cost, b_cost = (Decimal(c) for _, c in NODES.values())
    # node-a: alpha 2 GPUs x 24 h, beta 1 x 24 h (the unused GPU takes no share);
    # node-b: gamma 12 h of the whole GPU + 12 h of its 3g slice, alpha 12 h + 24 h of its 3g slice
    # (the idle half day none); a 3g slice's hour weighs 3/7 of a whole GPU's (docs/definitions.md 6.2).
    slice_ = Decimal(3) / 7
    alpha_b, gamma_b = 12 + 24 * slice_, 12 + 12 * slice_
    want = {"alpha": a_cost * 48 / 72 + b_cost * alpha_b / (alpha_b + gamma_b), "beta": a_cost * 24 / 72,
            "gamma": b_cost * gamma_b / (alpha_b + gamma_b)}
    assert set(got) == set(want) and all(abs(got[t] - want[t]) < Decimal("1e-11") for t in want), got
    assert sum(got.values()) == a_cost + b_cost  # nothing unallocated: every dollar on a pod's group


def test_the_pods_tokens_land_on_their_labels_and_node(store: Store, landed: Settings) -> None:
    rows = store.query("SELECT team, model_id, resource_key, sum(generation_tokens) FROM token_hours GROUP BY ALL")
    assert rows == [("alpha", "llama-70b", "i-0aaa", 100 * 24 * 12)]


def test_a_gpu_no_pod_holds_is_idle_at_its_node_hour_cost(store: Store, landed: Settings) -> None:
    params = build_params(start=D.date(), end=(D + timedelta(days=1)).date())
    rows = {(r["gpu_uuid"], r["mig_instance"] or ""): r for r in idle_gpus(store, landed, params).rows}
    assert set(rows) == set(GPUS)
    unused = rows[("GPU-a3", "")]
    assert unused["idle_hours"] == 24 and unused["team"] == "__untagged__"  # not the exporter pod's team
    assert unused["idle_cost"] == Decimal(NODES["node-a"][1]) / (4 * 24) * 24
    assert rows[("GPU-b1", "2")]["idle_hours"] == 12 and rows[("GPU-b1", "2")]["mig_profile"] == "3g.40gb"
    assert all(r["idle_hours"] == 0 for g, r in rows.items() if g not in (("GPU-a3", ""), ("GPU-b1", "2")))
    gpus = dict(store.query("SELECT gpu_uuid || '/' || coalesce(mig_instance, ''), any_value(resource_key) "
                            "FROM gpu_hours GROUP BY ALL"))
    assert gpus == {f"{u}/{m}": "i-0" + node[-1] * 3 for (u, m), (node, _) in GPUS.items()}
