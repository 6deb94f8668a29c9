"""What `finops demo` does (its options: finops/cli/demo.py): build the demo database, show a summary,
then serve it with `finops serve` (API only) until interrupted."""

from __future__ import annotations

import socket
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from finops.demo import DEFAULT_DB
from finops.demo.run import DemoConfig, DemoFailed, DemoResult, last_full_week, run_demo
from finops.settings import Settings, load_settings
from finops.store import open_store
from finops.timeutil import iso_week, parse_date

if TYPE_CHECKING:
    from finops.service import Service

console = Console()


def money(v: Decimal | float) -> str:
    return f"-${-v:,.2f}" if v < 0 else f"${v:,.2f}"


def _price(v: Decimal | None, factor: int, places: int) -> str:
    return f"${v * factor:,.{places}f}" if v is not None else "-"


def show_summary(result: DemoResult) -> None:
    s = result.summary
    head = Table(title=f"Demo fleet {s.start} .. {s.end} (seed {result.config.seed})", show_header=False)
    head.add_column(style="bold")
    head.add_column(justify="right")
    verdict = "[green]equal to the cent[/green]" if s.matches else "[red]DIFFERENT[/red]"
    head.add_row("Generated bill (FOCUS lines)", money(s.bill_total))
    head.add_row("Control total (unit-economics rows)", f"{money(s.control_total)}  {verdict}")
    head.add_row("GPU-hours / generated tokens", f"{s.gpu_hours:,} / {s.generation_tokens / 1e6:,.0f} M")
    head.add_row("Idle GPU cost", f"{money(s.idle_gpu_cost)}  ({s.idle_gpu_hours:,} idle GPU-hours)")
    share = f"{s.untagged_share:.1%}" if s.untagged_share is not None else "n/a"
    head.add_row("Untagged share of spend", f"{share}  ({money(s.untagged_cost)})")
    console.print(head)
    # Two different numbers that users compare: say what each one counts.
    console.print("  Untagged spend counts bill lines missing a required tag. Most of it is still attributed,\n"
                  "  through GPU and token telemetry on the same resource or a shared split; the model table's\n"
                  "  __untagged__ / __unallocated__ rows hold only what no rule could attribute.", soft_wrap=True)
    models = Table(title="Cost per 1k generated tokens, by model; the cost split between prompt and generation")
    for col in ("model", "cost", "generated", "$ / 1k generated", "idle cost", "$ / 1M prompt", "$ / 1M generation",
                "cache hits", "cache saved", "split by"):
        models.add_column(col, justify="left" if col in ("model", "split by") else "right")
    for m in s.by_model:
        models.add_row(m.model_id, money(m.cost), f"{m.generation_tokens / 1e6:,.0f} M",
                       _price(m.cost_per_1k_generated_tokens, 1, 6), money(m.idle_cost),
                       _price(m.cost_per_1k_prompt_tokens, 1000, 4), _price(m.cost_per_1k_generation_tokens, 1000, 4),
                       f"{m.cache_hit_rate:.0%}" if m.cache_hit_rate is not None else "-",
                       money(m.cache_savings) if m.cache_savings is not None else "-",
                       (m.split_basis or "-").replace("_", " "))
    console.print(models)
    if s.mig:
        mig = Table(title="MIG instances: each bills its compute slices of the GPU (7 on an A100)")
        for col in ("host", "instance", "profile", "model", "busy", "idle hours", "idle cost"):
            mig.add_column(col, justify="left" if col in ("host", "profile", "model") else "right", no_wrap=True)
        for line in s.mig:
            mig.add_row(line.host or "-", line.mig_instance, line.mig_profile or "-", line.model_id, f"{line.avg_busy:.0%}",
                        f"{line.idle_hours:,} of {line.hours_observed:,}", money(line.idle_cost))
        console.print(mig)
    offers = Table(title="Build vs buy over the last week, at the shipped EXAMPLE API prices (set yours: "
                         "docs/definitions.md 6.9)")
    for col in ("model", "API model", "self-hosted", "same tokens at the API", "saving", "GPU busy", "break-even busy"):
        offers.add_column(col, justify="left" if "model" in col else "right")
    for o in s.build_vs_buy:
        offers.add_row(o.model_id, o.api_model or "-", money(o.cost), money(o.api_cost) if o.api_cost is not None else "-",
                       money(o.saving) if o.saving is not None else "-",
                       f"{o.avg_gpu_busy:.0%}" if o.avg_gpu_busy is not None else "-",
                       ("never" if o.break_even_busy > 1 else f"{o.break_even_busy:.0%}")
                       if o.break_even_busy is not None else "-")
    console.print(offers)
    budgets = Table(title=f"Budgets this month, as of {s.end} (forecast: the month's end, 80% interval)")
    for col in ("budget", "amount", "spent", "forecast", "interval", "status"):
        budgets.add_column(col, justify="left" if col in ("budget", "status") else "right")
    for b in s.budgets:
        budgets.add_row(b.budget, money(b.amount), money(b.actual_cost), money(b.forecast_cost),
                        f"{money(b.forecast_cost_low)} .. {money(b.forecast_cost_high)}", b.status)
    console.print(budgets)
    found = Table(title="Anomalies in the last week, per team")
    for col in ("day", "team", "metric", "value", "usual", "score", "moved most"):
        found.add_column(col, no_wrap=True)
    for a in s.anomalies:
        fmt = money if a.metric == "cost" else (lambda v: f"${v:.6f}")
        found.add_row(str(a.day), a.team, "cost" if a.metric == "cost" else "$ / 1k generated", fmt(a.value),
                      fmt(a.baseline), f"{a.score:+.1f}", a.top_resource or "")
    console.print(found)


def demo_key(settings: Settings) -> str:
    """A new finance key for the demo database (finance may read the weekly report and download XLSX)."""
    from finops.store.keys import create_key

    store = open_store(settings.db, settings.duckdb)
    try:
        return create_key(store, "finance", name="finops demo")[1]
    finally:
        store.close()


def service(settings: Settings, host: str, port: int) -> Service:
    """`finops serve` on the demo database: the API only (the scheduler would collect from real clouds)."""
    from finops.service import Service

    return Service(settings, host=host, port=port, scheduler=False)


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def show_urls(settings: Settings, base: str, key: str, week: date) -> None:
    xlsx = f"{base}/v1/reports/weekly?week={iso_week(week)}&format=xlsx"
    lines = [
        f"\n[bold]Serving {settings.db}[/bold] (finops serve, API only; Ctrl+C stops it)",
        f"  API docs:       {base}/docs   (Authorize with the key below)",
        f"  Weekly report:  {xlsx}",
        f"  Finance key:    {key}   (created for this demo; shown once)",
        f'  Download:       curl -H "Authorization: Bearer {key}" -o weekly.xlsx "{xlsx}"',
        f"  Notebooks:      FINOPS_API_URL={base} FINOPS_API_KEY={key} jupyter lab notebooks/",
        f"                  (with the service stopped, FINOPS_DB={settings.db} reads a read-only snapshot)\n",
    ]
    for line in lines:
        console.print(line, soft_wrap=True)  # no hard line breaks inside URLs and commands


def main(seed: int, db: Path | None, days: int, end: str | None, prometheus_days: int, no_serve: bool, host: str,
         port: int) -> None:
    """A realistic fleet fed through the real ingestion paths into a fresh DuckDB, then served."""
    try:
        end_day = parse_date(end, "--end") if end else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--end") from None
    cfg = DemoConfig(db=db or DEFAULT_DB, seed=seed, days=days, end=end_day, prometheus_days=prometheus_days)
    settings = load_settings(db=cfg.db)
    if not no_serve and not port_free(host, port):
        console.print(f"[red]{host}:{port} is in use: pass --port (or --no-serve)[/red]")
        raise typer.Exit(1)
    console.print(f"Demo database: [bold]{cfg.db}[/bold] (built fresh; files in {cfg.files_dir}/)")
    try:
        result = run_demo(cfg, settings, say=lambda m: console.print(f"  {m}", soft_wrap=True))
    except DemoFailed as exc:
        console.print(f"[red]demo failed: {exc}[/red]")
        raise typer.Exit(1) from None
    show_summary(result)
    console.print(f"Built in {result.seconds:.1f} s; summary in {cfg.files_dir / 'summary.json'}")
    if not result.summary.matches:
        console.print("[red]The control total differs from the generated bill.[/red]")
        raise typer.Exit(1)
    if no_serve:
        return
    key = demo_key(settings)
    show_urls(settings, f"http://{host}:{port}", key, last_full_week(result.fleet.end))
    service(settings, host, port).run()
