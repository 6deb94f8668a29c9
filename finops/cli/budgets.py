"""`finops budgets list|set|delete`: budgets in the store, or through the running service that owns it."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer

from finops.cli.common import ServiceOwnsStore, console, err, now, opened, settings, through_service

app = typer.Typer(rich_markup_mode=None, no_args_is_help=True,
                  help="Budgets: an amount per month or quarter over the cost of a team, project, environment or "
                       "model (see `finops report budgets`).")


# Budget fields -> the option that sets them (for error messages).
OPTIONS = {"name": "NAME", "actual_thresholds": "--actual", "forecast_thresholds": "--forecast",
           "max_cost_per_1k_generated_tokens": "--max-cost-per-1k", "filters": "--team/--project/--environment/--model-id"}


def _decimal(text: str, param: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{text!r} is not a number", param_hint=param) from None


@app.command("list")
def list_cmd() -> None:
    """List budgets: name, filter, period, amount and thresholds."""
    from finops.store.budgets import list_budgets

    s = settings()
    try:
        with opened(s, via_service=True) as store:
            found: list[dict[str, Any]] = [b.model_dump(mode="json") for b in list_budgets(store)]
    except ServiceOwnsStore as svc:
        found = through_service(svc, lambda c: c.list_budgets())
    from rich.table import Table

    table = Table("name", "filter", "period", "amount", "actual at %", "forecast at %", "max cost per 1k")
    for b in found:
        table.add_row(b["name"], ", ".join(f"{k}={v}" for k, v in b["filters"].items()) or "(all spend)", b["period"],
                      f"{b['amount']} {b['currency']}", ", ".join(map(str, b["actual_thresholds"])),
                      ", ".join(map(str, b["forecast_thresholds"])), str(b["max_cost_per_1k_generated_tokens"] or ""))
    console.print(table)


@app.command("set")
def set_cmd(
    name: Annotated[str, typer.Argument(help="the budget's name (created, or replaced if it exists)")],
    amount: Annotated[str, typer.Option(help="the amount per period, e.g. 12000")],
    period: Annotated[str, typer.Option(help="month or quarter")] = "month",
    currency: Annotated[str, typer.Option(help="ISO 4217 code")] = "USD",
    project: Annotated[str | None, typer.Option(help="only this project's cost")] = None,
    team: Annotated[str | None, typer.Option(help="only this team's cost")] = None,
    environment: Annotated[str | None, typer.Option(help="only this environment's cost")] = None,
    model_id: Annotated[str | None, typer.Option(help="only this model's cost")] = None,
    actual: Annotated[list[str] | None, typer.Option(help="alert at this % of the amount spent (repeatable; "
                                                          "default 80 and 100)")] = None,
    forecast: Annotated[list[str] | None, typer.Option(help="alert when the forecast reaches this % (repeatable; "
                                                            "default 100)")] = None,
    max_cost_per_1k: Annotated[str | None, typer.Option(help="ceiling on cost per 1k generated tokens")] = None,
) -> None:
    """Create or replace a budget."""
    from pydantic import ValidationError

    from finops.store.budgets import BudgetCreate, save_budget
    from finops.tags import TagRules

    s = settings()
    rules = TagRules.from_settings(s)
    filters = {}
    for dim, raw in (("project", project), ("team", team), ("environment", environment), ("model_id", model_id)):
        if raw is not None:
            value = rules.value(raw)
            if value is None:
                raise typer.BadParameter(f"{raw!r} means a missing tag; filter on a value", param_hint=f"--{dim}")
            filters[dim] = value
    body: dict[str, Any] = {"name": name, "filters": filters, "period": period, "currency": currency.upper(),
                            "amount": _decimal(amount, "--amount")}
    if actual:
        body["actual_thresholds"] = [_decimal(a, "--actual") for a in actual]
    if forecast:
        body["forecast_thresholds"] = [_decimal(f, "--forecast") for f in forecast]
    if max_cost_per_1k is not None:
        body["max_cost_per_1k_generated_tokens"] = _decimal(max_cost_per_1k, "--max-cost-per-1k")
    try:
        spec = BudgetCreate.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = str(first["loc"][0]) if first["loc"] else "name"
        raise typer.BadParameter(first["msg"], param_hint=OPTIONS.get(field, f"--{field.replace('_', '-')}")) from None
    try:
        with opened(s, via_service=True) as store:
            save_budget(store, name, spec, now())
    except ServiceOwnsStore as svc:
        through_service(svc, lambda c: c.put_budget(name, spec.model_dump(mode="json", exclude={"name"})))
    err.print(f"budget {name!r}: {spec.amount} {spec.currency} per {spec.period}")


@app.command("delete")
def delete_cmd(name: Annotated[str, typer.Argument(help="the budget's name")]) -> None:
    """Delete a budget."""
    from finops.store.budgets import delete_budget

    s = settings()
    try:
        with opened(s, via_service=True) as store:
            done = delete_budget(store, name, now())
    except ServiceOwnsStore as svc:
        through_service(svc, lambda c: c.delete_budget(name))
        done = True
    if not done:
        err.print(f"[red]no budget {name!r}[/red]")
        raise typer.Exit(1)
    err.print(f"deleted budget {name!r}")
