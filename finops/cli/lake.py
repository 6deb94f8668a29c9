"""`finops export lake --to PATH_OR_S3_URI`: the store's fact and rollup tables as partitioned Parquet;
`finops export focus --start D --end D --out FILE`: the attributed cost as a FOCUS 1.3 file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from finops.cli.common import console, err, opened, settings

app = typer.Typer(rich_markup_mode=None, help="Export the store.", no_args_is_help=True)


@app.command("lake")
def lake(
    to: Annotated[str, typer.Option("--to", help="Destination directory or s3:// URI")],
    since: Annotated[str | None, typer.Option("--since", help="Export months from this date's month on (YYYY-MM-DD)")] = None,
) -> None:
    """Write fact and rollup tables as Hive-partitioned Parquet (by source and month); re-running replaces
    the partitions it writes, never duplicates."""
    from finops.lake.export import LakeError, export_lake
    from finops.timeutil import parse_date

    try:
        start = parse_date(since, "since") if since else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    with opened(settings()) as store:
        try:
            result = export_lake(store, to, since=start)
        except LakeError as exc:
            raise typer.BadParameter(str(exc), param_hint="--to") from None
    for table, n in result.partitions.items():
        console.print(f"{table}: {n} partition(s), {result.rows[table]} row(s)")
    for skipped in result.skipped:
        console.print(f"kept (hourly detail partly trimmed in the store): {skipped}")
    console.print(f"exported to {result.dest}")


@app.command("focus")
def focus(
    start: Annotated[str, typer.Option(help="first day, YYYY-MM-DD")],
    end: Annotated[str, typer.Option(help="day after the last, YYYY-MM-DD")],
    out: Annotated[Path, typer.Option(help="the file to write: .parquet or .csv")],
) -> None:
    """Write the attributed cost of [start, end) as FOCUS 1.3: each bill line's allocations in the split
    cost allocation columns, our dims in AllocatedTags (docs/definitions.md 6.11)."""
    from finops.reports.focus_export import FORMATS, focus_export, write
    from finops.reports.params import ParamError
    from finops.timeutil import parse_date

    if out.suffix.lower().lstrip(".") not in FORMATS:
        raise typer.BadParameter(f"{out.name}: write .parquet or .csv", param_hint="--out")
    try:
        first, after = parse_date(start, "start"), parse_date(end, "end")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if after <= first:
        raise typer.BadParameter(f"the window [{first}, {after}) is empty", param_hint="--end")
    s = settings()
    with opened(s) as store:
        try:
            table = focus_export(store, s, first, after)
        except ParamError as exc:
            raise typer.BadParameter(exc.message, param_hint=f"--{exc.param}") from None
    fmt = write(table, out)
    err.print(f"wrote {out} ({fmt}, {table.num_rows} rows)")
