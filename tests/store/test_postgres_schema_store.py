"""A store in a PostgreSQL schema of its own, named on the database URL (`?options=-csearch_path%3D<schema>`), as
docs/store.md tells a city that shares one database: every table, the migrations' own (`alembic_version`)
included, lands in that schema and none in `public`; two such stores in one database hold their own keys; and the
migrations run there, down and up again, with the command an administrator types. Against the PostgreSQL on
127.0.0.1:5432 (skipped when it does not answer); each schema is made for the test and dropped after it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from support.databases import POSTGRES_URL, postgres_unavailable_reason

from signalwise.store import get_engine
from signalwise.store.engine import dispose_engines
from signalwise.store.keys import create_key, list_keys
from signalwise.store.tables import Base

pytestmark = pytest.mark.postgres


@pytest.fixture
def schemas():
    """A function making a uniquely named schema, returning the store URL that names it; all dropped after."""
    if reason := postgres_unavailable_reason():
        pytest.skip(reason)
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    made: list[tuple[str, str]] = []

    def make() -> str:
        schema = f"sw_schema_doc_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        # the form docs/store.md gives: libpq's options, the `=` written %3D
        url = f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
        made.append((schema, url))
        return url

    yield make
    for schema, url in made:
        dispose_engines(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _tables(schema: str) -> set[str]:
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.connect() as conn:
            return set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema})
                       .scalars())
    finally:
        admin.dispose()


def _schema(url: str) -> str:
    return url.rsplit("%3D", 1)[1]


def test_a_store_made_in_its_own_schema_puts_no_table_in_public(schemas):
    first, second = schemas(), schemas()
    store_tables = set(Base.metadata.tables) | {"alembic_version"}
    public_before = _tables("public")  # the shared database may hold a store of its own there: left as it was
    for url in (first, second):
        engine = get_engine(url)  # as any command's first use: the store made, at the newest revision
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_schema()")).scalar_one() == _schema(url)
        assert _tables(_schema(url)) == store_tables
    assert _tables("public") == public_before, _tables("public") - public_before
    create_key(get_engine(first), "ops", ["read"])  # two stores in one database: each its own keys
    assert [k.name for k in list_keys(get_engine(first))] == ["ops"] and list_keys(get_engine(second)) == []


@pytest.mark.slow
def test_the_migrations_run_down_and_up_inside_the_schema(schemas):
    url = schemas()
    signalwise = str(Path(sys.executable).with_name("signalwise"))

    def db(*args: str) -> str:
        done = subprocess.run([signalwise, "db", *args, "--db", url], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    public_before = _tables("public")  # the shared database may hold a store of its own there: left as it was
    assert "schema empty -> " in db("upgrade")
    assert "-> 0001" in db("downgrade", "0001", "--yes")
    assert _tables(_schema(url)) < set(Base.metadata.tables) | {"alembic_version"}
    said = db("upgrade")
    assert "schema 0001 -> " in said, said
    assert _tables(_schema(url)) == set(Base.metadata.tables) | {"alembic_version"}
    assert _tables("public") == public_before
    assert db("current").startswith(said.strip().rsplit(" ", 1)[1])
