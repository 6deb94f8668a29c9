"""Verified keys kept briefly in memory, and `last_used_at` written off the request path."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from finops.store import Store
from finops.store.keys import Principal, touch_key

log = logging.getLogger(__name__)


class KeyCache:
    """sha256(key) -> principal for `ttl` seconds, so a hot client does not hit the key table each time."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl, self.max_entries = ttl, max_entries
        self._items: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def digest(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    def get(self, digest: str) -> Principal | None:
        with self._lock:
            item = self._items.get(digest)
            if item is None or item[1] < time.monotonic():
                return None
            return item[0]

    def put(self, digest: str, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._items) >= self.max_entries:
                self._items.clear()
            self._items[digest] = (principal, time.monotonic() + self.ttl)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class LastUsed:
    """Records key use at most once per `interval` per key, on a background thread.

    The write waits for the store's writer lock; a collection may hold it for a while, and a
    read request must not wait for that.
    """

    def __init__(self, store: Store, interval: float = 60.0) -> None:
        self.store, self.interval = store, interval
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finops-key-touch")

    def touch(self, key_id: str, when: datetime) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key_id, -self.interval) < self.interval:
                return
            self._last[key_id] = now
        self._pool.submit(self._write, key_id, when)

    def _write(self, key_id: str, when: datetime) -> None:
        try:
            touch_key(self.store, key_id, when)
        except Exception:  # bookkeeping only: never fail a request over it
            log.warning("could not record the use of key %s", key_id, exc_info=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
