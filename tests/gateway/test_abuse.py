"""The gateway under hostile input, end to end: what an attack on it found, and the safe outcome.

1. a non-boolean ``stream`` (the upstream streams, the gateway would not meter): 422, nothing upstream;
2. label values minted per request: bounded in number, length and characters;
3. oversized bodies: 413 before the body is read, and the key is checked before that;
4. invalid usage from the upstream: answered, not counted, reported on a counter and in the log.
"""

from __future__ import annotations

import json
import logging
import random
import string
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import ALPHA, ALPHA_KEY, Upstream, scrape, total, wait_total
from tests.gateway.rawhttp import chunk, closed_by_peer, connect, read_response, send_head

TOKENS = "finops_gateway_tokens_total"
REQUESTS = "finops_gateway_requests_total"
BAD_USAGE = "finops_gateway_bad_usage_total"
AUTH = {"authorization": f"Bearer {ALPHA_KEY}"}
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "three little words"}], "max_tokens": 4}


def post(url: str, body: bytes | dict[str, Any], path: str = "/v1/chat/completions",
         headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url + path, content=content, timeout=10,
                      headers={"content-type": "application/json", **AUTH, **(headers or {})})


def counted_barrier(url: str, upstream: Upstream) -> None:
    """A valid request after the ones under test: once it is counted, anything they caused would be too."""
    calls, served = len(upstream.fake.calls), total(scrape(url), REQUESTS, status="200")
    assert post(url, CHAT).status_code == 200
    wait_total(url, REQUESTS, served + 1, status="200")
    assert len(upstream.fake.calls) == calls + 1


def series(samples: dict[Any, float]) -> int:
    return sum(1 for name, _ in samples if name.startswith("finops_gateway_"))


# -- 1. stream must be a JSON boolean ---------------------------------------------------------------

@pytest.mark.parametrize("stream", ["true", 1, 0, "false", None, [True], {"on": True}])
def test_non_boolean_stream_is_refused_before_the_upstream(
        upstream: Upstream, start_gateway: Callable[..., str], stream: Any) -> None:
    url = start_gateway()
    for path, body in (("/v1/chat/completions", {**CHAT, "stream": stream}),
                       ("/v1/completions", {"model": "tiny", "prompt": "a b c", "stream": stream}),
                       ("/v1/embeddings", {"model": "tiny", "input": "a b c", "stream": stream})):
        r = post(url, body, path)
        assert r.status_code == 422
        assert r.json()["error"]["param"] == "stream"
        assert r.json()["error"]["type"] == "invalid_request_error" and r.json()["error"]["code"] == 422

    counted_barrier(url, upstream)
    (call,) = upstream.fake.calls  # the barrier's: no refused request reached the upstream
    assert call.body["messages"] == CHAT["messages"] and "stream" not in call.body
    s = scrape(url)
    assert total(s, REQUESTS, **ALPHA, status="422") == 3
    # The only tokens counted are the barrier's, exactly what the upstream served.
    assert total(s, TOKENS, kind="prompt") == call.prompt_tokens == 3
    assert total(s, TOKENS, kind="generation") == call.generation_tokens == 4


@pytest.mark.parametrize(("raw", "status"), [
    (b'{"model": "tiny", "prompt": "x", "stream": true, "stream": false}', 400),  # which one wins?
    (b'{"model": "tiny", "prompt": "x", "stream": "true"', 400),
    (b'["model", "tiny"]', 400),
    (b"[" * 100_000, 400),  # deeper than the JSON parser's stack
    (b"", 400),
])
def test_body_the_gateway_cannot_read_exactly_is_refused(
        upstream: Upstream, start_gateway: Callable[..., str], raw: bytes, status: int) -> None:
    url = start_gateway()
    r = post(url, raw, "/v1/completions")
    assert r.status_code == status and r.json()["error"]["code"] == status
    counted_barrier(url, upstream)
    assert len(upstream.fake.calls) == 1
    assert total(scrape(url), REQUESTS, status=str(status)) == 1


def test_boolean_stream_still_streams_and_is_metered(upstream: Upstream, start_gateway: Callable[..., str]) -> None:
    url = start_gateway()
    r = post(url, {**CHAT, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    upstream.fake.wait_finished()
    s = wait_total(url, REQUESTS, 1, status="200")
    assert total(s, TOKENS, kind="prompt") == upstream.fake.prompt_tokens_total == 3


def test_lone_surrogate_in_a_streamed_request_is_forwarded(upstream: Upstream,
                                                           start_gateway: Callable[..., str]) -> None:
    """Valid JSON, not encodable as UTF-8: the body the gateway rewrites (to ask for usage) keeps it escaped."""
    url = start_gateway()
    r = post(url, b'{"model": "tiny", "prompt": "one \\ud800 two", "max_tokens": 2, "stream": true}', "/v1/completions")
    assert r.status_code == 200
    (call,) = upstream.fake.calls
    assert call.body["prompt"] == "one \ud800 two" and call.body["stream_options"] == {"include_usage": True}
    assert total(wait_total(url, REQUESTS, 1, status="200"), TOKENS, kind="prompt") == 3


# -- 2. label values are bounded ----------------------------------------------------------------------

def random_model(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits + "\x00\n\x1b/-", k=rng.randint(1, 300)))


def test_model_names_of_refused_requests_create_no_series(upstream: Upstream,
                                                          start_gateway: Callable[..., str]) -> None:
    url = start_gateway()
    upstream.fake.fail = (404, "The model does not exist.")
    rng = random.Random(7)
    client = httpx.Client(base_url=url, headers=AUTH, timeout=10)

    def send(n: int) -> None:
        for i in range(n):
            body = {**CHAT, "model": random_model(rng), "stream": i % 2 == 0}
            assert client.post("/v1/chat/completions", json=body).status_code == 404

    with client:
        send(2)
        after_two = series(wait_total(url, REQUESTS, 2, status="404"))
        send(198)
    s = wait_total(url, REQUESTS, 200, status="404")
    assert len(upstream.fake.calls) == 200
    assert {dict(labels).get("model_id") for name, labels in s if name == REQUESTS} == {"__untagged__"}
    assert series(s) == after_two < 60  # 200 requests, 200 model names: the series of the first 2


def test_served_models_past_the_cap_are_counted_as_other(upstream: Upstream,
                                                         start_gateway: Callable[..., str]) -> None:
    url = start_gateway(max_model_labels=3)
    upstream.fake.echo_model = True  # a router: every name a caller sends is "served"
    for i in range(12):
        assert post(url, {**CHAT, "model": f"M-{i}"}).status_code == 200
    s = wait_total(url, REQUESTS, 12, status="200")
    models = {dict(labels)["model_id"] for name, labels in s if name == REQUESTS}
    assert models == {"m-0", "m-1", "m-2", "__other__"}
    assert total(s, REQUESTS, model_id="__other__") == 9
    # Folding loses no tokens.
    assert total(s, TOKENS, kind="prompt") == upstream.fake.prompt_tokens_total == 36
    assert total(s, TOKENS, kind="generation") == upstream.fake.generation_tokens_total == 48
    assert post(url, {**CHAT, "model": "M-1"}).status_code == 200  # a known model keeps its name
    assert total(wait_total(url, REQUESTS, 13, status="200"), REQUESTS, model_id="m-1") == 2


def test_label_values_are_printable_and_cut_to_length(upstream: Upstream,
                                                      start_gateway: Callable[..., str]) -> None:
    url = start_gateway(max_label_length=64, trust_headers=True)
    upstream.fake.echo_model = True
    # Control and format characters, a lone surrogate (not encodable as UTF-8), and 1000 more characters.
    model = "Evil\x00\n\x1b[31m\u202e\ud800" + "m" * 1000
    headers = {"x-finops-project": "Ads\x85\x9b" + "x" * 300}  # C1 controls: obs-text bytes h11 lets through
    r = httpx.post(url + "/v1/chat/completions", content=json.dumps({**CHAT, "model": model}).encode(),
                   headers={**AUTH, "content-type": "application/json",
                            **{k: v.encode("latin-1") for k, v in headers.items()}}, timeout=10)
    assert r.status_code == 200
    s = wait_total(url, REQUESTS, 1, status="200")  # /metrics still renders
    (labels,) = [dict(ls) for name, ls in s if name == REQUESTS]
    assert labels["model_id"] == ("evil[31m" + "m" * 1000)[:64]
    assert labels["project"] == ("ads" + "x" * 300)[:64]
    assert all(v.isprintable() and len(v) <= 64 for _, ls in s for _, v in ls)


# -- 3. body size ---------------------------------------------------------------------------------------

def test_declared_oversize_body_is_refused_before_it_is_sent(upstream: Upstream,
                                                             start_gateway: Callable[..., str]) -> None:
    url = start_gateway()  # default limit: 4 MiB
    with connect(url) as sock:
        send_head(sock, "/v1/chat/completions", {**AUTH, "content-type": "application/json",
                                                 "content-length": str(20 * 1024 * 1024)})
        r = read_response(sock)  # the body was never sent: an answer now means it was not awaited
        assert r.status == 413 and r.json()["error"]["code"] == 413
        assert r.headers["connection"] == "close" and closed_by_peer(sock)
    counted_barrier(url, upstream)
    assert len(upstream.fake.calls) == 1
    assert total(scrape(url), REQUESTS, **ALPHA, status="413") == 1


def test_chunked_body_is_refused_once_past_the_limit(upstream: Upstream,
                                                     start_gateway: Callable[..., str]) -> None:
    limit = 64 * 1024
    url = start_gateway(max_body_bytes=limit)
    with connect(url) as sock:
        send_head(sock, "/v1/completions", {**AUTH, "transfer-encoding": "chunked"})
        # Past the limit by one byte, not valid JSON, and never ended: only the size can answer this.
        for _ in range(4):
            sock.sendall(chunk(b"{" * (limit // 4)))
        sock.sendall(chunk(b"{"))
        r = read_response(sock)
        assert r.status == 413 and "65536 bytes" in r.json()["error"]["message"]
        assert closed_by_peer(sock)
    counted_barrier(url, upstream)
    assert len(upstream.fake.calls) == 1


def test_body_at_the_limit_is_served_one_byte_more_is_not(upstream: Upstream,
                                                          start_gateway: Callable[..., str]) -> None:
    limit = 64 * 1024
    url = start_gateway(max_body_bytes=limit)
    body = json.dumps({"model": "tiny", "prompt": "a b", "max_tokens": 1}).encode()
    exact = body + b" " * (limit - len(body))
    assert post(url, exact, "/v1/completions").status_code == 200
    # A client that sends its whole body still gets the 413 (the openai clients use httpx).
    assert post(url, exact + b" ", "/v1/completions").status_code == 413
    assert len(upstream.fake.calls) == 1


def test_bad_key_is_refused_before_the_body_is_read(upstream: Upstream, start_gateway: Callable[..., str]) -> None:
    url = start_gateway()
    with connect(url) as sock:
        send_head(sock, "/v1/chat/completions", {"authorization": "Bearer sk-wrong", "content-length": "1000"})
        r = read_response(sock)  # nothing of the body was sent
        assert r.status == 401 and r.json()["error"]["type"] == "authentication_error"
    with connect(url) as sock:  # the key comes before the size: an oversized body with a bad key is a 401
        send_head(sock, "/v1/chat/completions", {"content-length": str(20 * 1024 * 1024)})
        assert read_response(sock).status == 401
    counted_barrier(url, upstream)
    assert len(upstream.fake.calls) == 1


# -- 4. invalid usage from the upstream ------------------------------------------------------------------

@pytest.mark.parametrize("value", [-5, 1.5, "12", True, None])
@pytest.mark.parametrize("stream", [False, True])
def test_invalid_upstream_usage_is_answered_but_not_counted(
        upstream: Upstream, start_gateway: Callable[..., str], caplog: pytest.LogCaptureFixture,
        value: Any, stream: bool) -> None:
    url = start_gateway(upstream_api_key="upstream-secret-key")
    upstream.fake.usage_patch = {"prompt_tokens": value}
    with caplog.at_level(logging.WARNING, logger="finops.gateway"):
        r = post(url, {**CHAT, "stream": stream})
        assert r.status_code == 200
        s = wait_total(url, BAD_USAGE, 1, model_id="tiny-llm")
    if stream:
        events = [json.loads(ln[6:]) for ln in r.text.splitlines() if ln.startswith("data: {")]
        assert events and all("usage" not in e for e in events)  # the usage chunk is still the gateway's
        # The bad final usage is ignored; the stream is counted by its chunks (prompt unknown: 0).
        assert total(s, TOKENS, kind="generation") == upstream.fake.generation_tokens_total == 4
    else:
        assert r.json()["usage"]["prompt_tokens"] == value  # passed through as the upstream sent it
        assert total(s, TOKENS, kind="generation") == 0
    assert total(s, TOKENS, kind="prompt") == 0
    assert total(s, REQUESTS, **ALPHA, status="200") == 1
    (warning,) = [rec for rec in caplog.records if rec.name.startswith("finops.gateway")]
    assert "prompt_tokens" in warning.getMessage() and "tiny-llm" in warning.getMessage()
    assert ALPHA_KEY not in caplog.text and "upstream-secret-key" not in caplog.text


def test_invalid_completion_tokens_and_usage_shape(upstream: Upstream, start_gateway: Callable[..., str]) -> None:
    url = start_gateway()
    upstream.fake.usage_patch = {"completion_tokens": -1}
    assert post(url, CHAT).status_code == 200
    assert post(url, {"model": "tiny", "prompt": "a b", "max_tokens": 2}, "/v1/completions").status_code == 200
    s = wait_total(url, BAD_USAGE, 2)
    assert total(s, TOKENS) == 0
    upstream.fake.usage_patch = None  # valid again: counted again
    assert post(url, CHAT).status_code == 200
    s = wait_total(url, REQUESTS, 3, status="200")
    assert total(s, TOKENS, kind="generation") == 4 and total(s, BAD_USAGE) == 2
