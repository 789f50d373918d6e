"""A key is verified by reading it: a database that takes no writes (PostgreSQL in read-only transactions, a SQLite
file opened `mode=ro`) still verifies keys. Recording the key's last use is best effort: its refusal is logged once
and not tried again on every check; a database that takes writes records it."""

import logging
from urllib.parse import quote

import pytest
from sqlalchemy import event, select

from signalwise.store.engine import create_store_engine
from signalwise.store.keys import ApiKeyError, create_key, revoke_key, verify_key
from signalwise.store.tables import ApiKey


def read_only_url(url: str) -> str:
    """The same database, opened so that it takes no writes."""
    if url.startswith("sqlite:///"):
        return f"sqlite:///file:{url.removeprefix('sqlite:///')}?mode=ro&uri=true"
    return url + quote(" -cdefault_transaction_read_only=on")  # the test URL ends with options=-csearch_path...


def _last_used(engine, key_id: str):
    t = ApiKey.__table__
    with engine.connect() as conn:
        return conn.execute(select(t.c.last_used_at).where(t.c.id == key_id)).scalar_one()


def test_a_read_only_database_verifies_keys_and_tries_recording_their_use_once(engine, db_url, caplog):
    caplog.set_level(logging.WARNING, logger="signalwise.store.keys")
    ops, ops_key = create_key(engine, "ops", ["read", "operate"])
    viewer, viewer_key = create_key(engine, "viewer", ["read"])
    gone, gone_key = create_key(engine, "leaver", ["read"])
    revoke_key(engine, "leaver")
    read_only = create_store_engine(read_only_url(db_url))
    updates: list[str] = []

    @event.listens_for(read_only, "before_cursor_execute")
    def _seen(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ARG001
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(statement)

    try:
        # it was a 500 (PostgreSQL: cannot execute UPDATE in a read-only transaction) or an OperationalError
        # (SQLite: attempt to write a readonly database) raised out of the check
        assert verify_key(read_only, ops_key).name == "ops"
        assert verify_key(read_only, viewer_key).scopes == ("read",)
        assert verify_key(read_only, ops_key).id == ops.id
        # the database still says no where it says no
        with pytest.raises(ApiKeyError, match="revoked"):
            verify_key(read_only, gone_key)
        with pytest.raises(ApiKeyError, match="unknown or wrong"):
            verify_key(read_only, ops_key[:-4] + "AAAA")
    finally:
        read_only.dispose()
    assert len(updates) == 1, updates  # tried once, not on each check
    assert _last_used(engine, ops.id) is None and _last_used(engine, viewer.id) is None
    said = [r.getMessage() for r in caplog.records if "last_used_at" in r.getMessage()]
    assert len(said) == 1, said
    assert "is not recorded in" in said[0] and "keys are still verified" in said[0]
    assert ("read-only transaction" in said[0]) if db_url.startswith("postgresql") else ("readonly" in said[0])
    assert ops_key.split("_", 2)[2] not in said[0]

    # a database that takes writes records the use
    assert verify_key(engine, ops_key).name == "ops"
    assert _last_used(engine, ops.id) is not None


def test_a_busy_database_is_not_taken_for_a_read_only_one(tmp_path):
    """Only a database that refuses writes stops the recording for a while: a write that met a lock (SQLite's
    'database is locked') is one use unrecorded, not a read-only store."""
    import sqlite3

    from signalwise.store.keys import _refuses_writes

    path = tmp_path / "k.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    with pytest.raises(sqlite3.OperationalError) as locked:
        sqlite3.connect(path, timeout=0).execute("INSERT INTO t VALUES (1)")
    holder.execute("COMMIT")
    with pytest.raises(sqlite3.OperationalError) as read_only:
        sqlite3.connect(f"file:{path}?mode=ro", uri=True).execute("INSERT INTO t VALUES (1)")
    assert "locked" in str(locked.value) and not _refuses_writes(locked.value)
    assert _refuses_writes(read_only.value), str(read_only.value)


def test_a_locked_sqlite_store_holds_a_key_check_a_second_at_most_and_once_a_minute(tmp_path):
    """A writer holding the SQLite file (a live run's writer, an ingest) made each check of a key wait out the 30 s
    busy timeout to record its use, request after request. The write now waits a second at most, and is not
    tried again for that key within the minute; the check itself only reads."""
    import sqlite3
    import time

    url = f"sqlite:///{tmp_path / 'keys.db'}"
    engine = create_store_engine(url)
    from signalwise.store import upgrade

    upgrade(engine)
    info, key = create_key(engine, "ops", ["read"])
    holder = sqlite3.connect(tmp_path / "keys.db", isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held
    try:
        took = []
        for _ in range(3):
            t0 = time.monotonic()
            assert verify_key(engine, key).id == info.id
            took.append(time.monotonic() - t0)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert took[0] < 10 and max(took[1:]) < 0.5, took  # the first waited its second; the others did not write
    with engine.connect() as conn:  # the pooled connection waits as the store's own engine does again
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    assert _last_used(engine, info.id) is None
    engine.dispose()
