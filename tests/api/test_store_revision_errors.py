"""A request that fails because the store is at another schema revision than this release's (taken back with
`downgrade` under a running server) answers 503 naming both revisions and what to do, as `/health/ready` does,
instead of PostgreSQL's 500 "internal error ... ProgrammingError" or SQLite's 503 "database unavailable: no such
column"; key checks say the same instead of "database unavailable". A database error of a store at this
release's revision is answered as before. A real app (TestClient) on real SQLite and PostgreSQL stores."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from signalwise.api import create_app
from signalwise.api.auth import issue_token
from signalwise.store import Settings, get_engine
from signalwise.store.engine import current_revision, downgrade, head_revision, upgrade
from signalwise.store.keys import create_key

#: the revision before the key trail (0017): its `api_keys` lacks `created_by`, its violations the provenance
OLD = "0016"
SECRET = "s" * 40


@pytest.fixture
def served(db_url):
    """(client, keys by name, url): a server wanting a key for every call; `root-admin` verified once before the
    test goes on (this server remembers it), `late` and `ops` never used."""
    engine = get_engine(db_url)
    keys = {name: create_key(engine, name, ["admin"]) for name in ("root-admin", "late", "ops")}
    app = create_app(Settings(database_url=db_url, cache_ttl_s=0, bind_host="0.0.0.0", jwt_secret=SECRET))
    with TestClient(app, raise_server_exceptions=False) as client:  # a 500 is answered, as a server does
        assert client.get("/api/v1/keys", headers={"X-API-Key": keys["root-admin"][1]}).status_code == 200
        yield client, keys, db_url


def _mismatch(head: str) -> str:
    return (f"the store is at schema revision {OLD}, this release's is {head} (downgraded since this server opened "
            f"it): routes reading what {head} has and {OLD} lacks fail; run signalwise db upgrade on it, then "
            f"restart this server, or serve it with the release whose revision is {OLD}")


def test_requests_failing_on_a_store_downgraded_under_the_server_name_the_revisions(served):
    client, keys, url = served
    head = head_revision()
    engine = get_engine(url)
    admin = {"X-API-Key": keys["root-admin"][1]}
    assert client.get("/api/v1/analytics/violations", headers=admin).status_code == 200

    downgrade(engine, OLD)
    assert current_revision(engine) == OLD
    mismatch = _mismatch(head)
    # the routes themselves: keys (api_keys.created_by), violations (their provenance columns)
    for path in ("/api/v1/keys", "/api/v1/analytics/violations"):
        r = client.get(path, headers=admin)
        assert r.status_code == 503, (path, r.text)
        assert r.json()["message"] == f"GET {path}: {mismatch}", r.text
        assert r.json()["detail"] == r.json()["message"]

    # a key this server never verified cannot be checked: the 503 says why
    r = client.get("/api/v1/keys", headers={"X-API-Key": keys["late"][1]})
    assert r.status_code == 503, r.text
    message = r.json()["message"]
    assert message.startswith(f"database unavailable: {mismatch}; API keys are checked in the database"), message
    assert message.endswith("so it cannot be checked until the store is at this release's schema revision"), message

    # a token whose key this server never checked, on a call that checks it (more than `read`)
    token, _exp = issue_token(keys["ops"][0], SECRET, 300)
    r = client.post("/api/v1/admin/clear-cache", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 503, r.text
    message = r.json()["message"]
    assert message.startswith(f"database unavailable: {mismatch}; this server has not verified the API key this "
                              "token was issued for ('ops')"), message
    assert message.endswith("so it cannot be checked until the store is at this release's schema revision"), message

    upgrade(engine)
    assert client.get("/api/v1/keys", headers={"X-API-Key": keys["late"][1]}).status_code == 200
    assert client.get("/api/v1/analytics/violations", headers=admin).status_code == 200


def test_keys_checked_from_memory_on_such_a_store_say_the_revision_not_an_outage(served, caplog):
    """The database answers: the header and the log name the store's revision, not "database unreachable"."""
    caplog.set_level(logging.WARNING, logger="signalwise.api.auth")
    client, keys, url = served
    admin = {"X-API-Key": keys["root-admin"][1]}
    token, _exp = issue_token(keys["root-admin"][0], SECRET, 300)
    downgrade(get_engine(url), OLD)
    for headers in (admin, {"Authorization": f"Bearer {token}"}):  # a key; a token's key, on a call checking it
        r = client.post("/api/v1/admin/clear-cache", headers=headers)
        assert r.status_code == 200, r.text
        assert r.headers["X-Auth-Checked"] == "memory; store at another schema revision", r.headers
    said = [r.getMessage() for r in caplog.records if "checked from this server's memory" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("store at another schema revision (the store is at schema "
                                                 f"revision {OLD}"), said
    assert not [m for m in (r.getMessage() for r in caplog.records) if "database unreachable" in m]
    upgrade(get_engine(url))
    r = client.post("/api/v1/admin/clear-cache", headers=admin)
    assert r.status_code == 200 and "X-Auth-Checked" not in r.headers, r.headers


def test_a_database_error_of_a_store_at_this_release_revision_is_answered_as_before(served):
    """A column gone without the revision changing (no mismatch to name): PostgreSQL's ProgrammingError stays a
    500 naming the route, SQLite's OperationalError a 503 with the database's reason."""
    client, keys, url = served
    engine = get_engine(url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE api_keys DROP COLUMN revoked_by"))
    assert current_revision(engine) == head_revision()
    r = client.get("/api/v1/keys", headers={"X-API-Key": keys["root-admin"][1]})
    if engine.dialect.name == "postgresql":
        assert r.status_code == 500, r.text
        assert r.json()["message"] == ("internal error in GET /api/v1/keys: ProgrammingError (see the server's "
                                       "log)"), r.text
    else:
        assert r.status_code == 503, r.text
        assert r.json()["message"].startswith("database unavailable: no such column"), r.text
    assert "schema revision" not in r.json()["message"]
