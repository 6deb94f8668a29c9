"""`finops serve`: the API and the scheduler in one process, the store's one writer."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from finops.cli import common


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    no_scheduler: Annotated[bool, typer.Option("--no-scheduler", help="serve the API only")] = False,
) -> None:
    """Run the HTTP API and the scheduler (collections, weekly report, alerts) in one process."""
    from finops.service import Service
    from finops.store import StoreBusy

    if not logging.getLogger().handlers:  # our INFO lines (runs, retries, reports) next to uvicorn's
        logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
        logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per job run is noise
    s = common.settings()
    try:
        Service(s, host=host, port=port, scheduler=not no_scheduler, clock=common.CLOCK).run()
    except StoreBusy as exc:
        common.err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
