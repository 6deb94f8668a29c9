"""Tag key aliases and value normalisation (docs/definitions.md section 1), as pure functions over configuration."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# The four dimensions: the store's dim columns and the order of every output. They are fixed (the
# schema has a column for each); other tag keys map onto them through the alias table.
DIMS: tuple[str, ...] = ("project", "team", "environment", "model_id")

UNTAGGED = "__untagged__"
UNALLOCATED = "__unallocated__"
# The group of unused commitment (a reservation or savings plan paid for and not used): waste of its
# own in every report, never a team's spend nor untagged spend.
UNUSED_COMMITMENT = "__unused_commitment__"

# Built-in aliases per dim. Matching is case-insensitive and ignores surrounding whitespace, so
# `Project`, `project` and ` PROJECT` are one key. Configuration adds to these, never replaces them.
DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    "project": ("project", "proj", "user:project", "user_project", "resourcetags/user:project"),
    "team": ("team", "user:team", "user_team", "resourcetags/user:team", "owner_team"),
    "environment": (
        "environment",
        "env",
        "user:environment",
        "user_environment",
        "resourcetags/user:environment",
    ),
    "model_id": (
        "modelid",
        "model_id",
        "model",
        "user:modelid",
        "user_model_id",
        "user_modelid",
        "user_model_i_d",
        "resourcetags/user:modelid",
    ),
}


# Control characters: C0 (U+0000-U+001F, tab, LF and CR included), DEL and C1 (U+0080-U+009F). They
# name nothing, hide what a value looks like, and most of them cannot be written to a workbook.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _key(k: str) -> str:
    return k.strip().lower()


@dataclass(frozen=True)
class TagRules:
    """How raw tags become the canonical dims: alias table, missing markers, value case."""

    dims: tuple[str, ...]
    aliases: Mapping[str, str]  # normalised key -> dim
    missing: frozenset[str]
    lowercase: bool = True

    @classmethod
    def build(
        cls,
        dims: Iterable[str],
        extra_aliases: Mapping[str, Iterable[str]] | None = None,
        missing: Iterable[str] = ("", "null", "none", "n/a"),
        lowercase: bool = True,
    ) -> TagRules:
        dims_t = tuple(dims)
        table: dict[str, str] = {}
        for dim in dims_t:
            for alias in (dim, *DEFAULT_ALIASES.get(dim, ()), *(extra_aliases or {}).get(dim, ())):
                table.setdefault(_key(alias), dim)
        return cls(dims_t, table, frozenset(_key(m) for m in missing), lowercase)

    @classmethod
    def from_settings(cls, settings: Any) -> TagRules:
        return cls.build(
            settings.dims, settings.tag_aliases, settings.missing_values, settings.lowercase_values
        )

    def dim_for_key(self, key: str) -> str | None:
        """The canonical dim a raw tag key names, or None."""
        return self.aliases.get(_key(key))

    def value(self, raw: Any) -> str | None:
        """Without control characters, trimmed (and by default lower-cased) value; None when the
        value means *missing*."""
        if raw is None or isinstance(raw, bool) or isinstance(raw, dict | list):
            # A FOCUS tag without a value is `true`: the key is present, the value is not.
            return None
        # Controls go before trimming, so a value of only controls and spaces is missing.
        text = CONTROL.sub("", str(raw)).strip()
        if _key(text) in self.missing:
            return None
        return text.lower() if self.lowercase else text

    def dims_from_tags(self, tags: Mapping[str, Any] | None) -> dict[str, str | None]:
        """Map a raw tag object to {dim: value or None}. The first non-missing alias wins."""
        out: dict[str, str | None] = dict.fromkeys(self.dims)
        for k, v in (tags or {}).items():
            dim = self.dim_for_key(str(k))
            if dim is not None and out[dim] is None:
                out[dim] = self.value(v)
        return out

    def dims_from_json(self, text: str | None) -> dict[str, str | None]:
        """Like dims_from_tags for a JSON text; raises ValueError if it is not a JSON object."""
        if text is None:
            return dict.fromkeys(self.dims)
        obj = json.loads(text, parse_constant=_no_constant)
        if not isinstance(obj, dict):
            raise ValueError("Tags is not a JSON object")
        return self.dims_from_tags(obj)


class TagValueError(ValueError):
    """A Tags value no bill should carry; the message names it for the quarantine."""


def _no_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity (not JSON); as tag values they became teams "nan" and "inf".
    raise TagValueError(f"Tags: {name} is not a tag value (not valid JSON)")


def display(value: str | None) -> str:
    """The group value shown in outputs: missing is never dropped, it is `__untagged__`."""
    return UNTAGGED if value is None else value
