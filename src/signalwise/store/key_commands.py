"""`signalwise keys create | list | revoke`: API keys, stored hashed; the key is printed once.

Keys live in a database, and a server checks them in its own (its --db, else SIGNALWISE_DATABASE_URL, else
signalwise.db in its working directory): these commands say which database they used, and repeat its --db in
their hints, since a key made in another is refused as unknown."""

from __future__ import annotations

import datetime as dt
import math
import os
import shlex
from typing import Annotated

import typer

from ..listening import is_loopback
from .cli_engine import DB_HELP, writes_or_exit

keys_app = typer.Typer(help="API keys: create (printed once), list, revoke. Rotate: create the new, then revoke the old.",
                       no_args_is_help=True)

DbOption = Annotated[str | None, typer.Option("--db", help=DB_HELP)]


def _engine(db: str | None, existing: bool = False):
    from .cli_engine import engine_or_exit

    return engine_or_exit(db, existing)


#: the variable a server and these commands read the database URL from when no --db is given
DATABASE_URL_ENV = "SIGNALWISE_DATABASE_URL"


def given_db(db: str | None) -> str | None:
    """The URL a `--db` option named, or None when the settings' database is meant (no --db; `live --db
    default`)."""
    return None if db in (None, "", "default") else db


def key_database(db: str | None) -> tuple[str, str]:
    """(the database URL keys are stored in and checked against, where that URL came from).

    A server checks keys in its own database, the one of its `--db`, else SIGNALWISE_DATABASE_URL, else
    sqlite:///signalwise.db in its working directory; a key made in another is "unknown" to it. Saying which,
    at every `keys` command and at start-up, is what lets an operator see the two differ."""
    if given_db(db) is not None:
        return db, "--db"
    from .settings import Settings

    url = Settings().database_url
    return url, (DATABASE_URL_ENV if os.environ.get(DATABASE_URL_ENV) else "the default database")


def masked_url(url: str) -> str:
    """A database URL to print: its secrets as *** (`core.redaction.shown_url`)."""
    from sqlalchemy.engine import make_url

    from ..core.redaction import shown_url

    try:
        make_url(url)
    except Exception:  # noqa: BLE001 - unparsable: opening it says what is wrong; never echo what may hold a password
        return "(the database URL given)"
    return shown_url(url)


def shown_url(url: str) -> str:
    """`masked_url`, and a relative SQLite file's full path beside it: `sqlite:///signalwise.db` is another
    file in every working directory."""
    from pathlib import Path

    shown, name = masked_url(url), _sqlite_file(url)
    if name is not None and not Path(name).is_absolute():
        shown += f" = {Path(name).resolve()}"
    return shown


def _sqlite_file(url: str) -> str | None:
    """The file a SQLite URL names, as written (None for another database, memory or a URI)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - not a URL: no file
        return None
    name = parsed.database or ""
    if not parsed.drivername.startswith("sqlite") or name in ("", ":memory:") or name.startswith("file:"):
        return None
    return name


def create_command(db: str | None, scopes: str = "--scope read", name: str = "NAME") -> str:
    """The `keys create` command that stores a key where a server started with `db` (its `--db`, None without)
    checks keys: the `--db` repeated (shell-quoted, its password masked), or the variable it depends on."""
    return f"signalwise keys create --name {name} {scopes}" + _on_database(db)


def _on_database(db: str | None) -> str:
    """What a `keys` command suggested to a user adds to act on the database `db` names: its `--db` (shell-quoted,
    its password masked), or the variable it depends on; nothing for the default database."""
    url, source = key_database(db)
    if source == "--db":
        from sqlalchemy.engine import make_url

        suffix = f" --db {shlex.quote(masked_url(url))}"
        try:
            if make_url(url).password:
                suffix += " (*** stands for the password, as in that --db)"
        except Exception:  # noqa: BLE001 - an unparsable URL is refused when opened
            pass
        return suffix
    if source == DATABASE_URL_ENV:
        return f" (with {DATABASE_URL_ENV} set as here)"
    return ""


def count_active_keys(url: str) -> int:
    """Active keys in the database at `url`; 0 for a SQLite file that is not there (not created to count)."""
    from .cli_engine import missing_sqlite_file
    from .engine import get_engine
    from .keys import list_keys

    if missing_sqlite_file(url) is not None:
        return 0
    return sum(k.state() == "active" for k in list_keys(get_engine(url)))


def _actor() -> str:
    """Who a `keys` command records as creating or revoking a key: `cli:<user>`, as the model registry does."""
    from .model_registry import default_actor

    return default_actor()


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
            info, key = create_key(engine, name, scope, expires, created_by=_actor())
    except ApiKeyError as exc:
        _fail(str(exc))
    typer.echo(key)
    url, source = key_database(db)
    typer.secho(f"key {info.id} '{info.name}', scopes {' '.join(info.scopes)}"
                + (f", expires {info.expires_at:%Y-%m-%d %H:%M} UTC" if info.expires_at else "")
                + ": send it as X-API-Key, or exchange it at POST /api/v1/auth/token", err=True)
    # a server checks keys in its own database only: a key stored elsewhere is "unknown" to it
    typer.secho(f"stored in {shown_url(url)} ({source}): only a server using this database accepts it "
                f"({_server_hint(db)})", err=True)


@keys_app.command("list")
def list_(db: DbOption = None) -> None:
    """Every key: id, name, scopes, state, dates, who created and revoked it (never the keys themselves)."""
    from rich.table import Table

    from ..consoles import table_console
    from .keys import list_keys

    keys = list_keys(_engine(db, existing=True))
    if not keys:
        url, source = key_database(db)
        typer.echo(f"no API keys in {shown_url(url)} ({source}) yet: {create_command(db)}")
        return
    t = Table("id", "name", "scopes", "state", "created", "created by", "expires", "last used", "revoked")
    for k in keys:
        t.add_row(k.id, k.name, " ".join(k.scopes), k.state(), f"{k.created_at:%Y-%m-%d %H:%M}", _by(k.created_by,
                  k.created_by_key_id), f"{k.expires_at:%Y-%m-%d %H:%M}" if k.expires_at else "never",
                  f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "-",
                  f"{k.revoked_at:%Y-%m-%d %H:%M} by {_by(k.revoked_by, k.revoked_by_key_id)}" if k.revoked_at else "-")
    table_console().print(t)
    for k in keys:
        if k.name_reserved and k.state() == "active":
            typer.secho(reserved_name_warning(k, db), fg="yellow", err=True)


def _by(name: str | None, key_id: str | None) -> str:
    """Who created or revoked a key, as listed: `admin (sw_<id>)`, `cli:ops`; `?` when nobody recorded it."""
    if name is None:
        return "?"
    return f"{name} (sw_{key_id})" if key_id else name


def reserved_name_warning(k, db: str | None = None) -> str:  # noqa: ANN001 - a KeyInfo
    """The warning for an active key whose name records give a meaning to (stored before such names were
    refused): it keeps working, since revoking it would cut its clients off unannounced. The revoke command
    it suggests acts on the database `keys list` read (`db`, its --db)."""
    from .keys import RESERVED_NAMES, reserved_meaning

    meaning = reserved_meaning(k.name)
    # a reserved name's meaning completes "use for"; a reserved prefix's says what names of that form are
    used = (f"use for {meaning}" if meaning in RESERVED_NAMES.values() else
            f"read as one of their own ({meaning})")
    command, _, note = f"signalwise keys revoke {k.id}{_on_database(db)}".partition(" (")
    return (f"warning: key {k.id} is named {ascii(k.name)}, which change logs and readers {used}: what the key "
            f"does cannot be told from that. It works; create a key under another name, move its clients to it, "
            f"then `{command}`" + (f" ({note}" if note else ""))


@keys_app.command("revoke")
def revoke(id_or_name: Annotated[str, typer.Argument(help="the key's id, or a name (every active key of that name)")],
           db: DbOption = None) -> None:
    """Revoke a key at once; requests with it get 401 from then on."""
    from .keys import ApiKeyError, revoke_key

    engine = _engine(db, existing=True)
    try:
        with writes_or_exit(engine, "cannot revoke"):
            done = revoke_key(engine, id_or_name, revoked_by=_actor())
    except ApiKeyError as exc:
        _fail(str(exc))
    for k in done:
        typer.echo(f"revoked {k.id} '{k.name}'")


def _server_hint(db: str | None) -> str:
    """How a server is started on the database a `keys` command used."""
    url, source = key_database(db)
    if source == "--db":
        return f"signalwise serve / live --db {shlex.quote(masked_url(url))}"
    if source == DATABASE_URL_ENV:
        return f"started with {DATABASE_URL_ENV} set as here, or with --db and that URL"
    return "started without --db, nor SIGNALWISE_DATABASE_URL, in this directory"


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


#: at most, how long a start-up waits to count the keys of a database that does not answer
KEY_COUNT_WAIT_S = 5.0


def key_store_lines(settings, db: str | None) -> list[tuple[str, bool]]:
    """What a server says at start-up about its keys: (line, is a warning), for `signalwise serve` and `live`.

    One line names the database keys are checked in (its password masked) and how many active keys it holds;
    with none, a warning says what that server will refuse (the rule of `authorize`, for its listening address)
    and the command that creates a key there. A key made in another database is refused as unknown, and the
    401 cannot name the database to a caller who is not authenticated: this line is where the operator sees it.
    `db`: the command's own --db (None without). A database that cannot be read now is said, never fatal."""
    import threading

    _, source = key_database(db)  # where the URL came from
    url = settings.database_url  # the URL the app checks keys in
    where = f"API keys: checked in {shown_url(url)} ({source})"
    counted: list = []

    def count() -> None:
        try:
            counted.append(count_active_keys(url))
        except Exception as exc:  # noqa: BLE001 - away, refused, locked: said in one line
            counted.append(exc)

    worker = threading.Thread(target=count, name="signalwise-key-count", daemon=True)
    worker.start()
    worker.join(KEY_COUNT_WAIT_S)
    if not counted:
        return [(f"{where}, which did not answer within {KEY_COUNT_WAIT_S:g} s: calls with a key wait for it", True)]
    if isinstance(counted[0], Exception):
        first = (str(counted[0]).strip().splitlines() or [type(counted[0]).__name__])[0]
        return [(f"{where}, which cannot be read now: {first}", True)]
    active = counted[0]
    if settings.insecure_no_auth:
        return [(f"{where}: {active} active (none needed: --insecure-no-auth opens every route)", False)]
    lines = [(f"{where}: {active} active", False)]
    if active == 0:
        if settings.open_reads_on_loopback and is_loopback(settings.bind_host):
            refused = (f"on {settings.bind_host} (loopback) `read` routes are open without a key, but every other "
                       "/api/v1 call (ingest, operate, admin, evidence) is refused with 401 and no token can be had")
        else:
            refused = (f"on {settings.bind_host} every /api/v1 call is refused with 401 (only /health, /metrics, "
                       "the docs and the dashboard's page are open)")
        lines.append((f"warning: no active API key in that database: {refused}; create one there: "
                      f"{create_command(db, '--scope operate --scope read', 'ops')}", True))
    return lines
