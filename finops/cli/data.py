"""`finops db upgrade`, `finops ingest focus` and `finops collect`: what lands data in the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from finops.cli.common import console, err, opened, settings
from finops.timeutil import Window, parse_date

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
ingest_app = typer.Typer(help="Load cost files.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database or upgrade it to the newest schema (a no-op when current)."""
    from finops.store.ledger import fail_interrupted_runs
    from finops.store.migrate import current_revision, upgrade

    s = settings()
    with opened(s, migrate=False) as store:
        before, after = upgrade(store)
        if before == after:
            console.print(f"{s.db}: already at revision {after}")
        else:
            console.print(f"{s.db}: upgraded {before or 'empty'} -> {after}")
        assert current_revision(store) == after
        interrupted = fail_interrupted_runs(store)
        if interrupted:
            console.print(f"{s.db}: {interrupted} run(s) left running by a stopped process marked failed")


@ingest_app.command("focus")
def ingest_focus_cmd(paths: Annotated[list[Path], typer.Argument(help="FOCUS CSV, CSV.gz or Parquet files")]) -> None:
    """Ingest FOCUS 1.0-1.3 files; re-ingesting a file replaces its rows."""
    from finops.collect import run_task
    from finops.sources.focus import SOURCE, file_task
    from finops.tags import TagRules

    s = settings()
    failed = False
    with opened(s) as store:
        rules = TagRules.from_settings(s)
        for path in paths:
            r = run_task(store, SOURCE, file_task(rules, path))
            if r.status == "succeeded" and r.rows == 0 and r.quarantined > 0:
                failed = True  # nothing of the file could be used: not a success, whatever was recorded
                err.print(f"[red]{path}: every row quarantined ({r.quarantined}); nothing stored[/red] "
                          f"(run {r.run_id}; each row's line and reason are in the quarantine table)")
            elif r.status == "succeeded":
                console.print(f"{path}: {r.rows} accepted, {r.quarantined} quarantined (run {r.run_id})")
            else:
                failed = True
                err.print(f"[red]{path}: failed: {r.error}[/red] (run {r.run_id}; nothing stored)")
    if failed:
        raise typer.Exit(1)


def collect_cmd(
    source: Annotated[str, typer.Argument(help="aws, azure, prometheus or all")],
    start: Annotated[str, typer.Option(help="first day, YYYY-MM-DD (inclusive)")],
    end: Annotated[str, typer.Option(help="last day, YYYY-MM-DD (exclusive)")],
) -> None:
    """Collect one source (or all) over [start, end) and replace that window in the store."""
    from rich.progress import Progress, TaskID

    from finops.collect import GROUPS, collect

    if source not in GROUPS:
        raise typer.BadParameter(f"unknown source {source!r}; choose from {', '.join(GROUPS)}", param_hint="SOURCE")
    try:
        window = Window.from_dates(parse_date(start, "--start"), parse_date(end, "--end"))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    s = settings()
    failed = False
    with opened(s) as store, Progress(console=err, transient=True) as bar:
        for sid in GROUPS[source]:
            task_id = bar.add_task(sid, total=None)

            def tick(done: int, total: int, task_id: TaskID = task_id) -> None:
                bar.update(task_id, completed=done, total=total)

            for r in collect(store, s, sid, window, progress=tick):
                if r.status == "succeeded":
                    console.print(f"{sid}: {r.rows} rows, {r.quarantined} quarantined, "
                                  f"{r.requests} requests (run {r.run_id})")
                else:
                    failed = True
                    err.print(f"[red]{sid}: failed: {r.error}[/red] (run {r.run_id}; store unchanged)")
    if failed:
        raise typer.Exit(1)


