"""A token carries no more than its key holds when it is used, and a guessable JWT secret is warned of at start.

The reviewer's case: a reader's token re-signed with a guessable secret (`a` × 32) and its `scopes` changed to
`admin` listed every key. Here the server takes such a token's claims only as far as its key holds them now, on
every call that needs more than `read` (those look the key up anyway): 403, naming what the key holds. A key
whose scopes are narrowed in the store narrows its tokens alike. A real uvicorn on 127.0.0.1 over SQLite."""

from __future__ import annotations

import datetime as dt
import logging
import secrets

import httpx
import jwt
from sqlalchemy import text
from support.loopback import serving
from support.migrated_databases import migrated_sqlite

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

GUESSABLE = "a" * 32


def _forged(token: str, scopes: list[str]) -> str:
    claims = jwt.decode(token, GUESSABLE, algorithms=["HS256"])
    return jwt.encode({**claims, "scopes": scopes}, GUESSABLE, algorithm="HS256")


def test_a_token_re_signed_with_more_scopes_gets_only_its_keys(tmp_path):
    db = migrated_sqlite(tmp_path / "api.db")
    _info, reader = create_key(get_engine(db), "reader", ["read"])
    app = create_app(Settings(database_url=db, jwt_secret=GUESSABLE))
    with serving(app) as base:
        token = httpx.post(f"{base}/api/v1/auth/token", headers={"X-API-Key": reader}).json()["access_token"]
        forged = _forged(token, ["admin", "read", "operate", "ingest"])
        listed = httpx.get(f"{base}/api/v1/keys", headers={"Authorization": f"Bearer {forged}"})
        assert listed.status_code == 403, listed.text
        assert "the key it was issued for holds read" in listed.json()["message"]
        cleared = httpx.post(f"{base}/api/v1/admin/clear-cache", headers={"Authorization": f"Bearer {forged}"})
        assert cleared.status_code == 403
        # its reads go on, as the key's own do
        assert httpx.get(f"{base}/api/v1/system/info", headers={"Authorization": f"Bearer {forged}"}).status_code == 200


def test_a_key_narrowed_in_the_store_narrows_its_tokens(tmp_path):
    db = migrated_sqlite(tmp_path / "api.db")
    engine = get_engine(db)
    info, key = create_key(engine, "ops-admin", ["admin", "read"])
    app = create_app(Settings(database_url=db, jwt_secret=secrets.token_hex(32)))
    with serving(app) as base:
        token = httpx.post(f"{base}/api/v1/auth/token", headers={"X-API-Key": key}).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.post(f"{base}/api/v1/admin/clear-cache", headers=bearer).status_code == 200
        with engine.begin() as conn:
            conn.execute(text("UPDATE api_keys SET scopes = 'read' WHERE id = :id"), {"id": info.id})
        narrowed = httpx.post(f"{base}/api/v1/admin/clear-cache", headers=bearer)
        assert narrowed.status_code == 403, narrowed.text
        assert "lacks scope 'admin'" in narrowed.json()["message"]


def test_a_guessable_jwt_secret_is_warned_of_at_start(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="signalwise.api")
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    create_app(Settings(database_url=db, jwt_secret=secrets.token_hex(16)))
    assert not [r for r in caplog.records if "guessable" in r.getMessage()]
    for weak, why in ((GUESSABLE, "it repeats 1 character(s) 32 times"),
                      ("0123456789abcdef" * 2, "it repeats 16 character(s) 2 times"),
                      ("abababababababababababababababXY", "it has 4 distinct characters")):
        caplog.clear()
        create_app(Settings(database_url=db, jwt_secret=weak))
        said = [r.getMessage() for r in caplog.records if "guessable" in r.getMessage()]
        assert len(said) == 1 and said[0].startswith(f"SIGNALWISE_JWT_SECRET is guessable ({why})"), said
        assert weak not in said[0]


def test_random_secrets_pass_the_floor():
    from signalwise.store.settings import weak_secret_reason

    assert all(weak_secret_reason(secrets.token_hex(16)) is None for _ in range(2000))
    assert all(weak_secret_reason(secrets.token_urlsafe(32)) is None for _ in range(2000))
    assert weak_secret_reason(dt.datetime(2026, 1, 1).isoformat() * 2) is not None
