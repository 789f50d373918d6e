"""The store for a command line: a database that cannot be opened is one line and exit 1, never a traceback.

Every command that takes `--db` opens it here, so a bad URL, a refused login or
an unwritable SQLite file reads the same everywhere (`exitcodes`: the command
ran and could not reach its database, so 1, not 2). Commands that store a
run's results open the database before they simulate, not after. A database
that opened but then refuses or loses a write (read-only, locked past the busy
timeout, the server gone) is one line and exit 1 too (`writes_or_exit`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import typer

from ..exitcodes import BAD_INPUT, FAILED

T = TypeVar("T")

#: every command's `--db` help: one spelling of where the default database is
DB_HELP = "database URL (default: SIGNALWISE_DATABASE_URL, else sqlite:///signalwise.db in the working directory)"


def first_line(exc: BaseException) -> str:
    """The driver's own first line (SQLAlchemy appends a background link and the SQL after it)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def open_or_exit(open_store: Callable[[], T], what: str = "cannot open database") -> T:
    """`open_store()`, or `error: WHAT: <the driver's first line>` and exit 1 (exit 2 for a URL that names no
    store signalwise can open)."""
    from .engine import DatabaseURLError, StoreNotAtHead

    try:
        return open_store()
    except DatabaseURLError as exc:  # a URL that names no store: bad input
        typer.secho(f"error: {what}: {exc}", fg="red", err=True)
        raise typer.Exit(BAD_INPUT) from None
    except StoreNotAtHead as exc:  # opened, and says itself what is wrong and what to run
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(FAILED) from None
    except Exception as exc:  # noqa: BLE001 - any failure to connect, log in, create or migrate: one line
        typer.secho(f"error: {what}: {first_line(exc)}", fg="red", err=True)
        raise typer.Exit(FAILED) from None


def settings_or_exit():
    """The settings (`SIGNALWISE_*`), or `error: SIGNALWISE_<NAME>: why` and exit 2: a bad variable is bad input.

    A value pydantic-settings cannot decode (a mapping or list variable that is not JSON) is a `SettingsError`
    naming the field, its reason in the JSON decoder's error: said the same way, never a traceback."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from .settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        name, *inside = [str(part) for part in err.get("loc", ())] or ["*"]
        where = ": ".join([f"SIGNALWISE_{name.upper()}", *inside])
        typer.secho(f"error: {where}: {err.get('msg', 'invalid')}", fg="red", err=True)
        raise typer.Exit(BAD_INPUT) from None
    except SettingsError as exc:
        field = re.search(r'field "([^"]+)"', str(exc))
        cause = exc.__cause__
        why = (f"not valid JSON ({first_line(cause)})" if isinstance(cause, json.JSONDecodeError)
               else first_line(cause or exc))
        where = f"SIGNALWISE_{field.group(1).upper()}" if field else "SIGNALWISE_*"
        typer.secho(f"error: {where}: {why}{_json_form(where, field and field.group(1))}", fg="red", err=True)
        raise typer.Exit(BAD_INPUT) from None


def _json_form(variable: str, name: str | None) -> str:
    """The form a JSON setting is written in, from its field's example (never the value given: it may be a
    secret): `; write it as JSON: SIGNALWISE_CORS_ORIGINS='["https://ops.city.example"]'`, or nothing."""
    from .settings import Settings

    field = Settings.model_fields.get(name or "")
    if field is None or not field.examples:
        return ""
    return f"; write it as JSON: {variable}='{json.dumps(field.examples[0])}'"


def engine_or_exit(db: str | None, existing: bool = False, migrate: bool = True):
    """The migrated engine of `db` (None: SIGNALWISE_DATABASE_URL, else the embedded SQLite file).

    `existing`: a command that only reads or removes refuses a SQLite file that is not there, rather than
    create an empty database to find nothing in (`keys list`, `db purge`). `migrate=False`: a command that
    changes nothing (a --dry-run) refuses a store not at this release's revision, rather than migrate it; a
    command that migrates a store holding data says so on stderr (`engine.get_engine`)."""
    from .engine import StoreNotAtHead, get_engine

    settings = settings_or_exit() if not db else None  # the URL is one of the settings
    if existing:
        missing = missing_sqlite_file(db or settings.database_url)
        if missing is not None:
            typer.secho(f"error: {missing}: no such database file (signalwise db upgrade --db ... creates one)",
                        fg="red", err=True)
            raise typer.Exit(FAILED)

    def open_store():
        try:
            return get_engine(db, migrate=migrate)
        except StoreNotAtHead as exc:
            if migrate:
                raise
            raise StoreNotAtHead(f"{exc} (a --dry-run changes nothing, the schema included)") from None

    return open_or_exit(open_store)


def missing_sqlite_file(db: str) -> Path | None:
    """The file a SQLite URL names when it is not there (None for another database, memory or a URI)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(db)
    except ArgumentError:  # not a URL at all: opening it says so, in the command's own words
        return None
    name = url.database or ""
    if not url.drivername.startswith("sqlite") or name in ("", ":memory:") or name.startswith("file:"):
        return None
    return None if Path(name).exists() else Path(name)


def database_errors(engine) -> tuple[type[BaseException], ...]:  # noqa: ANN001
    """What a database that refuses or loses a write raises: SQLAlchemy's errors, and the driver's own from the
    bulk writers' raw cursors (COPY, executemany)."""
    from sqlalchemy.exc import SQLAlchemyError

    return SQLAlchemyError, engine.dialect.loaded_dbapi.Error


@contextmanager
def writes_or_exit(engine, what: str) -> Iterator[None]:  # noqa: ANN001
    """Inside: a database error is `error: WHAT: <the driver's first line>` and exit 1 (the transaction
    rolled back)."""
    try:
        yield
    except database_errors(engine) as exc:
        typer.secho(f"error: {what}: {first_line(exc)}", fg="red", err=True)
        raise typer.Exit(FAILED) from None
