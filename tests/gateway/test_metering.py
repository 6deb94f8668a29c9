"""Pure metering: request planning, SSE pass-through and the token counting rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finops.gateway.intake import Rejected
from finops.gateway.metering import (
    Answer,
    RequestPlan,
    StreamMeter,
    choice_tokens,
    parse_response,
    plan_request,
)

STREAM = (Path(__file__).parent / "fixtures" / "vllm_chat_stream_usage.sse").read_bytes()
EVENTS = [e + b"\n\n" for e in STREAM.split(b"\n\n") if e]
USAGE_EVENT = next(e for e in EVENTS if b'"choices":[]' in e)


def body(**fields: Any) -> bytes:
    return json.dumps({"model": "m", "messages": [], **fields}).encode()


def sent(plan: RequestPlan) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(plan.body)
    return obj


def run(plan: RequestPlan, data: bytes, size: int) -> tuple[bytes, StreamMeter]:
    meter = StreamMeter(plan)
    out = b"".join(meter.feed(data[i:i + size]) for i in range(0, len(data), size))
    return out + meter.flush(), meter


def test_plan_asks_for_usage_on_streams_only() -> None:
    whole = body(stream=False, temperature=0.2)
    assert plan_request(whole, "final") == RequestPlan(whole, False)
    plan = plan_request(body(stream=True, stream_options={"foo": 1}), "final")
    assert sent(plan)["stream_options"] == {"foo": 1, "include_usage": True}
    assert plan.stream and not plan.client_usage and not plan.client_continuous


def test_plan_keeps_a_client_that_asked_byte_for_byte() -> None:
    raw = body(stream=True, stream_options={"include_usage": True}, n=3)
    plan = plan_request(raw, "final")
    assert plan.body is raw and plan.client_usage and plan.choices_per_prompt == 3


def test_plan_continuous_mode() -> None:
    plan = plan_request(body(stream=True, stream_options={"include_usage": True}), "continuous")
    assert sent(plan)["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    assert plan.client_usage and not plan.client_continuous
    raw = body(stream=True, stream_options={"include_usage": True, "continuous_usage_stats": True})
    assert plan_request(raw, "continuous").body is raw


@pytest.mark.parametrize(("raw", "status"), [
    (b"not json", 400), (b"[1, 2]", 400), (b"", 400), (b'{"a": {"b": 1, "b": 2}}', 400),
    (b'{"stream": "true"}', 422), (b'{"stream": 1}', 422), (b'{"stream": null}', 422),
])
def test_plan_refuses_what_it_cannot_meter(raw: bytes, status: int) -> None:
    with pytest.raises(Rejected) as exc:
        plan_request(raw, "final")
    assert exc.value.status == status


@pytest.mark.parametrize("size", [1, 2, 7, 50, 333, 10_000])
def test_usage_chunk_is_read_and_hidden_whatever_the_chunking(size: int) -> None:
    out, meter = run(RequestPlan(b"", stream=True), STREAM, size)
    assert out == STREAM.replace(USAGE_EVENT, b"")
    assert meter.tokens() == (12, 4) and meter.done
    assert meter.model == "meta-llama/Llama-3.1-8B-Instruct"


def test_usage_chunk_forwarded_when_the_client_asked() -> None:
    out, meter = run(RequestPlan(b"", stream=True, client_usage=True), STREAM, 64)
    assert out == STREAM and meter.tokens() == (12, 4)


def test_chunk_rule_counts_what_arrived_before_a_cut() -> None:
    content_events = [e for e in EVENTS if b'"choices":[{' in e]
    # The chunk rule agrees with the usage vLLM reports for the whole stream.
    assert len(content_events) - 1 == 4  # minus the role chunk
    for cut in range(len(content_events) + 1):
        _, meter = run(RequestPlan(b"", stream=True), b"".join(content_events[:cut]), 40)
        assert meter.tokens() == (0, max(cut - 1, 0))


def test_partial_event_waits_for_its_end() -> None:
    meter = StreamMeter(RequestPlan(b"", stream=True))
    first = EVENTS[1]
    assert meter.feed(first[:-1]) == b""
    assert meter.feed(first[-1:]) == first
    assert meter.feed(b"data: {\"choices\":[{\"text\":\"x\"}]}") == b""
    assert meter.flush() == b"data: {\"choices\":[{\"text\":\"x\"}]}"
    assert meter.tokens() == (0, 2)


def test_crlf_events_and_comments() -> None:
    data = b": keep-alive\r\n\r\ndata: {\"choices\":[{\"index\":0,\"text\":\"a\"}]}\r\n\r\n"
    out, meter = run(RequestPlan(b"", stream=True), data, 5)
    assert out == data and meter.tokens() == (0, 1)


@pytest.mark.parametrize(("choice", "tokens"), [
    ({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}, 0),
    ({"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}, 1),
    ({"index": 0, "delta": {"content": ""}, "finish_reason": None}, 1),  # a held-back partial character
    ({"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}, 1),  # EOS
    ({"index": 0, "delta": {"tool_calls": [{"index": 0}]}, "finish_reason": None}, 1),
    ({"index": 0, "text": "abc", "token_ids": [5, 6, 7], "finish_reason": None}, 3),
    ({"index": 0, "text": "", "finish_reason": None}, 1),
    ("junk", 0),
])
def test_choice_tokens(choice: Any, tokens: int) -> None:
    assert choice_tokens(choice) == tokens


def continuous_stream(n: int, steps: int, prompt: int) -> list[bytes]:
    """vLLM with continuous_usage_stats: one choice per chunk, usage cumulative for that choice."""
    events = []
    for step in range(steps):
        for i in range(n):
            obj = {"model": "m", "choices": [{"index": i, "delta": {"content": f"t{step}"}, "finish_reason": None}],
                   "usage": {"prompt_tokens": prompt, "completion_tokens": step + 1,
                             "total_tokens": prompt + step + 1}}
            events.append(b"data: " + json.dumps(obj).encode() + b"\n\n")
    return events


def test_continuous_usage_counts_a_cut_stream_exactly_and_is_hidden() -> None:
    events = continuous_stream(n=2, steps=3, prompt=9)
    plan = RequestPlan(b"", stream=True, choices_per_prompt=2)
    out, meter = run(plan, b"".join(events), 33)
    assert meter.tokens() == (9, 6)  # one prompt of 9 (not once per choice), 3 tokens per choice
    forwarded = [json.loads(e[6:]) for e in out.split(b"\n\n") if e]
    assert len(forwarded) == 6 and all("usage" not in o for o in forwarded)
    asked = RequestPlan(b"", stream=True, client_usage=True, client_continuous=True, choices_per_prompt=2)
    out, _ = run(asked, b"".join(events), 33)
    assert out == b"".join(events)


def test_error_event_inside_a_stream() -> None:
    data = b'data: {"error": {"message": "boom", "type": "InternalServerError", "code": 503}}\n\n'
    out, meter = run(RequestPlan(b"", stream=True), data, 10)
    assert out == data and meter.error == 503
    _, meter = run(RequestPlan(b"", stream=True), b'data: {"object":"error","message":"x"}\n\n', 10)
    assert meter.error == 500


def test_parse_response() -> None:
    chat = {"model": "M", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}
    assert parse_response(json.dumps(chat).encode()) == Answer("M", 5, 7)
    emb = {"model": "E", "data": [], "usage": {"prompt_tokens": 4, "total_tokens": 4}}
    assert parse_response(json.dumps(emb).encode()) == Answer("E", 4, 0)
    assert parse_response(b'{"model": "M", "usage": null}') == Answer("M", 0, 0)
    assert parse_response(b"<html>") == Answer(None, 0, 0)


@pytest.mark.parametrize(("usage", "reason"), [
    ({"prompt_tokens": -3, "completion_tokens": 7}, "prompt_tokens is -3"),
    ({"prompt_tokens": 3, "completion_tokens": "7"}, "completion_tokens is '7'"),
    ({"prompt_tokens": 1.5}, "prompt_tokens is 1.5"),
    ({"prompt_tokens": True}, "prompt_tokens is True"),
    ({"completion_tokens": 2}, "prompt_tokens is None"),
    ([1, 2], "usage is a list"),
])
def test_invalid_usage_is_not_counted(usage: Any, reason: str) -> None:
    answer = parse_response(json.dumps({"model": "M", "usage": usage}).encode())
    assert answer[:3] == ("M", 0, 0) and answer.bad_usage is not None and reason in answer.bad_usage


def test_invalid_usage_in_a_stream_falls_back_to_the_next_rule_and_stays_hidden() -> None:
    bad = USAGE_EVENT.replace(b'"prompt_tokens":12', b'"prompt_tokens":-12')
    assert bad != USAGE_EVENT
    out, meter = run(RequestPlan(b"", stream=True), STREAM.replace(USAGE_EVENT, bad), 64)
    assert out == STREAM.replace(USAGE_EVENT, b"")
    assert meter.tokens() == (0, 4) and meter.bad_usage == "prompt_tokens is -12"
    plan = RequestPlan(b"", stream=True, choices_per_prompt=1)
    events = [e.replace(b'"completion_tokens": 3', b'"completion_tokens": "3"') for e in continuous_stream(1, 3, 9)]
    _, meter = run(plan, b"".join(events), 50)
    assert meter.tokens() == (9, 2)  # the chunk with the bad count is skipped, the last good one kept
    assert meter.bad_usage == "completion_tokens is '3'"
