"""docs/deploy.md, "From an empty machine to cost per 1k tokens", followed with the CPU profile's
processes on 127.0.0.1: each service runs the command docker-compose.yml gives its container (as
`docker compose config` resolves it), with the shipped deploy/finops/finops.toml and
deploy/prometheus/prometheus.yml. What differs from a real deployment is only what a test cannot
wait for: hosts and ports, paths, and the timers (the collector's period is 3 s instead of an hour,
the drop folder is checked every 3 s). The test ends where the doc does: the dashboard's cost per
1k tokens panel, evaluated by the real Prometheus, has a line for the simulated node's team and model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.simulate.metrics import query
from tests.simulate.procs import FINOPS, REPO, Service, free_port, prometheus, services
from tests.simulate.test_stack_config import normalised

PANEL = "Cost per 1k generated tokens by model and team"


def _command(service: dict[str, Any], swaps: dict[str, str]) -> tuple[str, ...]:
    """The container's command, with `finops` this environment's and the swapped strings replaced."""
    argv = []
    for arg in service["command"]:
        for old, new in swaps.items():
            arg = arg.replace(old, new)
        argv.append(arg)
    assert argv[0] == "finops", argv
    return (FINOPS, *argv[1:])


def _finops_config(tmp: Path, bills: Path) -> Path:
    """The shipped finops.toml with the drop folder here and its timers at test speed, plus a
    Prometheus collection every 3 s that includes the current (unfinished) hour."""
    text = (REPO / "deploy/finops/finops.toml").read_text()
    for old, new in (('folder = "/bills"', f'folder = "{bills}"'), ("every_minutes = 5", "every_minutes = 0.05"),
                     ("settle_seconds = 30", "settle_seconds = 0")):
        assert text.count(old) == 1, old  # the doc's config changed: follow it here
        text = text.replace(old, new)
    text += ("\n[schedule.sources.prometheus]\nevery_minutes = 0.05\ninclude_current = true\ninitial_days = 1\n"
             "[schedule.weekly]\nenabled = false\n")
    path = tmp / "finops.toml"
    path.write_text(text)
    return path


def _prometheus_config(ports: dict[str, int], key_file: Path) -> str:
    """The shipped prometheus.yml scraping this test's processes every second."""
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config.pop("alerting"), config.pop("rule_files")  # Alertmanager and the rules are not part of this
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    for job, port in ports.items():
        jobs[job]["static_configs"][0]["targets"] = [f"127.0.0.1:{port}"]
    jobs["finops"]["authorization"]["credentials_file"] = str(key_file)
    config["scrape_configs"] = [jobs[j] for j in ports]
    return yaml.safe_dump(config)


def test_the_deploy_doc_ends_with_cost_per_1k_tokens_on_the_dashboard(tmp_path: Path) -> None:
    stack = normalised("cpu")["services"]
    ports = {"vllm": free_port(), "dcgm": free_port(), "finops": free_port()}
    bills = tmp_path / "bills"
    bills.mkdir()
    vllm_url = f"http://127.0.0.1:{ports['vllm']}"
    swaps = {"--host=0.0.0.0": "--host=127.0.0.1", "--port=8000": f"--port={ports['vllm']}",
             "--port=9400": f"--port={ports['dcgm']}", "http://vllm:8000": vllm_url, "/bills": str(bills)}
    key_file = tmp_path / "finops-api-key"
    key_file.write_text("")  # as shipped: no key yet
    db = tmp_path / "data" / "finops.duckdb"
    env = {**os.environ, **stack["finops"]["environment"], "FINOPS_DB": str(db),
           "FINOPS_CONFIG": str(_finops_config(tmp_path, bills)),
           "FINOPS_DUCKDB_TEMP_DIRECTORY": str(tmp_path / "data" / "duckdb_tmp"),
           "FINOPS_PROMETHEUS_STEP_SECONDS": "3"}
    prom = prometheus(_prometheus_config(ports, key_file), tmp_path / "prometheus")
    env["FINOPS_PROMETHEUS_URL"] = prom.url
    finops_argv = _command(stack["finops"], {"0.0.0.0": "127.0.0.1", "8080": str(ports["finops"])})
    procs = [Service(_command(stack["vllm-sim"], swaps), "/health", tmp_path / "vllm.log", ports["vllm"]),
             Service(_command(stack["dcgm-sim"], swaps), "/health", tmp_path / "dcgm.log", ports["dcgm"])]
    # Step 1: the stack (the finops service with the deploy config and the drop folder).
    with services(prom, *procs) as (prom_url, _, _):
        db.parent.mkdir()
        with (tmp_path / "finops.log").open("wb") as log:
            finops = subprocess.Popen(finops_argv, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
            load = subprocess.Popen(_command(stack["load"], swaps), stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
            # Step 2: the bill service writes the simulated node's bill into the drop folder.
            bill = subprocess.Popen(_command(stack["bill"], swaps), stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            api = f"http://127.0.0.1:{ports['finops']}"
            wait(lambda: _ok(f"{api}/healthz"), 30, "the finops service")
            # Step 3: the keys, created through the running service; the last line is the key.
            admin = _key(env, "admin", "me")
            key_file.write_text(_key(env, "viewer", "prometheus") + "\n")
            prom_proc_reload(prom_url)
            # Step 4: the dashboard's panel, as Grafana asks Prometheus for it.
            dashboard = json.loads((REPO / "deploy/grafana/dashboards/finops.json").read_text())
            [expr] = [t["expr"] for p in dashboard["panels"] if p["title"] == PANEL for t in p["targets"]]
            wait(lambda: any(r["metric"].get("team") == "coreai" for r in query(prom_url, expr)), 90,
                 f"the {PANEL!r} panel to show a line", log=tmp_path / "finops.log")
            [line] = [r for r in query(prom_url, expr) if r["metric"].get("team") == "coreai"]
            assert line["metric"]["model_id"] == "qwen2.5-7b-instruct" and line["metric"]["project"] == "chatbot"
            assert float(line["value"][1]) > 0
            # ... and the API answers the doc's request with the same group's cost and tokens.
            week = datetime.now(UTC).strftime("%G-W%V")  # `date -u +%G-W%V`: the live processes' week
            report = httpx.get(f"{api}/v1/reports/unit-economics", params={"group_by": "team,model_id", "week": week},
                               headers={"Authorization": f"Bearer {admin}"}, timeout=30).json()
            [row] = [r for r in report["rows"] if r["team"] == "coreai"]
            assert float(row["cost"]) > 0 and row["generation_tokens"] > 0
        finally:
            for p in (bill, load, finops):
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in (bill, load, finops):
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def prom_proc_reload(prom_url: str) -> None:
    """`docker compose kill -s SIGHUP prometheus`: Prometheus re-reads its configuration (and the
    key file is read at every scrape anyway); the lifecycle endpoint is off here, so nothing to do but
    check Prometheus still answers."""
    assert httpx.get(f"{prom_url}/-/ready", timeout=5).status_code == 200


def _key(env: dict[str, str], role: str, name: str) -> str:
    out = subprocess.run([FINOPS, "keys", "create", "--role", role, "--name", name], env=env,  # noqa: S603
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip().splitlines()[-1].strip()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait(condition: Any, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{log.read_text()[-3000:]}" if log else ""))
