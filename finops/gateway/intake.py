"""What the gateway accepts from a caller before anything goes upstream.

- A body of at most ``max_body_bytes``: refused by its declared length before a byte of it is read,
  or, sent chunked without a length, as soon as the bytes read pass the limit.
- On metered paths, a JSON object the gateway reads exactly as the upstream will: no repeated keys,
  and ``stream`` (if present) a JSON boolean. vLLM's request models coerce ``"true"`` or ``1`` to a
  stream; a gateway reading them as "not a stream" would not ask for usage and would count nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from starlette.types import Receive


class Rejected(Exception):
    """A request refused before it reached the upstream: the status and the message to answer with."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


class _RepeatedKey(Exception):
    pass


def check_declared_length(headers: Iterable[tuple[bytes, bytes]], limit: int) -> None:
    """Raise Rejected(413) if the request's Content-Length says its body is over ``limit`` bytes."""
    for name, value in headers:
        # A malformed or repeated-and-different length never gets here: h11 answers 400 itself.
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise Rejected(413, f"request body larger than {limit} bytes")


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None if the client left while sending it. Raises Rejected(413)
    as soon as more than ``limit`` bytes have arrived, without waiting for the rest."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Rejected(413, f"request body larger than {limit} bytes")
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _RepeatedKey
    return obj


def parse_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a metered request; Rejected(400) if it is not one the gateway can read
    unambiguously, Rejected(422) if ``stream`` is not a JSON boolean."""
    try:
        obj = json.loads(body, object_pairs_hook=_unique_keys)
    except _RepeatedKey:
        # Parsers differ on which of two equal keys wins; the gateway must meter what the upstream does.
        raise Rejected(400, "the JSON body repeats a key within one object") from None
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise Rejected(400, "the request body is not valid JSON") from None
    if not isinstance(obj, dict):
        raise Rejected(400, "the request body must be a JSON object")
    if "stream" in obj and not isinstance(obj["stream"], bool):
        raise Rejected(422, "'stream' must be a JSON boolean (true or false)", "stream")
    return obj
