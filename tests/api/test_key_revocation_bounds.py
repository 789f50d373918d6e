"""A key revokes, over the API, only keys it could have created: keys whose every scope it holds, and that expire
no later than it does (one that never expires outlives one that does); itself always. Otherwise 403 naming why and
the command line, which revokes any key, and nothing is revoked. A real app (TestClient) on real SQLite and
PostgreSQL stores, with keys made as `signalwise keys create` makes them."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from support.cli import signalwise
from support.databases import DATABASE_KINDS, database_kind
from support.migrated_databases import migrated_database

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key, list_keys

IN_AN_HOUR = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)


@pytest.fixture(params=DATABASE_KINDS)
def served(request, tmp_path):
    """(client, engine, url, {name: key}): a permanent admin, an admin+evidence key, an evidence reader, a
    temporary admin lent for an hour and two keys of its reach or beyond it, on a server wanting a key always."""
    with migrated_database(database_kind(request), tmp_path) as url:
        engine = get_engine(url)
        keys = {name: create_key(engine, name, scopes, expires)[1] for name, scopes, expires in (
            ("root-admin", ["admin"], None),
            ("dpo", ["admin", "evidence"], None),
            ("ev-reader", ["evidence"], None),
            ("tmpadmin", ["admin"], IN_AN_HOUR),
            ("short-read", ["read"], IN_AN_HOUR - dt.timedelta(minutes=10)),
            ("later-read", ["read"], IN_AN_HOUR + dt.timedelta(days=1)),
        )}
        with TestClient(create_app(Settings(database_url=url, cache_ttl_s=0, bind_host="0.0.0.0"))) as client:
            yield client, engine, url, keys


def _states(engine) -> dict[str, str]:
    return {k.name: k.state() for k in list_keys(engine)}


def _revoke(client, key: str, target: str):
    return client.delete(f"/api/v1/keys/{target}", headers={"X-API-Key": key})


def test_a_temporary_admin_key_cannot_revoke_a_key_that_outlives_it_nor_can_its_token(served):
    client, engine, _, keys = served
    before = _states(engine)
    token = client.post("/api/v1/auth/token", headers={"X-API-Key": keys["tmpadmin"]}).json()["access_token"]
    root_id = next(k.id for k in list_keys(engine) if k.name == "root-admin")
    for headers in ({"X-API-Key": keys["tmpadmin"]}, {"Authorization": f"Bearer {token}"}):
        for target in ("root-admin", root_id, "later-read"):
            r = client.delete(f"/api/v1/keys/{target}", headers=headers)
            assert r.status_code == 403, r.text
            message = r.json()["message"]
            assert message.startswith("key 'tmpadmin' cannot revoke key "), message
            assert "so it outlives 'tmpadmin', which expires at" in message
            assert "signalwise keys revoke" in message and "command line" in message
        assert "it never expires" in client.delete("/api/v1/keys/root-admin", headers=headers).json()["message"]
    assert _states(engine) == before  # nothing revoked
    assert client.get("/api/v1/keys", headers={"X-API-Key": keys["root-admin"]}).status_code == 200


def test_an_admin_key_without_evidence_cannot_revoke_an_evidence_key(served):
    client, engine, _, keys = served
    for target in ("ev-reader", "dpo"):
        r = _revoke(client, keys["root-admin"], target)
        assert r.status_code == 403, r.text
        assert f"key 'root-admin' cannot revoke key '{target}'" in r.json()["message"]
        assert "it holds evidence, which 'root-admin' does not" in r.json()["message"]
    assert _states(engine)["ev-reader"] == _states(engine)["dpo"] == "active"
    r = _revoke(client, keys["dpo"], "ev-reader")  # admin and evidence: may
    assert r.status_code == 200 and [k["name"] for k in r.json()] == ["ev-reader"], r.text
    assert r.json()[0]["revoked_by"] == "dpo"


def test_a_key_revokes_what_it_could_have_created_and_itself(served):
    client, engine, _, keys = served
    r = _revoke(client, keys["tmpadmin"], "short-read")  # its scopes, expiring before it
    assert r.status_code == 200 and r.json()[0]["state"] == "revoked", r.text
    r = _revoke(client, keys["root-admin"], "tmpadmin")  # a permanent key outlives every expiring one
    assert r.status_code == 200 and r.json()[0]["revoked_by"] == "root-admin", r.text


def test_a_temporary_key_may_revoke_itself(served):
    client, engine, _, keys = served
    r = _revoke(client, keys["tmpadmin"], "tmpadmin")
    assert r.status_code == 200 and r.json()[0]["revoked_by"] == "tmpadmin", r.text
    assert client.get("/api/v1/keys", headers={"X-API-Key": keys["tmpadmin"]}).status_code == 401


def test_the_command_line_revokes_what_a_key_may_not(served):
    client, engine, url, keys = served
    assert _revoke(client, keys["tmpadmin"], "root-admin").status_code == 403
    done = signalwise("keys", "revoke", "root-admin", "--db", url)
    assert done.returncode == 0, done.stderr
    assert _states(engine)["root-admin"] == "revoked"
    assert client.get("/api/v1/keys", headers={"X-API-Key": keys["root-admin"]}).status_code == 401
