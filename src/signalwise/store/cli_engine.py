"""The store for a command line: a database that cannot be opened is one line and exit 1, never a traceback.

Every command that takes `--db` opens it here, so a bad URL, a refused login or
an unwritable SQLite file reads the same everywhere (`exitcodes`: the command
ran and could not reach its database, so 1, not 2). Commands that store a
run's results open the database before they simulate, not after.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer

from ..exitcodes import FAILED

T = TypeVar("T")

#: every command's `--db` help: one spelling of where the default database is
DB_HELP = "database URL (default: SIGNALWISE_DATABASE_URL, else sqlite:///signalwise.db in the working directory)"


def first_line(exc: BaseException) -> str:
    """The driver's own first line (SQLAlchemy appends a background link and the SQL after it)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def open_or_exit(open_store: Callable[[], T], what: str = "cannot open database") -> T:
    """`open_store()`, or `error: WHAT: <the driver's first line>` and exit 1."""
    try:
        return open_store()
    except Exception as exc:  # noqa: BLE001 - any failure to connect, log in, create or migrate: one line
        typer.secho(f"error: {what}: {first_line(exc)}", fg="red", err=True)
        raise typer.Exit(FAILED) from None


def engine_or_exit(db: str | None):
    """The migrated engine of `db` (None: SIGNALWISE_DATABASE_URL, else the embedded SQLite file)."""
    from .engine import get_engine

    return open_or_exit(lambda: get_engine(db))
