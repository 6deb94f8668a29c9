"""The load generator: its patterns, its bounds, and that it reports exactly the usage it received."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator

import pytest

from finops.simulate.load import PATTERNS, run_load
from tests.simulate.metrics import scrape, total
from tests.simulate.procs import FINOPS, free_port, simulator


@pytest.fixture(scope="module")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with simulator("vllm", "--token-delay", "0.001", log=tmp_path_factory.mktemp("load") / "vllm.log") as url:
        yield url


def test_patterns_shape_the_number_of_active_workers() -> None:
    steady, bursty, gaps = PATTERNS["steady"], PATTERNS["bursty"], PATTERNS["idle-gaps"]
    times = [i * 0.5 for i in range(16)]  # two 4-second periods
    assert {steady(t, 8, 4.0) for t in times} == {8}
    assert [bursty(t, 8, 4.0) for t in times[:8]] == [8, 8, 2, 2, 2, 2, 2, 2]
    assert [gaps(t, 8, 4.0) for t in times[:8]] == [8, 8, 8, 8, 0, 0, 0, 0]
    assert [gaps(t, 8, 4.0) for t in times[8:]] == [8, 8, 8, 8, 0, 0, 0, 0]
    assert bursty(3.0, 2, 4.0) == 1  # never below one worker


def test_run_load_returns_the_usage_the_server_counted(vllm: str) -> None:
    before = scrape(vllm)
    result = asyncio.run(run_load(vllm, "steady", duration=10, concurrency=3, max_requests=11, max_tokens=8))
    after = scrape(vllm)
    assert result.requests == 11 and result.errors == 0
    assert result.elapsed_seconds < 5  # stopped by the request budget, not the clock
    assert result.prompt_tokens == total(after, "vllm:prompt_tokens_total") - total(before, "vllm:prompt_tokens_total")
    assert result.completion_tokens == (total(after, "vllm:generation_tokens_total")
                                        - total(before, "vllm:generation_tokens_total"))
    assert sum(result.finish_reasons.values()) == 11
    assert result.completion_tokens <= 11 * 8


def test_run_load_stops_at_its_deadline(vllm: str) -> None:
    result = asyncio.run(run_load(vllm, "idle-gaps", duration=0.6, concurrency=2, period=0.4, max_tokens=4))
    assert result.requests > 0 and result.errors == 0
    assert result.elapsed_seconds < 0.6 + 1.0


def test_run_load_rejects_bad_arguments(vllm: str) -> None:
    with pytest.raises(ValueError, match="pattern 'wavy' is unknown"):
        asyncio.run(run_load(vllm, "wavy"))
    with pytest.raises(ValueError, match="must be positive"):
        asyncio.run(run_load(vllm, "steady", duration=0))


def test_cli_prints_the_totals(vllm: str) -> None:
    before = scrape(vllm)
    proc = subprocess.run([FINOPS, "simulate", "load", "--url", vllm, "--pattern", "bursty", "--duration", "5",  # noqa: S603
                           "--concurrency", "2", "--max-requests", "6", "--max-tokens", "5"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout.strip().splitlines()[-1])
    after = scrape(vllm)
    assert printed["requests"] == 6 and printed["errors"] == 0
    assert printed["completion_tokens"] == (total(after, "vllm:generation_tokens_total")
                                            - total(before, "vllm:generation_tokens_total"))
    assert printed["total_tokens"] == printed["prompt_tokens"] + printed["completion_tokens"]

    bad = subprocess.run([FINOPS, "simulate", "load", "--url", vllm, "--pattern", "wavy"],  # noqa: S603
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "unknown pattern 'wavy'" in bad.stderr
    down = subprocess.run([FINOPS, "simulate", "load", "--url", f"http://127.0.0.1:{free_port()}", "--duration", "1"],  # noqa: S603
                          capture_output=True, text=True, timeout=60, check=False)
    assert down.returncode == 1 and "ConnectError" in down.stderr
