"""Label values the gateway exports: printable, bounded in length and, for models, bounded in number.

Every value taken from a request (trusted headers) or an upstream answer (the served model) passes
through here before it becomes a Prometheus label, because each distinct value is a new time series
and /metrics must stay renderable (a lone surrogate cannot be encoded as UTF-8).
"""

from __future__ import annotations

import logging
import unicodedata

from finops.tags import UNTAGGED, TagRules

log = logging.getLogger(__name__)

OTHER = "__other__"


def printable(raw: str) -> str:
    """``raw`` without characters of Unicode category C (control, format, surrogate, private, unassigned)."""
    if raw.isprintable():  # the common case, at C speed
        return raw
    return "".join(ch for ch in raw if not unicodedata.category(ch).startswith("C"))


def label_value(rules: TagRules, raw: str | None, max_length: int) -> str | None:
    """A tag value as exported: printable, normalised by ``rules``, at most ``max_length`` characters;
    None when it means missing."""
    if raw is None:
        return None
    value = rules.value(printable(raw))
    return None if value is None else value[:max_length].rstrip() or None


class ModelLabels:
    """The ``model_id`` values of one gateway: the first ``limit`` distinct models keep their name,
    later ones are exported as ``__other__``; no model is ``__untagged__``."""

    def __init__(self, rules: TagRules, limit: int, max_length: int) -> None:
        self.rules, self.limit, self.max_length = rules, limit, max_length
        self._known: set[str] = set()

    def label(self, served: str | None) -> str:
        value = label_value(self.rules, served, self.max_length)
        if value is None:
            return UNTAGGED
        if value in self._known:
            return value
        if len(self._known) >= self.limit:
            return OTHER
        self._known.add(value)
        if len(self._known) == self.limit:
            log.warning("max_model_labels (%d) reached: further models are counted as %s", self.limit, OTHER)
        return value
