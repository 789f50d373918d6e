"""`signalwise keys create | list | revoke`: API keys, stored hashed; the key is printed once."""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated

import typer

from .cli_engine import DB_HELP, writes_or_exit

keys_app = typer.Typer(help="API keys: create (printed once), list, revoke. Rotate: create the new, then revoke the old.",
                       no_args_is_help=True)

DbOption = Annotated[str | None, typer.Option("--db", help=DB_HELP)]


def _engine(db: str | None, existing: bool = False):
    from .cli_engine import engine_or_exit

    return engine_or_exit(db, existing)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


@keys_app.command("create")
def create(name: Annotated[str, typer.Option(help="who or what uses the key (shown as 'who' in change logs)")],
           scope: Annotated[list[str], typer.Option(
               "--scope", "--scopes",
               help="read | ingest | operate | admin | evidence (repeatable, or comma-separated: --scopes read,operate)")],
           expires_days: Annotated[float | None, typer.Option(help="days until the key expires (default: never)")] = None,
           db: DbOption = None) -> None:
    """Create a key and print it (it is stored hashed: this is the only time it is shown)."""
    from .keys import ApiKeyError, check_scopes, create_key

    scope = [s.strip() for given in scope for s in given.split(",") if s.strip()]
    try:
        check_scopes(scope)
    except ApiKeyError as exc:
        _fail(str(exc))
    expires = None
    if expires_days is not None:
        if not 0 < expires_days < math.inf:  # NaN fails this too
            _fail("--expires-days must be a positive number")
        try:
            expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_days)
        except OverflowError:
            _fail(f"--expires-days {expires_days:g} reaches past the year 9999; leave it out for a key that never "
                  "expires")
    engine = _engine(db)
    try:
        with writes_or_exit(engine, "cannot store the key"):
            info, key = create_key(engine, name, scope, expires)
    except ApiKeyError as exc:
        _fail(str(exc))
    typer.echo(key)
    typer.secho(f"key {info.id} '{info.name}', scopes {' '.join(info.scopes)}"
                + (f", expires {info.expires_at:%Y-%m-%d %H:%M} UTC" if info.expires_at else "")
                + ": send it as X-API-Key, or exchange it at POST /api/v1/auth/token", err=True)


@keys_app.command("list")
def list_(db: DbOption = None) -> None:
    """Every key: id, name, scopes, state, dates (never the keys themselves)."""
    from rich.table import Table

    from ..consoles import table_console
    from .keys import list_keys

    keys = list_keys(_engine(db, existing=True))
    if not keys:
        typer.echo("no API keys yet: signalwise keys create --name NAME --scope read")
        return
    t = Table("id", "name", "scopes", "state", "created", "expires", "last used")
    for k in keys:
        t.add_row(k.id, k.name, " ".join(k.scopes), k.state(), f"{k.created_at:%Y-%m-%d %H:%M}",
                  f"{k.expires_at:%Y-%m-%d %H:%M}" if k.expires_at else "never",
                  f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "-")
    table_console().print(t)


@keys_app.command("revoke")
def revoke(id_or_name: Annotated[str, typer.Argument(help="the key's id, or a name (every active key of that name)")],
           db: DbOption = None) -> None:
    """Revoke a key at once; requests with it get 401 from then on."""
    from .keys import ApiKeyError, revoke_key

    engine = _engine(db, existing=True)
    try:
        with writes_or_exit(engine, "cannot revoke"):
            done = revoke_key(engine, id_or_name)
    except ApiKeyError as exc:
        _fail(str(exc))
    for k in done:
        typer.echo(f"revoked {k.id} '{k.name}'")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
