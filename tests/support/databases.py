"""Isolated databases for tests: a fresh SQLite file, or a PostgreSQL schema of its own.

Used by the project's tests (and usable by anyone testing against the
store). The PostgreSQL server is `SIGNALWISE_TEST_POSTGRES_URL`, by default
the local one at 127.0.0.1:5432, database `test`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from signalwise.store.engine import dispose_engines

POSTGRES_URL = os.environ.get("SIGNALWISE_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@lru_cache(maxsize=1)
def postgres_unavailable_reason() -> str | None:
    """None when the test PostgreSQL answers, else why it does not (for pytest.skip)."""
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL at {POSTGRES_URL} not reachable: {first}"


#: the back-ends a store test runs on, as `pytest.fixture(params=...)`: PostgreSQL's cases are marked `postgres`
DATABASE_KINDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def database_kind(request) -> str:
    """The back-end of a `DATABASE_KINDS` fixture's case; skips, with the reason, a PostgreSQL one not reachable."""
    if request.param == "postgresql" and (reason := postgres_unavailable_reason()):
        pytest.skip(reason)
    return request.param


@contextmanager
def isolated_database(kind: str, directory: Path) -> Iterator[str]:
    """Yield the URL of an empty database of `kind` ('sqlite' or 'postgresql'); removed afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{directory / 'store.db'}"
        try:
            yield url
        finally:
            dispose_engines(url)
        return
    schema = f"sw_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    try:
        yield url
    finally:
        dispose_engines(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def redis_unavailable_reason() -> str | None:
    """None when the Redis at 127.0.0.1:6379 answers a connection, else why not (for pytest.skip)."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return None
    except OSError as exc:
        return f"Redis on 127.0.0.1:6379 is not reachable ({exc})"
