"""The `finops` command: typer commands that parse arguments and call the modules that do the work.

Each command lives in the module of its area; this one assembles them. Heavy modules are imported
inside the commands, so `finops --help` starts fast.
"""

from __future__ import annotations

import typer
import typer.core

from finops.cli.budgets import app as budgets_app
from finops.cli.data import collect_cmd, db_app, ingest_app
from finops.cli.demo import demo
from finops.cli.gateway import gateway
from finops.cli.keys import app as keys_app
from finops.cli.lake import app as lake_app
from finops.cli.mcp import mcp
from finops.cli.report import report_cmd
from finops.cli.serve import serve
from finops.simulate.cli import app as simulate_app


class _Group(typer.core.TyperGroup):
    """A command group whose unset `--help` flag reads False rather than None.

    typer coerces a None flag value through a pydantic adapter, importing pydantic (~70 ms) before
    every subcommand, `finops report --help` included; False is a bool and skips the coercion.
    """

    def get_help_option(self, ctx: typer.Context) -> typer.core.TyperOption | None:  # type: ignore[override]
        option = super().get_help_option(ctx)
        if option is not None:
            option.default = False
        return option


# Help is plain text (no rich_markup_mode): rendering it with rich would import rich's Markdown and
# more, doubling the start of every `--help`.
app = typer.Typer(cls=_Group, rich_markup_mode=None, help="FinOps for self-hosted LLM inference.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
app.add_typer(db_app, name="db", cls=_Group)
app.add_typer(ingest_app, name="ingest", cls=_Group)
app.command("collect")(collect_cmd)
app.command("report")(report_cmd)
app.command("demo")(demo)
app.command("serve")(serve)
app.command("gateway")(gateway)
app.command("mcp")(mcp)
app.add_typer(keys_app, name="keys", cls=_Group)
app.add_typer(budgets_app, name="budgets", cls=_Group)
app.add_typer(lake_app, name="export", cls=_Group)
app.add_typer(simulate_app, name="simulate", cls=_Group)
