"""Who is calling: gateway API key -> project/team/environment, optionally refined by trusted headers."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from finops.gateway.labels import label_value
from finops.settings.gateway import SHA256_PREFIX, CallerTags, GatewaySettings
from finops.tags import TagRules, display

CALLER_DIMS = ("project", "team", "environment")
TRUSTED_HEADERS = {
    "project": "x-finops-project",
    "team": "x-finops-team",
    "environment": "x-finops-environment",
}


@dataclass(frozen=True)
class Caller:
    """The normalised dims one request is charged to (None = untagged)."""

    project: str | None = None
    team: str | None = None
    environment: str | None = None

    def labels(self) -> dict[str, str]:
        return {d: display(getattr(self, d)) for d in CALLER_DIMS}


def key_digest(key: str) -> bytes:
    """The stored form of a key: its SHA-256 (so a config or key store need not hold the key itself)."""
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyStore:
    """Known gateway keys as SHA-256 digests. Lookups compare against every entry in constant time."""

    def __init__(self, entries: Mapping[str, CallerTags]) -> None:
        self._entries: list[tuple[bytes, CallerTags]] = []
        for key, tags in entries.items():
            if key.lower().startswith(SHA256_PREFIX):
                digest = bytes.fromhex(key[len(SHA256_PREFIX):])
            else:
                digest = key_digest(key)
            self._entries.append((digest, tags))

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, presented: str | None) -> CallerTags | None:
        """The tags of a presented key, or None. No early exit, so timing says nothing about near misses."""
        if not presented:
            return None
        digest = key_digest(presented)
        found: CallerTags | None = None
        for stored, tags in self._entries:
            if hmac.compare_digest(stored, digest):
                found = tags
        return found


def bearer_token(authorization: str | None) -> str | None:
    """The key in ``Authorization: Bearer <key>`` (what the openai clients send), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class Identifier:
    """Resolves a request's headers to a Caller, or None when the caller must be rejected."""

    def __init__(self, settings: GatewaySettings, rules: TagRules) -> None:
        self.store = KeyStore(settings.keys)
        self.trust_headers = settings.trust_headers
        self.reject_unknown = settings.unknown_callers == "reject"
        self.rules = rules
        self.max_length = settings.max_label_length

    def identify(self, headers: Mapping[str, str]) -> Caller | None:
        """``headers`` must have lower-case names (ASGI and Starlette both give them so)."""
        tags = self.store.lookup(bearer_token(headers.get("authorization")))
        if tags is None and self.reject_unknown:
            return None
        dims: dict[str, str | None] = dict.fromkeys(CALLER_DIMS)
        if tags is not None:
            dims = {d: label_value(self.rules, getattr(tags, d), self.max_length) for d in CALLER_DIMS}
        if self.trust_headers:
            for dim, header in TRUSTED_HEADERS.items():
                value = label_value(self.rules, headers.get(header), self.max_length)
                if value is not None:
                    dims[dim] = value
        return Caller(**dims)
