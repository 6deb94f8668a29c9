"""`finops keys create|list|revoke`: manage API keys in the database (while no server holds it).

While `finops serve` runs it owns the database file; manage keys through the API then
(`POST /v1/keys`, `GET /v1/keys`, `DELETE /v1/keys/{key_id}` with an admin key).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

import typer

from finops.cli.common import LazyConsole, ServiceOwnsStore, console, now, opened, settings, through_service

app = typer.Typer(rich_markup_mode=None, help="API keys (stored as hashes; a new key is shown once).", no_args_is_help=True)
err = LazyConsole(stderr=True)


@app.command("create")
def create_cmd(
    role: Annotated[str, typer.Option(help="viewer, finance or admin")],
    team: Annotated[str | None, typer.Option(help="restrict the key to one team's rows")] = None,
    name: Annotated[str | None, typer.Option(help="a label to recognise the key by")] = None,
) -> None:
    """Create a key. The key is printed alone on the last line; it cannot be shown again."""
    from finops.store.keys import ROLES, check_team, create_key
    from finops.tags import TagRules

    s = settings()
    if role not in ROLES:
        raise typer.BadParameter(f"{role!r} is not one of {', '.join(ROLES)}", param_hint="--role")
    if team is not None:
        normalised = TagRules.from_settings(s).value(team)
        if normalised is None:
            raise typer.BadParameter(f"{team!r} means a missing tag, not a team", param_hint="--team")
        team = normalised
    try:
        check_team(team, role)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).split(": ", 1)[1], param_hint="--team") from None
    try:
        with opened(s, via_service=True) as store:
            record, key = create_key(store, role, team, name, now())
        key_id, team = record.key_id, record.team
    except ServiceOwnsStore as svc:
        created = through_service(svc, lambda c: c.create_key(role, team, name))
        key_id, team, key = created["key_id"], created["team"], created["key"]
    scope = f", team {team}" if team else ""
    err.print(f"created key {key_id} (role {role}{scope}); store it now, it is not shown again:")
    typer.echo(key)


@app.command("list")
def list_cmd() -> None:
    """List keys (ids, roles, teams, last use); never the keys themselves."""
    from finops.store.keys import list_keys

    s = settings()
    try:
        with opened(s, via_service=True) as store:
            keys = [asdict(k) for k in list_keys(store)]
    except ServiceOwnsStore as svc:
        keys = through_service(svc, lambda c: c.list_keys())
    from rich.table import Column, Table

    table = Table("role", "team", "name", "created", "last used", "revoked")
    table.columns.insert(0, Column("key id", no_wrap=True))
    for k in keys:
        table.add_row(k["key_id"], k["role"], k["team"] or "", k["name"] or "", _when(k["created_at"]),
                      _when(k["last_used_at"]), _when(k["revoked_at"]))
    console.print(table)


def _when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    at = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return f"{at:%Y-%m-%d %H:%M}"


@app.command("revoke")
def revoke_cmd(key_id: Annotated[str, typer.Argument(help="the key id shown by `finops keys list`")]) -> None:
    """Revoke a key at once; requests with it answer 401 from then on."""
    from finops.store.keys import revoke_key

    s = settings()
    try:
        with opened(s, via_service=True) as store:
            done = revoke_key(store, key_id, now())
    except ServiceOwnsStore as svc:
        through_service(svc, lambda c: c.revoke_key(key_id))
        done = True
    if not done:
        err.print(f"[red]no active key with id {key_id!r}[/red]")
        raise typer.Exit(1)
    err.print(f"revoked {key_id}")
