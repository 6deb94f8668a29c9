"""API keys: create, verify, list and revoke; keys are stored only as hashes.

A key reads `fk_<key id>_<secret>`. The key id (16 hex characters) is a public handle used to
find the stored row and to revoke; the secret is 256 random bits from `secrets.token_urlsafe`.
The table holds sha256 of the whole key. A fast hash is enough here: slow password hashes
(bcrypt, scrypt) exist to resist guessing low-entropy passwords, and a 256-bit random secret
cannot be guessed from its hash. Hashes are compared with `hmac.compare_digest` (constant time).
Keys are never logged; only key ids and the reason a key was refused are.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from finops.store.db import Store
from finops.timeutil import to_utc_naive

Role = Literal["viewer", "finance", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "finance", "admin")
# Each role includes the ones before it: finance reads what viewers read, admin what finance reads.
RANK = {role: i for i, role in enumerate(ROLES)}

PREFIX = "fk_"
_KEY = re.compile(r"^fk_([0-9a-f]{16})_([A-Za-z0-9_-]{20,128})$")
# A team scope is a normalised tag value (finops.tags.TagRules.value: trimmed, no control
# characters, by default lower case), so any team the data can name can have keys, spaces
# included. `__...__` names are the reports' group markers (`__untagged__`, `__unallocated__`).
MAX_TEAM = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_RESERVED = re.compile(r"^__.*__$")
# Compared against when the key id is unknown, so unknown and wrong keys take the same time.
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who a verified key belongs to: its id, role and optional team scope."""

    key_id: str
    role: Role
    team: str | None = None
    name: str | None = None

    def can(self, role: Role) -> bool:
        return RANK[self.role] >= RANK[role]


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its hash."""

    key_id: str
    role: Role
    team: str | None
    name: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_team(team: str | None, role: str) -> None:
    """Raise ValueError for an unusable team scope: admin keys, reserved `__...__` group names, and
    values tag normalisation never yields (empty, padded, control characters, over MAX_TEAM)."""
    if role not in ROLES:
        raise ValueError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    if team is None:
        return
    if role == "admin":
        raise ValueError("team: admin keys cannot be team-scoped (an admin manages every key)")
    if _RESERVED.match(team):
        raise ValueError(f"team: {team!r} is a reserved group name, not a team")
    if not team or team != team.strip() or _CONTROL.search(team) or len(team) > MAX_TEAM:
        raise ValueError(f"team: {team!r} is not a team name (a tag value: trimmed, no control characters, "
                         f"at most {MAX_TEAM} characters)")


def create_key(store: Store, role: str, team: str | None = None, name: str | None = None,
               now: datetime | None = None) -> tuple[ApiKey, str]:
    """Store a new key's hash and return (record, key). The key is shown once and never stored."""
    check_team(team, role)
    key_id = secrets.token_hex(8)
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    created = to_utc_naive(now) if now else store.clock()
    with store.transaction() as cur:
        cur.execute("INSERT INTO api_keys (key_id, key_hash, role, team, name, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [key_id, hash_key(key), role, team, name, created]).fetchall()
    return ApiKey(key_id, role, team, name, created, None, None), key  # type: ignore[arg-type]


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking a presented key: a principal, or the reason (safe to log) it failed."""

    principal: Principal | None
    reason: str
    key_id: str | None = None  # the id of a stored key that was presented with a wrong secret or revoked


def verify_key(store: Store, presented: str) -> Verdict:
    """Check a presented key against the stored hashes in constant time."""
    m = _KEY.match(presented)
    if m is None:
        return Verdict(None, "malformed key")
    key_id = m.group(1)
    rows = store.query("SELECT key_hash, role, team, name, revoked_at FROM api_keys WHERE key_id = ?", [key_id])
    stored = rows[0][0] if rows else _DUMMY_HASH
    matches = hmac.compare_digest(hash_key(presented).encode(), stored.encode())
    if not rows or not matches:
        return Verdict(None, "unknown key" if not rows else "wrong secret", key_id if rows else None)
    _, role, team, name, revoked = rows[0]
    if revoked is not None:
        return Verdict(None, "revoked key", key_id)
    return Verdict(Principal(key_id, role, team, name), "ok", key_id)


def list_keys(store: Store) -> list[ApiKey]:
    rows = store.query("SELECT key_id, role, team, name, created_at, last_used_at, revoked_at FROM api_keys "
                       "ORDER BY created_at, key_id")
    return [ApiKey(*r) for r in rows]


# The admin key `finops serve` issues for its own host (finops.store.local_access); it ends with the
# service, so it never counts as the admin key that keeps the API manageable.
LOCAL_KEY_NAME = "finops serve: local CLI access"


class LastAdminKey(ValueError):
    """Revoking this key would leave no active admin key (nobody could manage keys through the API)."""


def revoke_key(store: Store, key_id: str, now: datetime | None = None, *, keep_an_admin: bool = False) -> bool:
    """Revoke a key by id; False when there is no such (unrevoked) key. With `keep_an_admin`, raise
    LastAdminKey instead of revoking the last active admin key (checked in the same transaction)."""
    with store.transaction() as cur:
        if keep_an_admin:
            [(other_admins, is_admin)] = cur.execute(
                "SELECT count(*) FILTER (WHERE key_id <> ? AND name IS DISTINCT FROM ?), bool_or(key_id = ?) "
                "FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL",
                [key_id, LOCAL_KEY_NAME, key_id]).fetchall()
            if is_admin and other_admins == 0:
                raise LastAdminKey(f"key_id: {key_id} is the last active admin key; create another admin key "
                                   "before revoking it")
        done = cur.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL "
                           "RETURNING key_id", [to_utc_naive(now) if now else store.clock(), key_id]).fetchall()
    return bool(done)


def touch_key(store: Store, key_id: str, when: datetime) -> None:
    with store.transaction() as cur:
        cur.execute("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", [to_utc_naive(when), key_id]).fetchall()


class FailureLimiter:
    """Failed authentications per client address in a sliding window; over the limit means 429.

    Memory is bounded: at most `max_clients` addresses are tracked (the oldest are forgotten).
    """

    def __init__(self, limit: int, window_seconds: float = 60.0, max_clients: int = 10_000) -> None:
        self.limit, self.window, self.max_clients = limit, window_seconds, max_clients
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        q = self._fails.get(client)
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, client: str, now: float) -> float | None:
        """Seconds until `client` may try again, or None when it is under the limit."""
        with self._lock:
            q = self._recent(client, now)
            if q is None or len(q) < self.limit:
                return None
            return max(q[0] + self.window - now, 0.001)

    def failed(self, client: str, now: float) -> int:
        """Record a failure; returns the failures of `client` within the window."""
        with self._lock:
            q = self._recent(client, now)
            if q is None:
                if len(self._fails) >= self.max_clients:
                    self._fails.pop(next(iter(self._fails)))
                q = self._fails[client] = deque()
            q.append(now)
            return len(q)


_ANY_KEY = re.compile(r"fk_[0-9a-f]{16}_[A-Za-z0-9_-]{20,128}")


class RedactKeys(logging.Filter):
    """Masks API keys in log records (e.g. a key pasted into a URL shows up in the access log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(_ANY_KEY.sub("fk_[redacted]", a) if isinstance(a, str) else a
                                for a in (record.args if isinstance(record.args, tuple) else (record.args,)))
        if isinstance(record.msg, str):
            record.msg = _ANY_KEY.sub("fk_[redacted]", record.msg)
        return True
