"""`finops simulate vllm` under real uvicorn, driven by the `openai` package and raw HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.simulate.metrics import samples, scrape, total
from tests.simulate.procs import simulator

MODEL = "sim-7b"
SYSTEM = "You are terse."  # You / are / terse / .  -> 4 tokens
USER = "Name three prime numbers, please."  # Name / three / prime / numbers / , / please / .  -> 7 tokens
# The simulator's chat template adds 4 tokens per message and 3 to open the assistant turn.
CHAT_PROMPT_TOKENS = (4 + 4) + (7 + 4) + 3
PROMPT = "one two three four five"
PROMPT_TOKENS = 5
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]


@pytest.fixture(scope="module")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    with simulator("vllm", "--served-model-name", MODEL, "--max-model-len", "512", "--token-delay", "0.001",
                   log=log) as url:
        yield url


@pytest.fixture
def client(vllm: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{vllm}/v1", api_key="unused", max_retries=0, timeout=20) as c:
        yield c


def words(text: str | None) -> int:
    return len((text or "").split())


def test_models_lists_the_served_name(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]


def test_openai_client_chat_and_completions_streaming_and_not(vllm: str, client: openai.OpenAI) -> None:
    before = scrape(vllm)
    usages: list[tuple[int, int]] = []
    reasons: list[str] = []

    # Chat, not streaming.
    chat = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=12, seed=7)
    text = chat.choices[0].message.content
    assert chat.usage is not None and chat.object == "chat.completion"
    assert chat.usage.prompt_tokens == CHAT_PROMPT_TOKENS
    assert chat.usage.completion_tokens == words(text) <= 12
    assert chat.usage.total_tokens == CHAT_PROMPT_TOKENS + words(text)
    assert chat.choices[0].finish_reason == ("length" if words(text) == 12 else "stop")
    usages.append((chat.usage.prompt_tokens, chat.usage.completion_tokens))
    reasons.append(chat.choices[0].finish_reason)

    # Chat, streaming with usage: the same text as the same request without streaming.
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=12, seed=7, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert [c.usage is not None for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1].choices == []
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    final = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert final == [chat.choices[0].finish_reason]
    u = chunks[-1].usage
    assert u is not None and (u.prompt_tokens, u.completion_tokens) == (CHAT_PROMPT_TOKENS, words(streamed))
    usages.append((u.prompt_tokens, u.completion_tokens))
    reasons += final

    # Completions, not streaming, running into max_tokens (vLLM's ignore_eos).
    comp = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=9, extra_body={"ignore_eos": True})
    assert comp.usage is not None and comp.object == "text_completion"
    assert (comp.usage.prompt_tokens, comp.usage.completion_tokens) == (PROMPT_TOKENS, 9)
    assert words(comp.choices[0].text) == 9 and comp.choices[0].finish_reason == "length"
    usages.append((comp.usage.prompt_tokens, comp.usage.completion_tokens))
    reasons.append("length")

    # Completions, streaming with usage.
    cstream = list(client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=30, stream=True,
                                             stream_options={"include_usage": True}))
    ctext = "".join(c.choices[0].text for c in cstream if c.choices)
    cu = cstream[-1].usage
    assert cu is not None and cstream[-1].choices == []
    assert (cu.prompt_tokens, cu.completion_tokens) == (PROMPT_TOKENS, words(ctext))
    creason = [c.choices[0].finish_reason for c in cstream if c.choices and c.choices[0].finish_reason]
    assert creason == ["length" if words(ctext) == 30 else "stop"]
    usages.append((cu.prompt_tokens, cu.completion_tokens))
    reasons += creason

    # The counters moved by exactly the usage the clients were given.
    after = scrape(vllm)
    label = {"model_name": MODEL, "engine": "0"}
    assert total(after, "vllm:prompt_tokens_total", **label) - total(before, "vllm:prompt_tokens_total", **label) \
        == sum(p for p, _ in usages)
    assert total(after, "vllm:generation_tokens_total", **label) \
        - total(before, "vllm:generation_tokens_total", **label) == sum(g for _, g in usages)
    for reason, n in Counter(reasons).items():
        key = "vllm:request_success_total"
        assert total(after, key, finished_reason=reason) - total(before, key, finished_reason=reason) == n
    assert total(after, "vllm:e2e_request_latency_seconds_count") \
        - total(before, "vllm:e2e_request_latency_seconds_count") == len(usages)
    assert total(after, "vllm:num_requests_running") == 0 and total(after, "vllm:num_requests_waiting") == 0


def test_streams_without_usage_have_no_usage_and_end_with_done(vllm: str, client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5, stream=True))
    assert chunks and all(c.usage is None for c in chunks) and all(c.choices for c in chunks)

    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 4, "stream": True}
    for options, usage_events in ((None, 0), ({"include_usage": False}, 0), ({"include_usage": True}, 1)):
        raw = httpx.post(f"{vllm}/v1/completions", json=body | ({"stream_options": options} if options else {}),
                         timeout=10)
        assert raw.headers["content-type"].startswith("text/event-stream")
        events = [e for e in raw.text.split("\n\n") if e]
        assert all(e.startswith("data: ") for e in events)
        assert events[-1] == "data: [DONE]"
        payloads = [json.loads(e[6:]) for e in events[:-1]]
        assert sum("usage" in p for p in payloads) == usage_events
        text = "".join(p["choices"][0]["text"] for p in payloads if p["choices"])
        assert 1 <= len(text.split()) <= 4
        if usage_events:
            assert payloads[-1]["choices"] == []
            assert payloads[-1]["usage"] == {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": len(text.split()),
                                             "total_tokens": PROMPT_TOKENS + len(text.split()),
                                             "prompt_tokens_details": None}


def test_output_is_deterministic_for_a_seed(client: openai.OpenAI) -> None:
    def text(seed: int) -> str:
        r = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=40, seed=seed,
                                      extra_body={"ignore_eos": True})
        return r.choices[0].text

    assert text(1) == text(1)
    assert text(1) != text(2)


def test_bad_requests_answer_like_vllm(client: openai.OpenAI, vllm: str) -> None:
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.completions.create(model="other-model", prompt=PROMPT, max_tokens=3)
    with pytest.raises(openai.BadRequestError, match="stream=True"):
        client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=3, stream_options={"include_usage": True})
    with pytest.raises(openai.BadRequestError, match="maximum context length is 512"):
        client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=600)
    r = httpx.post(f"{vllm}/v1/chat/completions", json={"model": MODEL, "max_tokens": 3}, timeout=5)
    assert r.status_code == 400 and "messages" in r.json()["error"]["message"]


def test_disconnected_stream_counts_its_tokens_as_aborted(vllm: str) -> None:
    before = scrape(vllm)
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 400, "ignore_eos": True, "stream": True}
    received = 0
    with httpx.stream("POST", f"{vllm}/v1/completions", json=body, timeout=10) as resp:
        for line in resp.iter_lines():
            received += line.startswith("data: ")
            if received == 3:
                break
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        after = scrape(vllm)
        if total(after, "vllm:request_success_total", finished_reason="abort") > \
                total(before, "vllm:request_success_total", finished_reason="abort"):
            break
        time.sleep(0.05)
    generated = total(after, "vllm:generation_tokens_total") - total(before, "vllm:generation_tokens_total")
    assert total(after, "vllm:request_success_total", finished_reason="abort") \
        - total(before, "vllm:request_success_total", finished_reason="abort") == 1
    assert 3 <= generated < 400
    assert total(after, "vllm:num_requests_running") == 0


def test_requests_beyond_max_num_seqs_wait(tmp_path: Path) -> None:
    with simulator("vllm", "--max-num-seqs", "2", "--token-delay", "0.02", log=tmp_path / "v.log") as url:
        body = {"prompt": PROMPT, "max_tokens": 25, "ignore_eos": True}

        seen: set[tuple[float, float]] = set()
        kv: list[float] = []

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=10) as ac:
                tasks = [asyncio.create_task(ac.post("/v1/completions", json=body)) for _ in range(4)]
                while not all(t.done() for t in tasks):
                    async with httpx.AsyncClient(timeout=5) as probe:
                        m = samples((await probe.get(f"{url}/metrics")).text)
                    seen.add((total(m, "vllm:num_requests_running"), total(m, "vllm:num_requests_waiting")))
                    kv.append(total(m, "vllm:kv_cache_usage_perc"))
                    await asyncio.sleep(0.02)
                return [await t for t in tasks]

        responses = asyncio.run(burst())
        assert [r.json()["usage"]["completion_tokens"] for r in responses] == [25] * 4
        assert (2.0, 2.0) in seen  # two running, two queued behind them
        assert max(s[0] for s in seen) == 2.0
        assert 0 < max(kv) < 1
        idle = scrape(url)
        assert total(idle, "vllm:kv_cache_usage_perc") == 0 and total(idle, "vllm:num_requests_running") == 0
