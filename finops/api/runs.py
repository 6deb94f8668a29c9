"""Collections started through the API, each on its own thread, and the ledger seen per source."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from finops.collect import AlreadyRunning, collect
from finops.settings import Settings
from finops.store import Store
from finops.store.ledger import is_running
from finops.timeutil import Window

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """One source's part of a job (a source may run several tasks: one outcome per ledger run)."""

    source: str
    status: str
    run_id: int | None = None
    rows: int = 0
    quarantined: int = 0
    requests: int = 0
    error: str | None = None


@dataclass
class Job:
    """A collection requested through the API: `status` moves accepted -> running -> succeeded|failed."""

    job_id: int
    name: str
    sources: list[str]
    window: Window
    submitted_at: datetime
    status: str = "accepted"
    finished_at: datetime | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


class Busy(Exception):
    """A source of the job is already being collected."""

    def __init__(self, sources: list[str]) -> None:
        super().__init__(", ".join(sources))
        self.sources = sources


class RunRegistry:
    """Starts jobs on threads, refuses overlapping ones, keeps the latest `keep` jobs for lookup."""

    def __init__(self, store: Store, settings: Settings, now: Callable[[], datetime], keep: int = 200) -> None:
        self.store, self.settings, self.now, self.keep = store, settings, now, keep
        self._jobs: dict[int, Job] = {}
        self._active: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, name: str, sources: list[str], window: Window) -> Job:
        with self._lock:
            busy = [s for s in sources if s in self._active or is_running(self.store, s)]
            if busy:
                raise Busy(busy)
            job = Job(next(self._ids), name, list(sources), window, self.now())
            self._active.update(sources)
            self._jobs[job.job_id] = job
            for old in [j for j in self._jobs.values() if j.done.is_set()]:  # oldest first
                if len(self._jobs) <= self.keep:
                    break
                del self._jobs[old.job_id]
            thread = threading.Thread(target=self._run, args=(job,), name=f"finops-run-{job.job_id}")
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return job

    def _run(self, job: Job) -> None:
        job.status = "running"
        try:
            for source in job.sources:
                try:
                    results = collect(self.store, self.settings, source, job.window)
                except AlreadyRunning as exc:  # started elsewhere in this process (the scheduler)
                    job.outcomes.append(Outcome(source, "failed", error=str(exc)))
                    continue
                job.outcomes += [Outcome(source, r.status, r.run_id, r.rows, r.quarantined, r.requests, r.error)
                                 for r in results]
        except Exception as exc:  # the store itself failed: report it on the job, keep the server up
            log.exception("collection job %s failed", job.job_id)
            job.outcomes.append(Outcome(job.name, "failed", error=f"{type(exc).__name__}: {exc}"))
        finally:
            ok = bool(job.outcomes) and all(o.status == "succeeded" for o in job.outcomes)
            job.status = "succeeded" if ok else "failed"
            job.finished_at = self.now()
            with self._lock:
                self._active.difference_update(job.sources)
            job.done.set()

    def get(self, job_id: int) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def join(self, timeout: float) -> bool:
        """Wait for running jobs; False if some are still running after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        for t in list(self._threads):
            t.join(max(deadline - time.monotonic(), 0))
        return not any(t.is_alive() for t in self._threads)
