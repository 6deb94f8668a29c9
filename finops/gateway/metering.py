"""Pure token metering: what to ask the upstream for, and what a response (or a stream) amounted to.

No I/O here; ``proxy.py`` feeds bytes in and sends out what this module says to forward.

Counting rule for a stream cut short (the client left, the upstream broke or went silent):
1. the stream's final ``usage`` chunk, if it arrived (exact);
2. else, with ``stream_usage = "continuous"`` (vLLM), the last cumulative ``usage`` seen per choice
   (exact up to the last chunk received);
3. else one generated token per choice per chunk, except the chunk that only opens a chat choice
   (``delta.role`` and no output); a choice carrying ``token_ids`` counts their number. vLLM sends
   one chunk per engine step and choice, so this is exact for a plain decode, and undercounts when a
   step yields several tokens (speculative decoding, ``--stream-interval`` > 1) or a parser swallows
   tokens (tool-call markers). Prompt tokens are then unknown and counted as 0.

A ``usage`` whose counts are not non-negative integers (``-5``, ``1.5``, ``"12"``, ``true``) is never
counted: a whole response then counts no tokens, a stream goes on to the next rule above. The
caller reports it (``bad_usage``) so it can be seen on a counter and in the log.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from finops.gateway.intake import parse_body

UsageMode = Literal["final", "continuous"]
_EVENT_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class RequestPlan:
    """The body to send upstream and what the client asked for (so the gateway can hide what it added)."""

    body: bytes
    stream: bool = False
    client_usage: bool = False
    client_continuous: bool = False
    choices_per_prompt: int = 1


class BadUsage(ValueError):
    """An upstream ``usage`` object with a count that is not a non-negative integer."""


def _count(usage: dict[str, Any], name: str, required: bool) -> int:
    if name not in usage and not required:
        return 0
    v = usage.get(name)
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    raise BadUsage(f"{name} is {repr(v)[:40]}")  # repr: an upstream string cannot forge log lines


def usage_tokens(usage: Any) -> tuple[int, int] | None:
    """(prompt, generation) from an OpenAI ``usage`` object, None if there is none (absent or null).
    Embeddings have no completion tokens. Raises BadUsage for anything else."""
    if usage is None:
        return None
    if not isinstance(usage, dict):
        raise BadUsage(f"usage is a {type(usage).__name__}, not an object")
    return _count(usage, "prompt_tokens", True), _count(usage, "completion_tokens", False)


def plan_request(body: bytes, mode: UsageMode) -> RequestPlan:
    """For a streamed request, add ``stream_options.include_usage`` (and vLLM's continuous stats in
    "continuous" mode) unless the client asked already. Other bodies are forwarded byte for byte.
    Raises ``intake.Rejected`` for a body the gateway cannot meter (see ``intake.parse_body``)."""
    obj = parse_body(body)
    n = obj.get("n")
    n = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
    if obj.get("stream") is not True:
        return RequestPlan(body, False, choices_per_prompt=n)
    opts = obj.get("stream_options")
    opts = opts if isinstance(opts, dict) else {}
    client_usage = opts.get("include_usage") is True
    client_continuous = client_usage and opts.get("continuous_usage_stats") is True
    want_continuous = mode == "continuous"
    if client_usage and (client_continuous or not want_continuous):
        return RequestPlan(body, True, True, client_continuous, n)
    new_opts = {**opts, "include_usage": True}
    if want_continuous:
        new_opts["continuous_usage_stats"] = True
    obj["stream_options"] = new_opts
    return RequestPlan(dump(obj), True, client_usage, client_continuous, n)


def dump(obj: Any) -> bytes:
    """Compact JSON, UTF-8 where it can be: a lone surrogate (valid JSON, not valid UTF-8) stays escaped."""
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":")).encode("ascii")


class Answer(NamedTuple):
    """What a non-streamed response amounted to; ``bad_usage`` says why its usage was not counted."""

    model: str | None
    prompt: int
    generation: int
    bad_usage: str | None = None


def parse_response(body: bytes) -> Answer:
    """The served model and the tokens of a non-streamed response; zeros if it has no (valid) usage."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return Answer(None, 0, 0)
    if not isinstance(obj, dict):
        return Answer(None, 0, 0)
    model = obj.get("model") if isinstance(obj.get("model"), str) else None
    try:
        prompt, generation = usage_tokens(obj.get("usage")) or (0, 0)
    except BadUsage as exc:
        return Answer(model, 0, 0, str(exc))
    return Answer(model, prompt, generation)


def choice_tokens(choice: Any) -> int:
    """Generated tokens carried by one streamed choice, by the rule in the module docstring."""
    if not isinstance(choice, dict):
        return 0
    ids = choice.get("token_ids")
    if isinstance(ids, list):
        return len(ids)
    delta = choice.get("delta")
    if isinstance(delta, dict) and "role" in delta and choice.get("finish_reason") is None:
        has_output = any(delta.get(k) for k in ("content", "reasoning_content", "reasoning", "tool_calls"))
        return 1 if has_output else 0
    return 1


def error_status(obj: dict[str, Any]) -> int:
    """The HTTP-like status of an error event sent inside a stream (500 when it names none)."""
    err = obj.get("error")
    code = err.get("code") if isinstance(err, dict) else obj.get("code")
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
        return code
    return 500


@dataclass
class StreamMeter:
    """Reads an SSE stream as it passes: forwards whole events, drops or trims what the gateway added,
    and keeps what is needed to count tokens however the stream ends."""

    plan: RequestPlan
    model: str | None = None
    final_usage: tuple[int, int] | None = None
    chunk_tokens: int = 0
    error: int | None = None
    done: bool = False
    bad_usage: str | None = None  # the first invalid usage seen, which was not counted
    _continuous: dict[int, tuple[int, int]] = field(default_factory=dict)
    _buf: bytes = b""

    def feed(self, data: bytes) -> bytes:
        """Consume upstream bytes; return the whole events to forward now (a partial event waits)."""
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        start = 0
        while (m := _EVENT_END.search(buf, start)) is not None:
            event = buf[start:m.end()]
            kept = self._event(event)
            if kept:
                out.append(kept)
            start = m.end()
        self._buf = buf[start:]
        return b"".join(out) if len(out) != 1 else out[0]

    def flush(self) -> bytes:
        """At the end of the upstream stream: a trailing event without its blank line, if any."""
        rest, self._buf = self._buf, b""
        return self._event(rest) if rest.strip() else rest

    def tokens(self) -> tuple[int, int]:
        """(prompt, generation) so far, by the rule in the module docstring."""
        if self.final_usage is not None:
            return self.final_usage
        if self._continuous:
            prompts: dict[int, int] = {}
            for index, (prompt, _) in self._continuous.items():
                prompts[index // self.plan.choices_per_prompt] = prompt
            return sum(prompts.values()), sum(g for _, g in self._continuous.values())
        return 0, self.chunk_tokens

    def _event(self, event: bytes) -> bytes:
        data = [ln[5:].lstrip(b" ") for ln in event.splitlines() if ln.startswith(b"data:")]
        if not data:
            return event  # comments and keep-alives pass untouched
        payload = b"\n".join(data)
        if payload.strip() == b"[DONE]":
            self.done = True
            return event
        try:
            obj = json.loads(payload)
        except (ValueError, RecursionError):
            return event
        if not isinstance(obj, dict):
            return event
        if self.model is None and isinstance(obj.get("model"), str):
            self.model = obj["model"]
        choices = obj.get("choices")
        if not choices:
            if "error" in obj or obj.get("object") == "error":  # newer and older vLLM error shapes
                self.error = error_status(obj)
            if obj.get("usage") is None:
                return event
            tokens = self._usage(obj)
            if tokens is not None:
                self.final_usage = tokens
            # The usage-only chunk the gateway asked for is not the client's to see.
            return event if self.plan.client_usage else b""
        if isinstance(choices, list):
            for choice in choices:
                self.chunk_tokens += choice_tokens(choice)
        if obj.get("usage") is None:
            return event
        tokens = self._usage(obj)
        if tokens is not None:
            first = choices[0] if isinstance(choices, list) and choices else None
            index = first.get("index", 0) if isinstance(first, dict) else 0
            self._continuous[index if isinstance(index, int) else 0] = tokens
        if self.plan.client_continuous:
            return event
        del obj["usage"]  # per-chunk usage the gateway asked for
        return b"data: " + dump(obj) + b"\n\n"

    def _usage(self, obj: dict[str, Any]) -> tuple[int, int] | None:
        """The event's usage, or None (remembered in ``bad_usage``) if it is not valid."""
        try:
            return usage_tokens(obj["usage"])
        except BadUsage as exc:
            self.bad_usage = self.bad_usage or str(exc)
            return None
