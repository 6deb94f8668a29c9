"""The gateway end to end: real uvicorn servers on loopback, the openai package and httpx as clients."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import openai
import pytest

from finops.gateway.identity import Identifier
from finops.gateway.metrics import GatewayMetrics
from finops.gateway.proxy import Gateway
from finops.gateway.wire import build_client
from finops.settings.gateway import GatewaySettings
from finops.tags import DIMS, TagRules
from tests.gateway.conftest import (
    ALPHA,
    ALPHA_KEY,
    BETA,
    BETA_KEY,
    UNTAGGED,
    Upstream,
    scrape,
    total,
    wait_for,
)

TOKENS = "finops_gateway_tokens_total"
REQUESTS = "finops_gateway_requests_total"


def words(text: str) -> int:
    """The test's own token count for text (the fake upstream's tokenizer is whitespace too)."""
    return len(text.split())


def oai(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=10)


def sse_objects(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON events of an SSE body, as they arrive."""
    return (json.loads(ln[6:]) for ln in lines if ln.startswith("data: {"))


class Received:
    """What one team's clients were told they used (usage), or what they verifiably received."""

    def __init__(self) -> None:
        self.prompt = 0
        self.generation = 0
        self.requests = 0

    def add(self, prompt: int, generation: int) -> None:
        self.prompt += prompt
        self.generation += generation
        self.requests += 1


def run_mix(url: str, key: str, rx: Received, tag: str) -> None:
    """A mix of streamed and whole requests over chat, completions and embeddings, via openai and httpx."""
    with oai(url, key) as client:
        _run_openai(client, url, key, rx, tag)


def _run_openai(client: openai.OpenAI, url: str, key: str, rx: Received, tag: str) -> None:
    messages = [{"role": "system", "content": f"you are {tag}"},
                {"role": "user", "content": f"tell {tag} a short story please"}]

    r = client.chat.completions.create(model="tiny", messages=messages, max_tokens=5)  # type: ignore[arg-type]
    assert r.usage is not None
    rx.add(r.usage.prompt_tokens, r.usage.completion_tokens)

    # Streamed, client asks for usage: it gets exactly one usage chunk, last.
    chunks = list(client.chat.completions.create(model="tiny", messages=messages, max_tokens=7,  # type: ignore[arg-type]
                                                 stream=True, stream_options={"include_usage": True}))
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and chunks[-1] is usage_chunks[0] and chunks[-1].choices == []
    rx.add(usage_chunks[0].usage.prompt_tokens, usage_chunks[0].usage.completion_tokens)  # type: ignore[union-attr]

    # Streamed, client did not ask: no usage leaks; count what it received with the test's own rule.
    chunks = list(client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, stream=True))  # type: ignore[arg-type]
    assert all(c.usage is None and c.choices for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    rx.add(sum(words(m["content"]) for m in messages), words(text))

    c = client.completions.create(model="tiny", prompt=f"once upon a time {tag}", max_tokens=4)
    assert c.usage is not None
    rx.add(c.usage.prompt_tokens, c.usage.completion_tokens)

    stream = client.completions.create(model="tiny", prompt=f"the {tag} end", max_tokens=3, stream=True)
    text = "".join(ch.choices[0].text for ch in stream)
    rx.add(words(f"the {tag} end"), words(text))

    e = client.embeddings.create(model="tiny", input=[f"hello {tag}", "two words more"])
    rx.add(e.usage.prompt_tokens, 0)

    # httpx, two choices, streamed without usage: the usage-only chunk must not appear on the wire.
    body = {"model": "tiny", "messages": messages, "max_tokens": 4, "n": 2, "stream": True}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {key}"}, timeout=10) as resp:
        assert resp.status_code == 200
        objs = list(sse_objects(resp.iter_lines()))
    assert all(o["choices"] and "usage" not in o for o in objs)
    text = "".join(o["choices"][0]["delta"].get("content") or "" for o in objs)
    rx.add(sum(words(m["content"]) for m in messages), words(text))

    r2 = httpx.post(url + "/v1/chat/completions", json={**body, "stream": False},
                    headers={"authorization": f"Bearer {key}"}, timeout=10)
    rx.add(r2.json()["usage"]["prompt_tokens"], r2.json()["usage"]["completion_tokens"])


@pytest.mark.parametrize("mode", ["final", "continuous"])
def test_counters_per_team_equal_client_usage_and_sum_to_upstream(
        upstream: Upstream, start_gateway: Callable[..., str], mode: str) -> None:
    url = start_gateway(stream_usage=mode)
    alpha, beta = Received(), Received()
    run_mix(url, ALPHA_KEY, alpha, "alpha")
    run_mix(url, BETA_KEY, beta, "beta")
    run_mix(url, ALPHA_KEY, alpha, "alpha again")
    upstream.fake.wait_finished()
    # The gateway counts a streamed request once its last chunk is out, which can follow the client's
    # read of it by a moment: wait (bounded) for every request to be counted, then compare.
    deadline = time.monotonic() + 10
    s = scrape(url)
    while total(s, REQUESTS, status="200") < alpha.requests + beta.requests and time.monotonic() < deadline:
        time.sleep(0.05)
        s = scrape(url)

    for team, rx in ((ALPHA, alpha), (BETA, beta)):
        assert rx.generation > 0 and rx.prompt > 0
        assert total(s, TOKENS, **team, kind="prompt") == rx.prompt
        assert total(s, TOKENS, **team, kind="generation") == rx.generation
        assert total(s, REQUESTS, **team, status="200") == rx.requests
    assert total(s, TOKENS, kind="prompt") == upstream.fake.prompt_tokens_total
    assert total(s, TOKENS, kind="generation") == upstream.fake.generation_tokens_total
    # model_id is the served model ("Tiny-LLM"), normalised, not the alias the clients asked for.
    assert total(s, TOKENS, model_id="tiny-llm") == total(s, TOKENS) > 0
    assert total(s, REQUESTS, status="200") == alpha.requests + beta.requests


@pytest.mark.parametrize("mode", ["final", "continuous"])
def test_client_disconnect_mid_stream_cancels_upstream_and_counts_generated(
        upstream: Upstream, start_gateway: Callable[..., str], mode: str) -> None:
    url = start_gateway(stream_usage=mode)
    upstream.fake.token_delay = 0.1  # 50 tokens would take 5 s; the client leaves after 3
    body = {"model": "tiny", "messages": [{"role": "user", "content": "a long story please"}],
            "max_tokens": 50, "stream": True}
    received = 0
    with httpx.stream("POST", url + "/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {ALPHA_KEY}"}, timeout=10) as resp:
        for obj in sse_objects(resp.iter_lines()):
            received += words(obj["choices"][0]["delta"].get("content") or "")
            if received == 3:
                break
    t_left = time.monotonic()
    upstream.fake.wait_finished(timeout=3)
    (call,) = upstream.fake.calls
    assert call.cancelled and time.monotonic() - t_left < 1.0
    assert received <= call.generation_tokens < 50

    s = wait_for(url, REQUESTS, status="499")
    assert total(s, REQUESTS, **ALPHA, status="499") == 1
    assert total(s, REQUESTS, status="200") == 0
    assert total(s, TOKENS, **ALPHA, kind="generation") == call.generation_tokens
    # Prompt tokens: exact with vLLM's continuous usage; unknown (0) from the final-usage mode.
    assert total(s, TOKENS, **ALPHA, kind="prompt") == (call.prompt_tokens if mode == "continuous" else 0)
    # A later request completes and is counted; the cancelled one is still counted once, not again.
    upstream.fake.token_delay = 0
    done = httpx.post(url + "/v1/chat/completions", json={**body, "stream": False, "max_tokens": 2},
                      headers={"authorization": f"Bearer {BETA_KEY}"}, timeout=10)
    assert done.status_code == 200
    after = wait_for(url, REQUESTS, **BETA, status="200")
    def alphas(samples: dict[Any, float]) -> dict[Any, float]:
        return {k: v for k, v in samples.items() if dict(k[1]).get("team") == "alpha"}
    assert alphas(after) == alphas(s) != {}


def test_a_client_leaving_after_done_got_the_whole_answer(upstream: Upstream,
                                                          start_gateway: Callable[..., str]) -> None:
    """The OpenAI clients stop reading at [DONE]; if the upstream's end of stream is still on its way,
    the client has left with the whole answer, which is a 200, not a client that gave up (499)."""
    url = start_gateway(stream_usage="final")
    upstream.fake.linger_after_done = 1.0
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {ALPHA_KEY}"}, timeout=10) as resp:
        for line in resp.iter_lines():
            if line.strip() == "data: [DONE]":
                break  # and the connection closes with the block
    s = wait_for(url, REQUESTS, **ALPHA)
    assert total(s, REQUESTS, **ALPHA, status="200") == 1 and total(s, REQUESTS, status="499") == 0
    assert total(s, TOKENS, **ALPHA, kind="generation") == 3


def test_client_leaving_a_whole_request_cancels_upstream(upstream: Upstream,
                                                         start_gateway: Callable[..., str]) -> None:
    url = start_gateway()
    upstream.fake.token_delay = 0.2
    body = {"model": "tiny", "messages": [{"role": "user", "content": "slow"}], "max_tokens": 50}
    # The answer takes 10 s; the client leaves after 2 s, long after the gateway forwarded it (a
    # shorter wait let a loaded machine time out before the upstream had seen the request at all).
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {ALPHA_KEY}"},
                   timeout=httpx.Timeout(10, read=2.0))
    assert len(upstream.fake.calls) == 1
    upstream.fake.wait_finished(timeout=5)
    assert upstream.fake.calls[0].cancelled
    s = wait_for(url, REQUESTS, status="499")
    assert total(s, REQUESTS, **ALPHA, status="499") == 1
    assert total(s, TOKENS) == 0  # no usage was ever sent, so nothing can be claimed


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_error_passed_through_and_counted_as_error(
        upstream: Upstream, start_gateway: Callable[..., str], stream: bool) -> None:
    url = start_gateway()
    upstream.fake.fail = (400, "max_tokens is too large for this model")
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    direct = httpx.post(upstream.url + "/v1/chat/completions", json=body)
    via = httpx.post(url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {BETA_KEY}"})
    assert via.status_code == direct.status_code == 400
    assert via.content == direct.content
    with pytest.raises(openai.BadRequestError) as exc, oai(url, BETA_KEY) as client:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 400 and "max_tokens is too large" in str(exc.value)
    s = scrape(url)
    assert total(s, REQUESTS, **BETA, status="400") == 2
    assert total(s, TOKENS) == 0


def test_bad_key_gets_401_and_reaches_no_upstream(upstream: Upstream, start_gateway: Callable[..., str]) -> None:
    url = start_gateway()
    with pytest.raises(openai.AuthenticationError) as exc, oai(url, "sk-wrong") as client:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 401
    assert httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "x"}).status_code == 401
    assert httpx.get(url + "/v1/models", headers={"authorization": "Basic xyz"}).status_code == 401
    # A hashed entry does not make its digest usable as a key.
    digest = "sha256:" + hashlib.sha256(BETA_KEY.encode()).hexdigest()
    assert httpx.get(url + "/v1/models", headers={"authorization": f"Bearer {digest}"}).status_code == 401
    assert upstream.fake.calls == []
    s = scrape(url)
    assert total(s, REQUESTS, **UNTAGGED, status="401") == 4
    assert total(s, TOKENS) == 0


def test_unknown_callers_counted_untagged_when_configured(upstream: Upstream,
                                                          start_gateway: Callable[..., str]) -> None:
    url = start_gateway(unknown_callers="untagged")
    with oai(url, "sk-nobody") as client:
        r = client.completions.create(model="tiny", prompt="one two three", max_tokens=2)
    assert r.usage is not None
    s = scrape(url)
    assert total(s, TOKENS, **UNTAGGED, kind="prompt") == r.usage.prompt_tokens == 3
    assert total(s, TOKENS, **UNTAGGED, kind="generation") == r.usage.completion_tokens == 2


@pytest.mark.parametrize("trusted", [False, True])
def test_trusted_headers_only_when_enabled(upstream: Upstream, start_gateway: Callable[..., str],
                                           trusted: bool) -> None:
    url = start_gateway(trust_headers=trusted, upstream_api_key="upstream-secret")
    headers = {"authorization": f"Bearer {BETA_KEY}", "X-FinOps-Project": "ADS", "X-FinOps-Environment": "Dev"}
    r = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "a b", "max_tokens": 1},
                   headers=headers)
    assert r.status_code == 200
    s = scrape(url)
    want = {"project": "ads", "team": "beta", "environment": "dev"} if trusted else BETA
    assert total(s, TOKENS, **want, kind="prompt") == 2
    # The caller's key and tags stay at the gateway; the upstream sees its own key.
    seen = upstream.fake.calls[0].headers
    assert seen["authorization"] == "Bearer upstream-secret"
    assert not any(h.startswith("x-finops-") for h in seen)


def test_trusted_headers_never_authenticate(upstream: Upstream, start_gateway: Callable[..., str]) -> None:
    url = start_gateway(trust_headers=True)
    r = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "a"},
                   headers={"X-FinOps-Team": "alpha"})
    assert r.status_code == 401 and upstream.fake.calls == []


def test_stream_is_passed_through_chunk_by_chunk(upstream: Upstream, start_gateway: Callable[..., str]) -> None:
    url = start_gateway()
    upstream.fake.token_delay = 0.05
    body = {"model": "tiny", "prompt": "go", "max_tokens": 10, "stream": True}
    seen_at_first_token = None
    with httpx.stream("POST", url + "/v1/completions", json=body,
                      headers={"authorization": f"Bearer {ALPHA_KEY}"}) as resp:
        for obj in sse_objects(resp.iter_lines()):
            if seen_at_first_token is None and obj["choices"][0]["text"]:
                seen_at_first_token = upstream.fake.calls[0].generation_tokens
    # The first token reached the client while the upstream was still generating.
    assert seen_at_first_token is not None and seen_at_first_token < 5
    s = scrape(url)
    assert total(s, "finops_gateway_time_to_first_token_seconds_count", model_id="tiny-llm") == 1
    assert 0 < total(s, "finops_gateway_time_to_first_token_seconds_sum") < 0.4
    assert total(s, "finops_gateway_request_duration_seconds_sum") >= 0.45  # 10 tokens x 50 ms


def test_upstream_broken_mid_stream(upstream: Upstream, start_gateway: Callable[..., str]) -> None:
    url = start_gateway()
    upstream.fake.break_after = 3
    got = ""
    with pytest.raises(openai.APIError), oai(url, ALPHA_KEY) as client:
        for chunk in client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}],
                                                    max_tokens=10, stream=True):
            got += chunk.choices[0].delta.content or ""
    upstream.fake.wait_finished()
    assert words(got) == 3 == upstream.fake.generation_tokens_total
    s = wait_for(url, REQUESTS, status="502")
    assert total(s, TOKENS, **ALPHA, kind="generation") == 3


def test_upstream_unreachable_and_silent(upstream: Upstream, start_gateway: Callable[..., str]) -> None:
    dead = start_gateway(upstream_url="http://127.0.0.1:9")  # discard port: nothing listens
    r = httpx.post(dead + "/v1/completions", json={"model": "tiny", "prompt": "x"},
                   headers={"authorization": f"Bearer {ALPHA_KEY}"})
    assert r.status_code == 502 and r.json()["error"]["code"] == 502
    assert "127.0.0.1" not in r.text

    slow = start_gateway(read_timeout_seconds=0.2)
    upstream.fake.token_delay = 0.1
    r = httpx.post(slow + "/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 20},
                   headers={"authorization": f"Bearer {ALPHA_KEY}"})
    assert r.status_code == 504
    upstream.fake.wait_finished(timeout=3)
    assert upstream.fake.calls[0].cancelled  # the gateway gave up and told the upstream so
    assert total(scrape(slow), REQUESTS, **ALPHA, status="504") == 1
    assert total(scrape(dead), REQUESTS, **ALPHA, status="502") == 1


def test_models_listing_is_proxied_not_metered(upstream: Upstream, start_gateway: Callable[..., str]) -> None:
    url = start_gateway()
    with oai(url, ALPHA_KEY) as client:
        models = client.models.list()
    assert [m.id for m in models] == ["Tiny-LLM"]
    assert total(scrape(url), REQUESTS) == 0


def test_upstream_url_keeps_its_path_prefix_and_the_query() -> None:
    settings = GatewaySettings(upstream_url="http://10.1.2.3:8000/openai/")
    client = build_client(settings)
    rules = TagRules.build(DIMS)
    gw = Gateway(settings, client, Identifier(settings, rules), GatewayMetrics(), rules)
    assert str(gw.url("/v1/models", b"")) == "http://10.1.2.3:8000/openai/v1/models"
    assert str(gw.url("/v1/models", b"a=1&b=%20")) == "http://10.1.2.3:8000/openai/v1/models?a=1&b=%20"
    assert gw.url("/v1/models", b"") is gw.url("/v1/models", b"")
    asyncio.run(client.aclose())


def test_upstream_client_keeps_no_cookies() -> None:
    """One client serves every caller: a cookie set for one must never be sent for another."""
    seen: list[str | None] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"set-cookie": "session=caller-a; Path=/"}, json={})

    async def two_requests() -> None:
        client = build_client(GatewaySettings(upstream_url="http://upstream"))
        client._transport = httpx.MockTransport(upstream)  # swap only the network layer
        for _ in range(2):
            await client.get("/v1/models")
        await client.aclose()

    asyncio.run(two_requests())
    assert seen == [None, None]
