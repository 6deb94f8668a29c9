"""deploy/kubernetes: every manifest of the base and of each overlay (its patches applied, as kustomize
would) validates against the Kubernetes schemas (`kubernetes-validate`); the custom resources point at
what exists; the ConfigMap's settings load; the pod labels are the ones kube-state-metrics is told to
expose and finops reads; the Prometheus scrape configuration passes `promtool check config`."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
import yaml

from finops.settings import Settings
from tests.simulate.procs import PROMTOOL, REPO

K8S = REPO / "deploy" / "kubernetes"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
CRDS = {"ServiceMonitor", "ScaledObject"}  # not in the Kubernetes schemas; checked below


def build(directory: Path) -> list[dict[str, Any]]:
    """The documents a kustomization yields: its resources (recursively) with its JSON6902 patches."""
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for res in k.get("resources", []):
        path = directory / res
        docs += build(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    for gen in k.get("configMapGenerator", []):
        data = {Path(f).name: (directory / f).read_text() for f in gen["files"]}
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data})
    for patch in k.get("patches", []):
        target = patch["target"]
        matched = [d for d in docs if d["kind"] == target["kind"] and d["metadata"]["name"] == target["name"]]
        assert len(matched) == 1, f"{directory}: patch target {target} matches {len(matched)} documents"
        patched = jsonpatch.apply_patch(matched[0], yaml.safe_load(patch["patch"]))
        docs[docs.index(matched[0])] = patched
    if "namespace" in k:
        for d in docs:
            if d["kind"] != "Namespace":
                d["metadata"]["namespace"] = k["namespace"]
    return docs


@pytest.mark.parametrize("where", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_every_manifest_validates_against_the_kubernetes_schemas(where: str) -> None:
    docs = build(K8S / where)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "PersistentVolumeClaim", "ConfigMap", "ServiceMonitor", "ScaledObject"} <= kinds
    version = kubernetes_validate.latest_version()
    for d in docs:
        if d["kind"] not in CRDS:
            kubernetes_validate.validate(d, version, strict=True)  # raises on any schema violation
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    # The custom resources reach what the base defines.
    scaled = by_name[("ScaledObject", "vllm")]["spec"]
    assert ("Deployment", scaled["scaleTargetRef"]["name"]) in by_name
    assert "vllm:num_requests_waiting" in scaled["triggers"][0]["metadata"]["query"]
    for monitor in (d for d in docs if d["kind"] == "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        services = [d for d in docs if d["kind"] == "Service"
                    and selector.items() <= d["metadata"].get("labels", {}).items()]
        assert services, f"ServiceMonitor {monitor['metadata']['name']} selects no Service"
        ports = {p["name"] for p in services[0]["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    finops_monitor = by_name[("ServiceMonitor", "finops")]["spec"]["endpoints"][0]
    assert finops_monitor["honorLabels"] is True  # the KPI gauges keep their own team/project


def test_the_service_runs_as_one_writer_with_its_settings_mounted() -> None:
    docs = build(K8S / "base")
    finops = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "finops")
    spec = finops["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    [container] = spec["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    config_mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert env["FINOPS_CONFIG"] == f"{config_mount['mountPath']}/finops.toml"
    # The settings the ConfigMap carries load, with Kubernetes joins on.
    toml = tomllib.loads(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["finops.toml"])
    settings = Settings(**toml)
    assert settings.prometheus.kubernetes is True
    assert settings.schedule.focus_drop.folder is not None


def test_pod_labels_are_allow_listed_and_read_as_the_dims() -> None:
    vllm = next(d for d in build(K8S / "base") if d["kind"] == "Deployment" and d["metadata"]["name"] == "vllm")
    pod_labels = vllm["spec"]["template"]["metadata"]["labels"]
    values = yaml.safe_load((K8S / "helm" / "kube-state-metrics.yaml").read_text())
    [allow] = values["metricLabelsAllowlist"]
    allowed = re.fullmatch(r"pods=\[(.*)\]", allow).group(1).split(",")  # type: ignore[union-attr]
    assert set(allowed) <= set(pod_labels)
    # kube-state-metrics writes `label_` + the name with non-alphanumerics as `_`: finops reads those.
    dim_labels = Settings().prometheus.dim_labels
    exposed = {"label_" + re.sub(r"[^a-zA-Z0-9_]", "_", name) for name in allowed}
    assert exposed == {names[1] for names in dim_labels.values()}


def test_the_in_cluster_scrape_configuration_passes_promtool(tmp_path: Path) -> None:
    """Debian's Prometheus is built without Kubernetes service discovery, so its promtool checks the
    configuration with each `kubernetes_sd_configs` replaced by a static target: everything else
    (relabelling, authorization, honor_labels) is checked by the real promtool."""
    config = yaml.safe_load((K8S / "prometheus" / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        for sd in job.pop("kubernetes_sd_configs"):
            assert sd["role"] in ("pod", "service", "endpoints", "node")
        job["static_configs"] = [{"targets": ["placeholder:9090"]}]
        if "authorization" in job:
            key = tmp_path / "finops-api-key"
            key.write_text("fk_placeholder\n")
            job["authorization"]["credentials_file"] = str(key)
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config))
    done = subprocess.run([PROMTOOL, "check", "config", str(checked)], capture_output=True, text=True,  # noqa: S603
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {j["job_name"] for j in config["scrape_configs"]} == {"kube-state-metrics", "dcgm-exporter", "vllm", "finops"}
