"""The FOCUS drop folder: ingest files that are new or changed since they were last ingested.

Each file is one run of source `focus` whose scope is the file's resolved path (as `finops ingest
focus`); its rows replace what they cover (docs/definitions.md 3, window replacement), so a changed
file, or a later delivery of the same billing period under any name, replaces the earlier rows. What was ingested is remembered in the ledger: every
run's details carry the file's signature (size and modification time), so a file is ingested again
only once it changes, whether its last run succeeded or failed.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from finops.batch import Batch, SourceFailed, Task
from finops.collect import RunResult, run_tasks
from finops.settings.schedule import FocusDropSettings
from finops.sources.focus import SOURCE, file_task
from finops.store import Store
from finops.store.ledger import latest_details
from finops.tags import TagRules

log = logging.getLogger(__name__)



def signature(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def candidates(cfg: FocusDropSettings) -> list[Path]:
    """The folder's files matching its patterns. A link that leads out of the folder is skipped: the
    folder is what the service was told to read, not whatever a link in it points at."""
    if cfg.folder is None or not cfg.folder.is_dir():
        return []
    root = cfg.folder.resolve()
    found = {p.resolve() for pattern in cfg.patterns for p in cfg.folder.glob(pattern) if p.is_file()}
    outside = sorted(p for p in found if not p.is_relative_to(root))
    for p in outside:
        log.warning("FOCUS drop folder: %s leads outside %s; skipped", p.name, root)
    return sorted(found.difference(outside))


def pending(store: Store, cfg: FocusDropSettings, now: float | None = None) -> list[Path]:
    """Files to ingest now: never ingested, or changed since their last run (succeeded or failed),
    oldest first: deliveries of one billing period land in the order they were written, so the
    latest is the one that stays, whatever the files are called.

    `now` (epoch seconds, as file modification times) tells files still being written apart."""
    now = time.time() if now is None else now
    latest = latest_details(store, SOURCE)
    out = []
    for path in candidates(cfg):
        mtime = path.stat().st_mtime
        if now - mtime < cfg.settle_seconds:
            continue  # may still be being written
        scope = str(path)
        if scope not in latest or json.loads(latest[scope] or "{}").get("signature") != signature(path):
            out.append(path)
    return sorted(out, key=lambda p: (p.stat().st_mtime_ns, str(p)))


def _signed(task: Task, sig: str) -> Task:
    def fetch() -> Batch:
        try:
            batch = task.fetch()
        except SourceFailed as exc:
            raise SourceFailed(str(exc), exc.requests, {**exc.details, "signature": sig}) from exc
        except Exception as exc:
            raise SourceFailed(f"{type(exc).__name__}: {exc}", 0, {"signature": sig}) from exc
        batch.details["signature"] = sig
        return batch

    return Task(task.scope, task.window, fetch)


def ingest_pending(store: Store, cfg: FocusDropSettings, rules: TagRules, now: float | None = None) -> list[RunResult]:
    """Ingest every pending file of the drop folder (raises collect.AlreadyRunning if an ingest runs)."""
    files = pending(store, cfg, now)
    results = run_tasks(store, SOURCE, [_signed(file_task(rules, p), signature(p)) for p in files])
    for r in results:
        if r.status == "failed":
            log.warning("FOCUS drop folder: %s", r.error)
    return results
