"""`finops db upgrade`, `finops ingest focus` and `finops collect`: what lands data in the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from finops.cli.common import ServiceOwnsStore, console, err, opened, settings
from finops.timeutil import Window, parse_date

db_app = typer.Typer(rich_markup_mode=None, help="Database schema.", no_args_is_help=True)
ingest_app = typer.Typer(rich_markup_mode=None, help="Load cost files.", no_args_is_help=True)


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


@db_app.command("reattribute")
def db_reattribute() -> None:
    """Attribute every stored day again under the configured shared_cost_key and idle_threshold.

    Needed after changing either, or after upgrading a store that held data; until then
    reports compute attribution on the fly (same numbers, slower). Resumable and idempotent: an
    interrupted run continues where it stopped; on an up-to-date store it does nothing."""
    from rich.progress import Progress

    from finops.attribution.materialize import rebuild

    s = settings()
    with opened(s) as store, Progress(console=err.get(), transient=True) as bar:
        policy = f"shared_cost_key={s.shared_cost_key}, idle_threshold={s.idle_threshold}"
        task_id = bar.add_task(f"attributing under {policy}", total=None)
        days = rebuild(store.transaction, s.shared_cost_key,
                       lambda done, total: bar.update(task_id, completed=done, total=total), s.idle_threshold)
    console.print(f"{s.db}: {days} day(s) attributed under {policy}"
                  if days else f"{s.db}: attribution already up to date ({policy})")


@ingest_app.command("focus")
def ingest_focus_cmd(paths: Annotated[list[Path], typer.Argument(help="FOCUS CSV, CSV.gz or Parquet files")]) -> None:
    """Ingest FOCUS 1.0-1.3 files; re-ingesting a file replaces its rows."""
    from finops.collect import run_task
    from finops.sources.focus import SOURCE, file_task
    from finops.tags import TagRules

    s = settings()
    try:
        with opened(s, via_service=True) as store:
            rules = TagRules.from_settings(s)
            failed = False
            for path in paths:
                r = run_task(store, SOURCE, file_task(rules, path))
                failed |= not _said(path, r.status, r.rows, r.quarantined, r.error, f"run {r.run_id}")
    except ServiceOwnsStore as svc:
        failed = not _ingest_via(svc, paths)
    if failed:
        raise typer.Exit(1)


def _said(path: Path, status: str, rows: int, quarantined: int, error: str | None, where: str) -> bool:
    """Print one file's outcome; False when the file gave nothing (failed, or every row quarantined)."""
    if status == "succeeded" and rows == 0 and quarantined > 0:
        # Nothing of the file could be used: not a success, whatever was recorded.
        err.print(f"[red]{path}: every row quarantined ({quarantined}); nothing stored[/red] "
                  f"({where}; each row's line and reason are in the quarantine table)")
        return False
    if status == "succeeded":
        console.print(f"{path}: {rows} accepted, {quarantined} quarantined ({where})")
        return True
    err.print(f"[red]{path}: failed: {error}[/red] ({where}; nothing stored)")
    return False


def _ingest_via(svc: ServiceOwnsStore, paths: list[Path]) -> bool:
    """Send each file to the running service, which ingests it as the CLI would; True if all landed."""
    import httpx

    from finops.cli.client import ServiceClient, ServiceError

    ok = True
    with ServiceClient(svc.access) as client:
        for path in paths:
            try:
                r = client.upload_focus(path)
            except (OSError, ServiceError, httpx.HTTPError) as exc:
                err.print(f"[red]{path}: {exc}[/red]")
                ok = False
                continue
            where = f"run {r['run_id']}, through the running service at {svc.access.url}"
            ok &= _said(path, r["status"], r["rows"], r["quarantined"], r["error"], where)
    return ok


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
    with opened(s) as store, Progress(console=err.get(), transient=True) as bar:
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


