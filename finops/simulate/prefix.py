"""The simulated engine's prefix cache: which leading prompt tokens a request finds already computed.

As in vLLM's V1 engine, the KV cache is kept in blocks of `block_size` tokens, each named by the
hash of its tokens chained to the hash of the block before, so a block is found only under the same
prefix. A request's cached tokens are its leading full blocks found in the cache, but never the whole
prompt: its last token is always computed (the first output token needs it). Blocks are evicted
least recently used first once the cache holds `capacity_blocks`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence


def block_hashes(prompt: Sequence[str], block_size: int) -> list[bytes]:
    """The chained hash of each full block of `prompt`."""
    out: list[bytes] = []
    parent = b""
    for start in range(0, len(prompt) - block_size + 1, block_size):
        h = hashlib.sha256(parent)
        for token in prompt[start:start + block_size]:
            h.update(token.encode() + b"\0")
        parent = h.digest()
        out.append(parent)
    return out


class PrefixCache:
    """Full blocks of computed prompts, least recently used evicted first."""

    def __init__(self, block_size: int, capacity_blocks: int) -> None:
        self.block_size, self.capacity = block_size, capacity_blocks
        self._blocks: OrderedDict[bytes, None] = OrderedDict()

    def cached_tokens(self, prompt: Sequence[str]) -> int:
        """Leading tokens of `prompt` held in the cache (whole blocks, at most all but the last token)."""
        found = 0
        for h in block_hashes(prompt, self.block_size):
            if h not in self._blocks:
                break
            self._blocks.move_to_end(h)
            found += 1
        cached = found * self.block_size
        return cached - self.block_size if prompt and cached >= len(prompt) else cached

    def add(self, prompt: Sequence[str]) -> None:
        """Keep the full blocks of a computed prompt."""
        for h in block_hashes(prompt, self.block_size):
            self._blocks[h] = None
            self._blocks.move_to_end(h)
        while len(self._blocks) > self.capacity:
            self._blocks.popitem(last=False)
