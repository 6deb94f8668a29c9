"""Deterministic tokens and text for the vLLM simulator.

A token is a run of word characters or a single punctuation character, so counting is exact and
reproducible. Generated text is made of lower-case words only, one token each, so re-tokenising the
text a client received gives back exactly `completion_tokens`.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

TOKEN_RE = re.compile(r"\w+|[^\w\s]")

# Chat prompts are rendered through a template; like most chat templates it adds a few tokens per
# message (role and delimiters) and a few to open the assistant turn.
CHAT_TOKENS_PER_MESSAGE = 4
CHAT_PRIMER_TOKENS = 3

VOCABULARY = (
    "the of and to in is that for it as with on was by be at this from are or an have not they which "
    "one you were all we when there can more if some what would into has other time will about only "
    "model token cost budget cluster inference latency tensor batch cache memory request stream "
    "engine prompt output value team project review price report cloud server result metric window "
    "idle busy power energy hour week quarter forecast spend share margin unit scale node queue"
).split()

# Without a limit from the request, the "model" stops on its own after this many tokens.
NATURAL_LENGTH = (8, 96)


def tokens(text: str) -> tuple[str, ...]:
    """The tokens of `text`."""
    return tuple(TOKEN_RE.findall(text))


def count_tokens(text: str) -> int:
    """Number of tokens in `text`."""
    return len(tokens(text))


def chat_prompt(messages: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """The prompt tokens of a chat request's `(role, text)` messages, rendered through the template:
    `CHAT_TOKENS_PER_MESSAGE` around each message, `CHAT_PRIMER_TOKENS` opening the assistant turn."""
    out: list[str] = []
    for role, text in messages:
        out += ["<|im_start|>", role, "\n", *tokens(text), "<|im_end|>"]
    return (*out, "<|im_start|>", "assistant", "\n")


def chat_prompt_tokens(contents: Sequence[str]) -> int:
    """Prompt tokens of a chat request whose messages have these text contents."""
    return len(chat_prompt([("user", c) for c in contents]))


@dataclass(frozen=True)
class Plan:
    """What one request will generate: its words (one token each) and why it stops."""

    words: tuple[str, ...]
    finish_reason: str  # "stop" (natural end or stop word) or "length" (max_tokens reached)


def plan_output(prompt: str, *, server_seed: int, request_seed: int | None, max_tokens: int,
                min_tokens: int = 0, ignore_eos: bool = False, stop: Sequence[str] = ()) -> Plan:
    """The output for `prompt`: the same inputs always give the same words."""
    digest = hashlib.sha256(f"{server_seed}|{request_seed}|{prompt}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    natural = rng.randint(*NATURAL_LENGTH)
    if ignore_eos:
        natural = max_tokens
    natural = max(natural, min_tokens)
    stops = {s.strip() for s in stop if s.strip()}
    words: list[str] = []
    while len(words) < min(natural, max_tokens):
        word = rng.choice(VOCABULARY)
        if word in stops and len(words) >= min_tokens:
            return Plan(tuple(words), "stop")
        words.append(word)
    return Plan(tuple(words), "length" if len(words) >= max_tokens and natural >= max_tokens else "stop")


def prompt_words(rng: random.Random, n: int) -> str:
    """A prompt of `n` vocabulary words, for the load generator."""
    return " ".join(rng.choice(VOCABULARY) for _ in range(n))
