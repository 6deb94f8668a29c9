"""`finops report NAME`: one report as a terminal table, JSON, CSV or XLSX."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from finops.cli.common import ServiceOwnsStore, console, err, now, opened, settings
from finops.reports import NAMES


def report_cmd(
    name: Annotated[str, typer.Argument(help=", ".join(NAMES))],
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
    """Compute a report (docs/definitions.md) and print it or write it to a file."""
    from finops import reports
    from finops.reports.export import render
    from finops.reports.params import ParamError, build_params
    from finops.reports.terminal import show
    from finops.store.load import coverage

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
            generation_weight=s.generation_weight,
            currency=currency, shared_cost_key=s.shared_cost_key,
            default_window_days=7, today=now().date(),
        )
        with opened(s, via_service=True) as store:
            report = reports.get(name)(store, s, params)
            held = coverage(store) if not report.rows else None
    except ParamError as exc:
        raise typer.BadParameter(exc.message, param_hint=f"--{exc.param.replace('_', '-')}") from None
    except ServiceOwnsStore as svc:  # the service computes it (the same code, over the same store)
        query = {"start": start, "end": end, "week": week, "group_by": group_by, "granularity": granularity,
                 "cost_basis": cost_basis, "idle_threshold": idle_threshold, "scope": scope,
                 "required_tags": required_tags, "currency": currency}
        _via_service(svc, name, query, fmt, out)
        return
    if held is not None:  # an empty report says why, on stderr, whatever the format
        err.print(no_data(params.start, params.end, held))
    if fmt == "table":
        show(report, console.get())
        return
    content, kind = render(report, fmt)
    _emit(content, kind, out)


def _emit(content: bytes, kind: str, out: Path | None, note: str = "") -> None:
    """A rendered report to `out`, or to stdout when it is text."""
    if out is not None:
        out.write_bytes(content)
        err.print(f"wrote {out} ({kind}, {len(content)} bytes{note})")
    elif kind in ("json", "csv"):
        typer.echo(content.decode(), nl=False)
    else:
        raise typer.BadParameter(f"{kind} output is binary: give --out FILE", param_hint="--out")


def _via_service(svc: ServiceOwnsStore, name: str, query: dict[str, Any], fmt: str, out: Path | None) -> None:
    import httpx

    from finops.cli.client import ServiceClient, ServiceError
    from finops.reports.model import Report
    from finops.reports.terminal import show

    try:
        with ServiceClient(svc.access) as client:
            content, kind = client.report(name, query, "json" if fmt == "table" else fmt)
    except (ServiceError, OSError, httpx.HTTPError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    if fmt == "table":
        data = json.loads(content, parse_float=Decimal)
        tables = {k: v for k, v in data.items() if k not in ("rows", "totals", "params")}
        show(Report(name, data["params"], data["rows"], data["totals"], tables, data["params"].get("currency", "")),
             console.get())
    else:
        _emit(content, kind, out, ", from the running service")


def no_data(start: date, end: date, held: dict[str, tuple[date, date] | None]) -> str:
    """One line: the window had no data, and what the store does hold."""
    spans = [f"{fact} {span[0]} to {span[1]}" for fact, span in held.items() if span]
    return (f"no data in [{start}, {end}): " + (f"the store holds {'; '.join(spans)}" if spans
                                                 else "the store is empty (finops ingest / finops collect)"))
