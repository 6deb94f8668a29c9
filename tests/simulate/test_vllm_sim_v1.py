"""`finops simulate vllm`'s V1 signals under real uvicorn: prefix-cache hits counted as vLLM counts
them (and reported in `usage` with `--enable-prompt-tokens-details`), sleep mode and its gauge, and
every finish reason exposed from the start."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from finops.simulate.engine import BLOCK_SIZE, FINISHED_REASONS
from finops.simulate.prefix import PrefixCache
from finops.simulate.text import chat_prompt, chat_prompt_tokens, tokens
from tests.simulate.metrics import scrape, total
from tests.simulate.procs import simulator

MODEL = "sim-7b"
# 40 words: two full blocks of 16 tokens and 8 more.
SYSTEM = " ".join(f"w{i}" for i in range(40))


@pytest.fixture(scope="module")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    with simulator("vllm", "--served-model-name", MODEL, "--token-delay", "0.001",
                   "--enable-prompt-tokens-details", log=log) as url:
        yield url


def chat(url: str, user: str) -> dict[str, int]:
    body = {"model": MODEL, "max_tokens": 4, "messages": [{"role": "system", "content": SYSTEM},
                                                           {"role": "user", "content": user}]}
    resp = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)
    resp.raise_for_status()
    usage = resp.json()["usage"]
    return {"prompt": usage["prompt_tokens"], "cached": usage["prompt_tokens_details"]["cached_tokens"]}


def test_the_chat_template_count_is_the_rendered_prompt() -> None:
    contents = [SYSTEM, "Name three primes."]
    assert len(chat_prompt([("system", contents[0]), ("user", contents[1])])) == chat_prompt_tokens(contents)


def test_a_shared_prefix_is_cached_in_whole_blocks_and_counted_by_source(vllm: str) -> None:
    before = scrape(vllm)
    first, second = chat(vllm, "first question here"), chat(vllm, "another one entirely")
    # The template's 3 tokens + 40 system words + its closing token: 44 shared tokens, 2 full blocks.
    shared = 3 + 40 + 1
    assert first["cached"] == 0
    assert second["cached"] == shared // BLOCK_SIZE * BLOCK_SIZE == 32
    again = chat(vllm, "first question here")  # the whole prompt is cached but for its last token's block
    assert again["cached"] == (again["prompt"] - 1) // BLOCK_SIZE * BLOCK_SIZE
    after = scrape(vllm)

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    cached = first["cached"] + second["cached"] + again["cached"]
    prompt = first["prompt"] + second["prompt"] + again["prompt"]
    assert grew("vllm:prompt_tokens_cached_total") == cached
    assert grew("vllm:prompt_tokens_by_source_total", source="local_cache_hit") == cached
    assert grew("vllm:prompt_tokens_by_source_total", source="local_compute") == prompt - cached
    assert grew("vllm:prompt_tokens_by_source_total", source="external_kv_transfer") == 0
    assert grew("vllm:prompt_tokens_total") == prompt
    assert grew("vllm:prefix_cache_hits_total") == cached


def test_the_prefix_cache_evicts_the_least_recently_used_block() -> None:
    cache = PrefixCache(block_size=2, capacity_blocks=2)
    a, b = tokens("a a b b c"), tokens("x x y y z")
    cache.add(a)
    assert cache.cached_tokens(a) == 4
    cache.add(b)  # two blocks more: a's are the oldest and go
    assert cache.cached_tokens(a) == 0 and cache.cached_tokens(b) == 4
    # A prompt of whole blocks keeps its last block computed.
    cache.add(tokens("x x y y"))
    assert cache.cached_tokens(tokens("x x y y")) == 2


def test_every_finish_reason_and_sleep_state_is_exposed_from_the_start(vllm: str) -> None:
    got = scrape(vllm)
    for reason in FINISHED_REASONS:
        assert ("vllm:request_success_total", frozenset({"model_name": MODEL, "engine": "0",
                                                           "finished_reason": reason}.items())) in got
    assert total(got, "vllm:engine_sleep_state", sleep_state="awake") == 1
    assert total(got, "vllm:engine_sleep_state", sleep_state="weights_offloaded") == 0


@pytest.mark.parametrize(("level", "state"), [(1, "weights_offloaded"), (2, "discard_all")])
def test_a_sleeping_engine_refuses_generation_and_says_so_in_its_gauge(vllm: str, level: int, state: str) -> None:
    assert httpx.post(f"{vllm}/sleep", params={"level": level}, timeout=5).status_code == 200
    try:
        assert httpx.get(f"{vllm}/is_sleeping", timeout=5).json() == {"is_sleeping": True}
        got = scrape(vllm)
        assert total(got, "vllm:engine_sleep_state", sleep_state=state) == 1
        assert total(got, "vllm:engine_sleep_state", sleep_state="awake") == 0
        resp = httpx.post(f"{vllm}/v1/completions", json={"model": MODEL, "prompt": "hi", "max_tokens": 2},
                          timeout=5)
        assert resp.status_code == 503
    finally:
        assert httpx.post(f"{vllm}/wake_up", timeout=5).status_code == 200
    assert httpx.get(f"{vllm}/is_sleeping", timeout=5).json() == {"is_sleeping": False}
    assert total(scrape(vllm), "vllm:engine_sleep_state", sleep_state="awake") == 1
    assert httpx.post(f"{vllm}/sleep", params={"level": 3}, timeout=5).status_code == 400
