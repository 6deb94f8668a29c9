"""The dcgm-exporter simulator: its text against the real exporter's shape, and its coupling to vLLM load."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from finops.simulate.dcgm import DcgmSimConfig, Sampler, busy_fraction, make_gpus, render, running_requests
from tests.conftest import SCRAPES
from tests.simulate.metrics import Samples, scrape, total
from tests.simulate.procs import FINOPS, PROMTOOL, free_port, simulator

SAMPLES = SCRAPES
LABEL_NAMES = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="')


def _first_series_line(text: str, metric: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(metric + "{"))


def test_rendered_series_have_the_real_exporters_label_set_and_value_format() -> None:
    real = (SAMPLES / "dcgm_metrics_sample.txt").read_text()
    real_line = next(line for line in real.splitlines()
                     if line.startswith("DCGM_FI_DEV_POWER_USAGE{") and "pod=" not in line)
    cfg = DcgmSimConfig(hostname="gpu-node-1", gpus=make_gpus(2, "gpu-node-1", {}))
    text = render(cfg, Sampler(cfg).states)
    ours = _first_series_line(text, "DCGM_FI_DEV_POWER_USAGE")
    assert LABEL_NAMES.findall(ours) == LABEL_NAMES.findall(real_line)
    # Float fields with six decimals (`113.611000`), integer fields as integers.
    assert re.search(r"\} \d+\.\d{6}$", real_line) and re.search(r"\} \d+\.\d{6}$", ours)
    assert re.search(r"\} \d+$", _first_series_line(text, "DCGM_FI_DEV_GPU_UTIL"))
    assert re.search(r"\} \d+$", _first_series_line(text, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"))
    assert "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter" in text
    uuids = set(re.findall(r'UUID="(GPU-[0-9a-f-]{36})"', text))
    assert len(uuids) == 2


def test_rendered_text_parses_with_promtool() -> None:
    cfg = DcgmSimConfig(hostname="h", gpus=make_gpus(2, "h", {0: "http://127.0.0.1:1"}))
    proc = subprocess.run([PROMTOOL, "check", "metrics"], input=render(cfg, Sampler(cfg).states),  # noqa: S603
                          capture_output=True, text=True, timeout=30, check=False)
    # 3 = lint findings only. The real exporter's names fail the same lints (camelCase `modelName`,
    # a counter without `_total`); a parse error would exit 1.
    assert proc.returncode in (0, 3), proc.stderr
    assert "parsing error" not in proc.stderr + proc.stdout


def test_running_requests_read_from_vllm_metrics() -> None:
    # The real (V0-era) vLLM capture: idle server.
    assert running_requests((SAMPLES / "vllm_metrics_sample.txt").read_text()) == 0
    two_engines = (
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{engine="0",model_name="m"} 2.0\n'
        'vllm:num_requests_running{engine="1",model_name="m"} 3.0\n'
        'vllm:num_requests_waiting{engine="0",model_name="m"} 7.0\n'
    )
    assert running_requests(two_engines) == 5
    assert [busy_fraction(r, 4.0) for r in (0, 1, 4, 9)] == [0.0, 0.25, 1.0, 1.0]


def test_make_gpus_rejects_a_binding_to_a_missing_gpu() -> None:
    with pytest.raises(ValueError, match="GPU index 3 does not exist"):
        make_gpus(2, "h", {3: "http://x"})
    proc = subprocess.run([FINOPS, "simulate", "dcgm", "--gpus", "2", "--bind", "nonsense"],  # noqa: S603
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2 and "INDEX=URL" in proc.stderr


def _scrape_until(url: str, ready: Callable[[Samples], bool], timeout: float = 5.0) -> Samples:
    deadline = time.monotonic() + timeout
    while not ready(m := scrape(url)):
        assert time.monotonic() < deadline, "the simulator never reached the expected state"
        time.sleep(0.05)
    return m


def _gpu(samples: Samples, name: str, gpu: str) -> float:
    return total(samples, name, gpu=gpu)


def test_bound_gpu_is_busy_only_while_its_server_has_requests(tmp_path: Path) -> None:
    with simulator("vllm", "--token-delay", "0.01", log=tmp_path / "vllm.log") as vllm, \
            simulator("dcgm", "--gpus", "3", "--bind", f"0={vllm}", "--bind", f"2=http://127.0.0.1:{free_port()}",
                      "--interval", "0.1", "--hostname", "node-x", log=tmp_path / "dcgm.log") as dcgm:
        idle = _scrape_until(dcgm, lambda m: _gpu(m, "DCGM_FI_DEV_FB_USED", "0") > 0)  # the first samples
        assert [_gpu(idle, "DCGM_FI_PROF_GR_ENGINE_ACTIVE", g) for g in "012"] == [0, 0, 0]
        # A loaded model holds memory even when idle; a GPU with no (reachable) server holds none.
        assert _gpu(idle, "DCGM_FI_DEV_FB_USED", "0") > 0
        assert _gpu(idle, "DCGM_FI_DEV_FB_USED", "1") == _gpu(idle, "DCGM_FI_DEV_FB_USED", "2") == 0

        body = {"prompt": "keep the engine busy", "max_tokens": 80, "ignore_eos": True}
        with httpx.Client(base_url=vllm, timeout=10) as c:
            done = threading.Event()
            worker = threading.Thread(target=lambda: (c.post("/v1/completions", json=body), done.set()))
            worker.start()
            busy_seen: list[float] = []
            other_seen: list[float] = []
            while not done.is_set():
                m = scrape(dcgm)
                busy_seen.append(_gpu(m, "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "0"))
                other_seen += [_gpu(m, "DCGM_FI_PROF_GR_ENGINE_ACTIVE", g) for g in "12"]
                time.sleep(0.05)
            worker.join()
        assert max(busy_seen) == busy_fraction(1, 4.0)  # one request in flight, default saturation 4
        assert set(other_seen) == {0.0}

        after = _scrape_until(dcgm, lambda m: _gpu(m, "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "0") == 0)  # idle again
        energy = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
        gained = {g: _gpu(after, energy, g) - _gpu(idle, energy, g) for g in "01"}
        assert gained["1"] > 0 and gained["0"] > gained["1"]  # idle GPUs draw power too, busy ones more
