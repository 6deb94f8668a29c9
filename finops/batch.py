"""The contract between sources and the store: a source plans tasks, each task yields one Batch.

Sources import this module, never the store; `finops.collect` lands batches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import (
    Any,
    TypeAlias,  # noqa: E402
)

import pyarrow as pa

from finops.timeutil import Window

FactData: TypeAlias = pa.Table | pa.RecordBatchReader
Progress = Callable[[int, int], None]  # (done, total) units of work, for progress bars


@dataclass
class Batch:
    """What one task returns: rows per fact table (`cost_lines`, `gpu_hours`, `token_hours`,
    `inventory`), rows it could not read (dicts with origin, line, reason, raw), requests made.
    Rows that stream (a RecordBatchReader) may add to `quarantine` as they are read: the landing
    reads it after their insert."""

    facts: Mapping[str, FactData]
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    # Scopes by content: the rows carry their own `scope` column, and the batch replaces each
    # scope they carry whole (and the task's own scope), instead of the task's scope alone.
    by_content: bool = False
    # What stopped rows that stream while the landing read them (a file unreadable past its first
    # rows): the run reports it, as it would a failed fetch, rather than the insert's account of it.
    stream_errors: Sequence[Exception] = ()


@dataclass(frozen=True)
class Task:
    """One unit of collection: `fetch()` builds the batch that replaces `scope` within `window`
    (the whole scope when `window` is None, e.g. one FOCUS file)."""

    scope: str
    window: Window | None
    fetch: Callable[[], Batch]


class SourceFailed(Exception):
    """A source could not produce its batch. The message is shown to users: never put secrets in it."""

    def __init__(self, message: str, requests: int = 0, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.requests = requests
        self.details = details or {}
