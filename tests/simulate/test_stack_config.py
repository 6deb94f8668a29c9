"""The compose file, Prometheus and Alertmanager configs, Grafana provisioning and the Dockerfile,
validated with the real tools and without a container engine."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.simulate.procs import PROMTOOL, REPO

COMPOSE_BIN = str(Path(sys.executable).with_name("docker-compose"))
COMPOSE = REPO / "docker-compose.yml"
PROM_DIR = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "finops.json"
FINOPS_GAUGES = {"finops_cost_per_1k_generated_tokens", "finops_idle_gpu_hours", "finops_idle_gpu_cost",
                 "finops_untagged_share", "finops_source_freshness_seconds", "finops_budget_actual_cost",
                 "finops_budget_forecast_cost", "finops_budget_amount", "finops_anomalies",
                 "finops_cost_per_1m_prompt_tokens", "finops_cost_per_1m_generation_tokens", "finops_cache_savings"}


def compose(*args: str, file: Path = COMPOSE, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # No Docker engine is needed for `config`; DOCKER_HOST points nowhere to prove it.
    return subprocess.run(  # noqa: S603 - fixed binary
        [COMPOSE_BIN, "-f", str(file), "--project-directory", str(REPO), *args],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(REPO / ".no-home"), "DOCKER_HOST": "unix:///nonexistent.sock",
             **(env or {})},
    )


def normalised(profile: str) -> dict[str, Any]:
    proc = compose("--profile", profile, "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_compose_file_is_valid_for_each_profile(profile: str) -> None:
    proc = compose("--profile", profile, "config", "-q")
    assert proc.returncode == 0, proc.stderr
    assert compose("config", "-q").returncode == 0  # no profile: the always-on services alone


def test_a_broken_compose_file_fails_the_check(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("    ipc: host\n", "    ipc: host\n    bogus_key: 1\n", 1))
    proc = compose("--profile", "gpu", "config", "-q", file=broken)
    assert proc.returncode != 0 and "bogus_key" in proc.stderr
    ports = tmp_path / "ports.yml"
    ports.write_text(COMPOSE.read_text().replace('      - "${PROMETHEUS_PORT:-9090}:9090"\n',
                                                 "      9090\n", 1).replace("    ports:\n      9090", "    ports: 9090"))
    bad_ports = compose("config", "-q", file=ports)
    assert bad_ports.returncode != 0 and "services.prometheus.ports must be a array" in bad_ports.stderr


def test_profiles_swap_the_real_exporters_for_the_simulators() -> None:
    cpu, gpu = normalised("cpu")["services"], normalised("gpu")["services"]
    always = {"prometheus", "grafana", "finops", "alertmanager", "gateway"}
    assert set(gpu) == always | {"vllm", "dcgm-exporter"}
    assert set(cpu) == always | {"vllm-sim", "dcgm-sim", "load", "bill"}
    # The simulators answer on the names Prometheus scrapes.
    assert "vllm" in cpu["vllm-sim"]["networks"]["default"]["aliases"]
    assert "dcgm-exporter" in cpu["dcgm-sim"]["networks"]["default"]["aliases"]
    for name in ("vllm", "dcgm-exporter"):
        image = gpu[name]["image"]
        assert re.search(r":v?\d+\.\d+", image) and not image.endswith(":latest"), image  # pinned
        devices = gpu[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    for name in ("vllm", "vllm-sim", "dcgm-exporter", "dcgm-sim"):
        svc = gpu.get(name) or cpu[name]
        assert set(svc["labels"]) >= {"project", "team", "environment", "model_id"}, name


def test_vllm_settings_are_variables() -> None:
    env = {"VLLM_MODEL": "org/Other-7B-AWQ", "VLLM_SERVED_MODEL_NAME": "other", "VLLM_MAX_MODEL_LEN": "4096",
           "VLLM_GPU_MEMORY_UTILIZATION": "0.8"}
    proc = compose("--profile", "gpu", "config", "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    vllm = json.loads(proc.stdout)["services"]["vllm"]
    assert vllm["command"][0] == "org/Other-7B-AWQ"
    assert {"--served-model-name=other", "--max-model-len=4096", "--gpu-memory-utilization=0.8"} <= set(vllm["command"])
    assert "/health" in " ".join(vllm["healthcheck"]["test"])
    assert any(v["target"] == "/root/.cache/huggingface" for v in vllm["volumes"])
    assert vllm["labels"]["model_id"] == "other"


def test_finops_service_reads_the_bundled_prometheus() -> None:
    finops = normalised("cpu")["services"]["finops"]
    assert finops["build"]["dockerfile"] == "Dockerfile"
    assert finops["command"] == ["finops", "serve", "--host", "0.0.0.0", "--port", "8080"]
    assert finops["environment"]["FINOPS_PROMETHEUS_URL"] == "http://prometheus:9090"
    data = next(v for v in finops["volumes"] if v["type"] == "volume")
    assert finops["environment"]["FINOPS_DB"].startswith(data["target"] + "/")


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-ec2.yml"])
def test_prometheus_configs_pass_promtool(config: str) -> None:
    proc = subprocess.run([PROMTOOL, "check", "config", str(PROM_DIR / config)],  # noqa: S603
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rules found" in proc.stdout  # the alert rules were checked too


def test_promtool_fails_a_broken_config(tmp_path: Path) -> None:
    shutil.copytree(PROM_DIR, tmp_path / "prometheus")
    cfg = tmp_path / "prometheus" / "prometheus.yml"
    cfg.write_text(cfg.read_text().replace("scrape_interval: 15s", "scrape_interval: often", 1))
    proc = subprocess.run([PROMTOOL, "check", "config", str(cfg)],  # noqa: S603
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0


def test_prometheus_attaches_the_finops_labels() -> None:
    static = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in static["scrape_configs"]}
    for job, target in (("vllm", "vllm:8000"), ("dcgm", "dcgm-exporter:9400")):
        group = jobs[job]["static_configs"][0]
        assert group["targets"] == [target]
        assert {"project", "team", "environment"} <= set(group["labels"])
    # The finops service's gauges label themselves: no target labels, honoured as exported
    # (tests/api/test_prometheus_scrape.py scrapes it with a real Prometheus).
    finops = jobs["finops"]
    assert finops["honor_labels"] is True and "labels" not in finops["static_configs"][0]
    assert (PROM_DIR / finops["authorization"]["credentials_file"]).is_file()
    ec2 = yaml.safe_load((PROM_DIR / "prometheus-ec2.yml").read_text())
    for job in ec2["scrape_configs"]:
        assert job["ec2_sd_configs"]
        mapped = {r["target_label"]: r["source_labels"][0] for r in job["relabel_configs"]}
        assert mapped["project"] == "__meta_ec2_tag_Project" and mapped["model_id"] == "__meta_ec2_tag_ModelID"
        assert mapped["instance_id"] == "__meta_ec2_instance_id"


def test_alertmanager_routes_to_a_defined_receiver() -> None:
    cfg = yaml.safe_load((REPO / "deploy" / "alertmanager" / "alertmanager.yml").read_text())
    assert cfg["route"]["receiver"] in {r["name"] for r in cfg["receivers"]}


def dashboard_targets() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of the provisioned dashboard."""
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]


def test_grafana_dashboard_is_valid_and_every_panel_queries_prometheus() -> None:
    dash = json.loads(DASHBOARD.read_text())
    datasources = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasources["datasources"][0]["uid"]
    provider = yaml.safe_load((REPO / "deploy/grafana/provisioning/dashboards/finops.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert dash["panels"] and len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    for panel in dash["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == uid
        for t in panel["targets"]:
            assert t["expr"].strip() and t["datasource"]["uid"] == uid, panel["title"]
    exprs = " ".join(e for _, e in dashboard_targets())
    used = set(re.findall(r"\bfinops_[a-z0-9_]+", exprs))
    assert used == FINOPS_GAUGES  # the names the finops service exports, all of them
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for topic in ("cost per 1k generated tokens", "idle gpu hours", "idle gpu cost", "untagged",
                  "token throughput", "gpu busy", "budgets", "anomalies"):
        assert topic in titles


def test_dockerfile_runs_the_service_as_a_non_root_user() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, re.M)
    assert "pip install" in text and "finops" in re.findall(r"^CMD (.*)", text, re.M)[-1]
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "*.duckdb"} <= set(ignored)


def test_gateway_config_of_the_stack_loads_and_points_at_vllm() -> None:
    from finops.gateway.cli import load_gateway_settings

    gw = load_gateway_settings(REPO / "deploy" / "gateway" / "gateway.toml")
    assert gw.upstream_url.rstrip("/") == "http://vllm:8000"
    assert len(gw.keys) == 2


RULES_TEST = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # dcgm-exporter 3.x/4.x names with profiling metrics: idle, a model loaded.
      - series: 'DCGM_FI_PROF_GR_ENGINE_ACTIVE{{UUID="GPU-new",Hostname="node-a",instance_id="i-1"}}'
        values: '0.01x200'
      - series: 'DCGM_FI_DEV_FB_USED{{UUID="GPU-new",Hostname="node-a",instance_id="i-1"}}'
        values: '20000x200'
      # Older names (uuid, hostname) and no profiling metrics: GPU_UTIL in percent, idle.
      - series: 'DCGM_FI_DEV_GPU_UTIL{{uuid="GPU-old",hostname="node-b",instance_id="i-2"}}'
        values: '1x200'
      - series: 'DCGM_FI_DEV_FB_USED{{uuid="GPU-old",hostname="node-b",instance_id="i-2"}}'
        values: '20000x200'
      # Busy: never alerts.
      - series: 'DCGM_FI_DEV_GPU_UTIL{{uuid="GPU-busy",hostname="node-b",instance_id="i-2"}}'
        values: '90x200'
      - series: 'DCGM_FI_DEV_FB_USED{{uuid="GPU-busy",hostname="node-b",instance_id="i-2"}}'
        values: '20000x200'
    alert_rule_test:
      - eval_time: 180m
        alertname: GpuIdleWhileAllocated
        exp_alerts:
          - exp_labels: {{severity: info, gpu_id: GPU-new, host: node-a, instance_id: i-1}}
            exp_annotations: {{summary: "GPU GPU-new on node-a is allocated but idle"}}
          - exp_labels: {{severity: info, gpu_id: GPU-old, host: node-b, instance_id: i-2}}
            exp_annotations: {{summary: "GPU GPU-old on node-b is allocated but idle"}}
"""


def test_idle_gpu_rule_reads_old_and_new_dcgm_label_names_and_falls_back_to_gpu_util(tmp_path: Path) -> None:
    spec = tmp_path / "rules_test.yml"
    spec.write_text(RULES_TEST.format(rules=PROM_DIR / "rules" / "finops.yml"))
    proc = subprocess.run([PROMTOOL, "test", "rules", str(spec)],  # noqa: S603
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
