"""Report results cached per (report, parameters, data version), rendered once per format.

The data version is the newest succeeded run in the ledger: a collection or ingest that lands
data commits its run as succeeded in the same transaction, so a new version appears exactly when
new data does and older entries simply stop being asked for (and age out of the LRU).
Concurrent requests for one missing entry compute it once.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from finops.reports.export import render
from finops.reports.model import Report
from finops.reports.params import ReportParams
from finops.store import Store
from finops.store.ledger import data_version

Compute = Callable[[str, ReportParams], Report]
CacheKey = tuple[str, str, int]


class DataVersion:
    """`data_version`, asked of the database only when its files may have changed.

    DuckDB writes every commit to the write-ahead log (`<db>.wal`) before the commit is visible,
    and a checkpoint rewrites the database file: while neither file's size or mtime moved, no
    transaction committed and the version stands. A query costs ~0.5 ms, a stat a few µs, and the
    cached report path is otherwise well under a millisecond. After `max_age` seconds the version
    is read again whatever the files say, which bounds staleness should a filesystem hide a change.
    """

    def __init__(self, store: Store, max_age: float = 1.0) -> None:
        self.store, self.max_age = store, max_age
        self._files = [store.path, store.path.with_name(store.path.name + ".wal")]
        self._known: tuple[tuple[object, ...], float, int] | None = None  # (signature, read at, version)
        self._lock = threading.Lock()

    def _signature(self) -> tuple[object, ...]:
        out: list[object] = []
        for f in self._files:
            try:
                st = os.stat(f)
                out.append((st.st_size, st.st_mtime_ns))
            except OSError:
                out.append(None)
        return tuple(out)

    def cached(self) -> int | None:
        """The version if it is certainly unchanged (no I/O beyond two stats), else None."""
        known = self._known
        if known is None or time.monotonic() - known[1] > self.max_age or self._signature() != known[0]:
            return None
        return known[2]

    def get(self) -> int:
        """The current version (reads the ledger when the cached one may be stale)."""
        version = self.cached()
        if version is not None:
            return version
        with self._lock:
            signature, now = self._signature(), time.monotonic()  # before the query: a later commit moves it
            version = data_version(self.store)
            self._known = (signature, now, version)
        return version


@dataclass
class Entry:
    """One computed report and its renderings by format."""

    report: Report
    renders: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def rendered(self, fmt: str) -> tuple[bytes, str]:
        with self.lock:  # one rendering per format, even under concurrent requests
            if fmt not in self.renders:
                self.renders[fmt] = render(self.report, fmt)
            return self.renders[fmt]


class ReportCache:
    """An LRU of report entries with single-flight computation; `max_entries=0` disables keeping."""

    def __init__(self, compute: Compute, max_entries: int) -> None:
        self.compute, self.max_entries = compute, max_entries
        self._entries: OrderedDict[CacheKey, Entry] = OrderedDict()
        self._pending: dict[CacheKey, Future[Entry]] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, name: str, params: ReportParams, version: int) -> Entry:
        key = (name, params.model_dump_json(), version)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry
            pending = self._pending.get(key)
            owner = pending is None
            if owner:
                pending = self._pending[key] = Future()
                self.misses += 1
        assert pending is not None
        if not owner:
            return pending.result()
        try:
            entry = Entry(self.compute(name, params))
        except BaseException as exc:
            with self._lock:
                del self._pending[key]
            pending.set_exception(exc)
            raise
        with self._lock:
            del self._pending[key]
            if self.max_entries:
                self._entries[key] = entry
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        pending.set_result(entry)
        return entry

    def peek(self, name: str, params: ReportParams, version: int, fmt: str) -> tuple[bytes, str] | None:
        """A finished rendering, without computing or waiting (the event loop's fast path)."""
        key = (name, params.model_dump_json(), version)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or fmt not in entry.renders:
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry.renders[fmt]

    def __len__(self) -> int:
        return len(self._entries)
