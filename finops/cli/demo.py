"""`finops demo`: its options. The work (finops.demo.cli.main) is imported only when it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from finops.demo import DEFAULT_DB


def demo(
    seed: Annotated[int, typer.Option(help="randomness of the fleet; the same seed gives the same numbers")] = 7,
    db: Annotated[Path | None, typer.Option(help=f"database to build (default ./{DEFAULT_DB}; FINOPS_DB is not "
                                            "used, so the demo never writes into your store)")] = None,
    days: Annotated[int, typer.Option(min=14, max=366, help="days of history, ending today (UTC)")] = 35,
    end: Annotated[str | None, typer.Option(help="day after the last day of data, YYYY-MM-DD "
                                            "(default today, UTC)")] = None,
    prometheus_days: Annotated[int, typer.Option(min=1, help="most recent days sent through a real "
                                                 "Prometheus when it is installed")] = 7,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="build and summarise only")] = False,
    host: Annotated[str, typer.Option(help="address to serve on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to serve on")] = 8000,
) -> None:
    """A realistic fleet fed through the real ingestion paths into a fresh DuckDB, then served."""
    from finops.demo.cli import main

    main(seed=seed, db=db, days=days, end=end, prometheus_days=prometheus_days, no_serve=no_serve, host=host, port=port)
