"""What every `finops` command shares: settings, the clock, the consoles, and the store it opens.

The CLI is an entry point: settings and the clock are built here once per command and passed down.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from finops.timeutil import Clock, utcnow

if TYPE_CHECKING:  # imported when a command runs, so `finops --help` starts fast
    from rich.console import Console

    from finops.cli.client import ServiceClient
    from finops.settings import Settings
    from finops.store import Store
    from finops.store.local_access import Access



class LazyConsole:
    """A rich Console built on first use: `finops --help` never imports rich's console."""

    def __init__(self, **options: Any) -> None:
        self._options: dict[str, Any] = options
        self._console: Console | None = None

    def get(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


# A line is never cut or wrapped; tables get a terminal's width, or room for every column when piped.
console = LazyConsole(soft_wrap=True, width=None if sys.stdout.isatty() else 250)
err = LazyConsole(stderr=True, soft_wrap=True)

# The clock of every command. Tests replace it (monkeypatch) to run the CLI at another date.
CLOCK: Clock = utcnow


def settings() -> Settings:
    from finops.settings import load_settings

    return load_settings()


def now() -> datetime:
    return CLOCK()


class ServiceOwnsStore(Exception):
    """The running service owns the store; `access` reaches it (commands that can, go through it)."""

    def __init__(self, access: Access):
        super().__init__(access.url)
        self.access = access


@contextmanager
def opened(s: Settings, *, migrate: bool = True, via_service: bool = False) -> Iterator[Store]:
    """The store for the duration of one command; closed however the command ends.

    When another process holds it: with `via_service`, raises ServiceOwnsStore if that process is a
    `finops serve` this user may reach; otherwise one line says what to do and the command exits 1."""
    from finops.store import StoreBusy, local_access, open_store

    try:
        store = open_store(s.db, s.duckdb, migrate=migrate, clock=CLOCK)
    except StoreBusy as exc:
        access = local_access.read(s.db) if via_service else None
        if access is not None:
            raise ServiceOwnsStore(access) from None
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    try:
        yield store
    finally:
        store.close()


T = TypeVar("T")


def through_service(svc: ServiceOwnsStore, call: Callable[[ServiceClient], T]) -> T:
    """Run `call` against the running service; its error, if any, as one line and exit 1."""
    import httpx

    from finops.cli.client import ServiceClient, ServiceError

    try:
        with ServiceClient(svc.access) as client:
            return call(client)
    except (ServiceError, OSError, httpx.HTTPError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
