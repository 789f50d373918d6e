"""Connection settings the store applies per database."""

import threading

from sqlalchemy import text
from sqlalchemy.pool import StaticPool
from support.databases import isolated_database

from signalwise.store.engine import create_store_engine

#: every pragma the engine sets on a SQLite connection, as SQLite reports it back
SQLITE_PRAGMAS = {
    "synchronous": 1,  # NORMAL
    "foreign_keys": 1,
    "busy_timeout": 30000,  # ms: the API and an ingest command share the file
    "temp_store": 2,  # MEMORY
    "cache_size": -65536,  # 64 MiB
    "mmap_size": 268435456,  # 256 MiB
}


def sqlite_pragmas(conn) -> dict:
    return {name: conn.execute(text(f"PRAGMA {name}")).scalar() for name in ["journal_mode", *SQLITE_PRAGMAS]}


def test_postgresql_sessions_run_without_jit_and_keep_the_url_options(engine):
    """JIT off (it cost 30 ms per analytics query); the URL's own options (here the test schema) still apply."""
    if engine.dialect.name != "postgresql":
        with engine.connect() as conn:  # SQLite: the pragmas the engine installs
            assert sqlite_pragmas(conn) == {"journal_mode": "wal", **SQLITE_PRAGMAS}
        return
    with engine.connect() as conn:
        assert conn.execute(text("SHOW jit")).scalar() == "off"
        schema = conn.execute(text("SELECT current_schema()")).scalar()
    assert schema.startswith("sw_test_"), schema


def test_every_new_sqlite_connection_gets_the_pragmas(tmp_path):
    with isolated_database("sqlite", tmp_path) as url:
        engine = create_store_engine(url)
        try:
            with engine.connect() as first, engine.connect() as second:  # two pooled connections at once
                assert first.connection.dbapi_connection is not second.connection.dbapi_connection
                for conn in (first, second):
                    assert sqlite_pragmas(conn) == {"journal_mode": "wal", **SQLITE_PRAGMAS}
        finally:
            engine.dispose()


def test_a_sqlite_connection_may_be_used_from_another_thread(tmp_path):
    """check_same_thread off: the API hands pooled connections to worker threads."""
    with isolated_database("sqlite", tmp_path) as url:
        engine = create_store_engine(url)
        try:
            with engine.connect() as conn:
                result, errors = [], []

                def use():
                    try:
                        result.append(conn.execute(text("SELECT 41 + 1")).scalar())
                    except Exception as exc:  # noqa: BLE001 - reported below
                        errors.append(exc)

                worker = threading.Thread(target=use)
                worker.start()
                worker.join(10)
            assert errors == [] and result == [42]
        finally:
            engine.dispose()


def test_in_memory_sqlite_shares_one_connection_and_skips_wal_but_gets_the_other_pragmas():
    engine = create_store_engine("sqlite://")
    try:
        assert isinstance(engine.pool, StaticPool)  # one database, not one per connection
        with engine.connect() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
            conn.commit()
            # an in-memory database is never memory-mapped: SQLite answers nothing for mmap_size
            assert sqlite_pragmas(conn) == {**SQLITE_PRAGMAS, "journal_mode": "memory", "mmap_size": None}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT x FROM t")).scalar() == 1
    finally:
        engine.dispose()
