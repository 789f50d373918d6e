"""Revision 0017 (who created and who revoked each key) upgrades a store at 0016 that holds keys: they keep
working, nobody is made up as their creator, and the new trail is written from then on; down again, the keys
stay. SQLite always, PostgreSQL when 127.0.0.1:5432 answers (the `db_url` fixture)."""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import inspect, text

from signalwise.store import create_store_engine, current_revision, upgrade
from signalwise.store.engine import downgrade
from signalwise.store.keys import create_key, list_keys, revoke_key, verify_key

#: a key as 0016's `api_keys` holds it (id, name, scopes, the key); the secret's digest is computed below
OLD_KEYS = [("0a0a0a0a0a", "ops", "read operate", "sw_0a0a0a0a0a_" + "o" * 43),
            ("0b0b0b0b0b", "restart", "operate", "sw_0b0b0b0b0b_" + "r" * 43)]


def _store_at_0016_with_keys(url: str):
    engine = create_store_engine(url)
    upgrade(engine, "0016")
    created = dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC)
    with engine.begin() as conn:
        for key_id, name, scopes, key in OLD_KEYS:
            conn.execute(text("INSERT INTO api_keys (id, name, scopes, secret_sha256, created_at) "
                              "VALUES (:id, :name, :scopes, :digest, :created)"),
                         {"id": key_id, "name": name, "scopes": scopes, "created": created,
                          "digest": hashlib.sha256(key.encode()).hexdigest()})
    return engine


def test_a_store_at_0016_with_keys_upgrades_and_its_keys_keep_working(db_url):
    engine = _store_at_0016_with_keys(db_url)
    assert "created_by" not in {c["name"] for c in inspect(engine).get_columns("api_keys")}
    upgrade(engine, "0017")
    assert current_revision(engine) == "0017"
    columns = {c["name"] for c in inspect(engine).get_columns("api_keys")}
    assert {"created_by", "created_by_key_id", "revoked_by", "revoked_by_key_id"} <= columns

    ops, named_restart = (verify_key(engine, key) for *_, key in OLD_KEYS)
    assert (ops.name, ops.scopes, ops.created_by, ops.revoked_by) == ("ops", ("read", "operate"), None, None)
    assert named_restart.name_reserved and not ops.name_reserved  # kept, and flagged where keys are listed

    _, new = create_key(engine, "night-shift", ["read"], created_by="ops", creator_key_id=ops.id)
    revoke_key(engine, "restart", revoked_by="cli:alice")
    by_name = {k.name: k for k in list_keys(engine)}
    assert (by_name["night-shift"].created_by, by_name["night-shift"].created_by_key_id) == ("ops", ops.id)
    assert by_name["restart"].revoked_by == "cli:alice" and by_name["restart"].state() == "revoked"

    downgrade(engine, "0016")
    assert "revoked_by" not in {c["name"] for c in inspect(engine).get_columns("api_keys")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM api_keys")).scalar_one() == 3
    engine.dispose()
