"""`finops export lake --to PATH_OR_S3_URI`: the store's fact and rollup tables as partitioned Parquet."""

from __future__ import annotations

from typing import Annotated

import typer

from finops.cli.common import console, opened, settings

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
