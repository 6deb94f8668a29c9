"""The `finops` command line: parses arguments and calls the modules that do the work."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from finops.settings import Settings, load_settings
from finops.store.db import open_store
from finops.timeutil import Window, parse_date

app = typer.Typer(help="FinOps for self-hosted LLM inference.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
ingest_app = typer.Typer(help="Load cost files.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(ingest_app, name="ingest")

console = Console()
err = Console(stderr=True)


def settings() -> Settings:
    return load_settings()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database or upgrade it to the newest schema (a no-op when current)."""
    from finops.store.migrate import current_revision, upgrade

    s = settings()
    store = open_store(s.db, s.duckdb, migrate=False)
    try:
        before, after = upgrade(store)
        if before == after:
            console.print(f"{s.db}: already at revision {after}")
        else:
            console.print(f"{s.db}: upgraded {before or 'empty'} -> {after}")
        assert current_revision(store) == after
    finally:
        store.close()


@ingest_app.command("focus")
def ingest_focus_cmd(paths: Annotated[list[Path], typer.Argument(help="FOCUS CSV, CSV.gz or Parquet files")]) -> None:
    """Ingest FOCUS 1.0-1.3 files; re-ingesting a file replaces its rows."""
    from finops.collect import run_task
    from finops.ingest import SOURCE, file_task
    from finops.tags import TagRules

    s = settings()
    store = open_store(s.db, s.duckdb)
    failed = False
    try:
        rules = TagRules.from_settings(s)
        for path in paths:
            r = run_task(store, SOURCE, file_task(rules, path))
            if r.status == "succeeded":
                console.print(f"{path}: {r.rows} accepted, {r.quarantined} quarantined (run {r.run_id})")
            else:
                failed = True
                err.print(f"[red]{path}: failed: {r.error}[/red] (run {r.run_id}; nothing stored)")
    finally:
        store.close()
    if failed:
        raise typer.Exit(1)


@app.command("collect")
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
    store = open_store(s.db, s.duckdb)
    failed = False
    try:
        with Progress(console=err, transient=True) as bar:
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
    finally:
        store.close()
    if failed:
        raise typer.Exit(1)


@app.command("report")
def report_cmd(
    name: Annotated[str, typer.Argument(help="unit-economics, idle-gpus, untagged-spend or weekly")],
    start: Annotated[str | None, typer.Option(help="first day, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option(help="day after the last, YYYY-MM-DD")] = None,
    week: Annotated[str | None, typer.Option(help="ISO week, e.g. 2026-W47 (instead of start/end)")] = None,
    group_by: Annotated[str | None, typer.Option(help="comma-separated dims")] = None,
    granularity: Annotated[str | None, typer.Option(help="day, week, month or total")] = None,
    cost_basis: Annotated[str | None, typer.Option(help="effective or billed")] = None,
    idle_threshold: Annotated[float | None, typer.Option(help="busy fraction below which an hour is idle")] = None,
    scope: Annotated[str | None, typer.Option(help="all or accelerator (untagged spend)")] = None,
    required_tags: Annotated[str | None, typer.Option(help="comma-separated dims a bill must carry")] = None,
    currency: Annotated[str | None, typer.Option(help="report currency")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json, csv or xlsx")] = "table",
    out: Annotated[Path | None, typer.Option(help="write to this file instead of stdout")] = None,
) -> None:
    """Compute a report (SPEC section 4) and print it or write it to a file."""
    from finops import reports
    from finops.reports.export import render
    from finops.reports.params import ParamError, build_params
    from finops.reports.terminal import show

    if name not in reports.NAMES:
        raise typer.BadParameter(f"unknown report {name!r}; choose from {', '.join(reports.NAMES)}", param_hint="NAME")
    if fmt not in ("table", "json", "csv", "xlsx"):
        raise typer.BadParameter(f"{fmt!r} is not one of table, json, csv, xlsx", param_hint="--format")
    s = settings()
    try:
        params = build_params(
            start=start, end=end, week=week, group_by=group_by, required_tags=required_tags,
            default_required=s.required_tags, granularity=granularity, cost_basis=cost_basis,
            idle_threshold=idle_threshold if idle_threshold is not None else s.idle_threshold, scope=scope,
            currency=currency, shared_cost_key=s.shared_cost_key,
            default_window_days=7 if name != "weekly" else 7,
        )
        store = open_store(s.db, s.duckdb)
        try:
            report = reports.get(name)(store, s, params)
        finally:
            store.close()
    except ParamError as exc:
        raise typer.BadParameter(exc.message, param_hint=f"--{exc.param.replace('_', '-')}") from None
    if fmt == "table":
        show(report, console)
        return
    content, kind = render(report, fmt)
    if out is not None:
        out.write_bytes(content)
        err.print(f"wrote {out} ({kind}, {len(content)} bytes)")
    elif kind in ("json", "csv"):
        typer.echo(content.decode(), nl=False)
    else:
        raise typer.BadParameter(f"{kind} output is binary: give --out FILE", param_hint="--out")


# Sub-commands that live with the modules they drive (imported last: they import this module's app).
from finops.demo.cli import demo  # noqa: E402
from finops.gateway.cli import gateway  # noqa: E402
from finops.keys_cli import app as keys_app  # noqa: E402
from finops.lake_cli import app as lake_app  # noqa: E402
from finops.serve_cli import serve  # noqa: E402
from finops.simulate.cli import app as simulate_app  # noqa: E402

app.command("demo")(demo)
app.command("serve")(serve)
app.command("gateway")(gateway)
app.add_typer(keys_app, name="keys")
app.add_typer(lake_app, name="export")
app.add_typer(simulate_app, name="simulate")
