"""`finops serve`: the HTTP API (uvicorn) and the scheduler in one process, over one store.

DuckDB allows one writer per file, so the API and the scheduled jobs share the process's single
store. `run()` blocks (uvicorn handles SIGINT/SIGTERM); `start()`/`stop()` run the server on a
thread, for embedding and tests. Stopping ends the server, then lets running jobs finish, then
closes the store.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import uvicorn

from finops.scheduler.jobs import Jobs
from finops.settings import Settings
from finops.settings.alerts import AlertSettings
from finops.settings.schedule import ScheduleSettings
from finops.store import Store, local_access, open_store
from finops.store.keys import RedactKeys
from finops.timeutil import utcnow

log = logging.getLogger(__name__)

AppFactory = Callable[..., Any]


def api_factory() -> AppFactory:
    """`finops.api.create_app`, imported only when serving (the API is a sibling with its own deps)."""
    factory: AppFactory = importlib.import_module("finops.api").create_app
    return factory


# A stop (SIGTERM, Ctrl+C) ends the process within about 10 s, as `docker stop` expects: requests in
# flight get REQUESTS_GRACE_SECONDS, collections started through the API `api.shutdown_wait_seconds`,
# scheduled jobs JOBS_GRACE_SECONDS; what has not finished by then is not stored.
REQUESTS_GRACE_SECONDS = 2
JOBS_GRACE_SECONDS = 3.0


class Service:
    """API plus scheduler. `app_factory(settings, store=..., clock=...)` builds the ASGI app."""

    def __init__(self, settings: Settings, *, host: str = "127.0.0.1", port: int = 8000, scheduler: bool = True,
                 schedule: ScheduleSettings | None = None, alerts: AlertSettings | None = None,
                 app_factory: AppFactory | None = None, store: Store | None = None,
                 clock: Callable[[], datetime] = utcnow, log_level: str = "info"):
        self.settings, self.host, self.port = settings, host, port
        self.with_scheduler = scheduler
        self.schedule = schedule or settings.schedule
        self.alerts = alerts if alerts is not None else settings.alerts
        self.app_factory, self.clock, self.log_level = app_factory, clock, log_level
        self._own_store = store is None
        self.store = store
        self.jobs: Jobs | None = None
        self.server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def _prepare(self) -> uvicorn.Server:
        if self.store is None:
            self.store = open_store(self.settings.db, self.settings.duckdb, clock=self.clock)
        if self._own_store:  # the store's one writer: CLI commands on this host come through the API
            local_access.grant(self.store, f"http://{_local(self.host)}:{self.port}")
        factory = self.app_factory or api_factory()
        app = factory(self.settings, store=self.store, clock=self.clock)
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level=self.log_level, lifespan="auto",
                                timeout_graceful_shutdown=REQUESTS_GRACE_SECONDS)
        for name in ("uvicorn.access", "uvicorn.error"):  # after uvicorn configured its loggers
            logging.getLogger(name).addFilter(RedactKeys())
        self.server = uvicorn.Server(config)
        if self.with_scheduler:
            self.jobs = Jobs(self.store, self.settings, self.schedule, self.alerts, clock=self.clock)
            self.jobs.start()
        return self.server

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM, then stop within about 10 s (see the graces above) and close the store.

        uvicorn re-raises the signal it handled once it has stopped, which would end the process
        before the scheduler and the store are closed; the handlers below take that signal instead,
        so the process exits normally after a complete shutdown.
        """
        caught: list[int] = []
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            previous = {sig: signal.signal(sig, lambda signum, _frame: caught.append(signum))
                        for sig in (signal.SIGINT, signal.SIGTERM)}
        closed = True
        try:
            server = self._prepare()
            if not caught:
                server.run()
        finally:
            closed = self._close(jobs_grace=JOBS_GRACE_SECONDS)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("finops serve stopped%s", f" (signal {caught[0]})" if caught else "")
        if not closed:
            logging.shutdown()
            os._exit(0)  # a job thread still holds the store: leave it uncommitted, as a crash would

    def start(self, timeout: float = 10.0) -> None:
        """Serve on a background thread; returns once the server accepts connections."""
        server = self._prepare()
        self._thread = threading.Thread(target=server.run, name="finops-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._close()
                raise RuntimeError(f"the API server did not start on {self.host}:{self.port}")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._close()

    def _close(self, jobs_grace: float | None = None) -> bool:
        """Stop the scheduler and close the store. With `jobs_grace`, running jobs get that long; a job
        still running then is left behind (False): the process must end without closing the store,
        so that job's transaction never commits and the next start marks its run interrupted."""
        if self.jobs is not None:
            self.jobs.shutdown(wait=jobs_grace is None)
            if jobs_grace is not None and not self.jobs.wait_idle(jobs_grace):
                log.warning("a scheduled job still ran %g s after the stop signal; stopping without it "
                            "(nothing of it is stored; its run shows as interrupted at the next start)", jobs_grace)
                if self.store is not None:
                    local_access.access_file(self.store.path).unlink(missing_ok=True)
                return False
            self.jobs = None
            log.info("scheduler stopped")
        if self._own_store and self.store is not None:
            local_access.withdraw(self.store)
            self.store.close()
            self.store = None
        return True


def _local(host: str) -> str:
    """The address a process on this host reaches a server listening on `host` at."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else f"[{host}]" if ":" in host else host
