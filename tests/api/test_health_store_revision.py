"""Readiness knows the store's schema: a store taken back with `signalwise db downgrade` under a running server (or
upgraded by a newer release) makes `/health/ready` and `/health` answer 503 `unavailable`, naming both revisions
and what to do, while the routes reading what the revisions differ in fail; `db upgrade` makes it ready again.
`db downgrade` on PostgreSQL warns of the other sessions on the database (the server's among them). A real app
(TestClient) on real SQLite and PostgreSQL stores; the commands run as `signalwise` runs them."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from support.cli import signalwise

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.engine import current_revision, head_revision
from signalwise.store.keys import create_key

#: the revision the release before the key trail (0017) left: its stores lack `api_keys.created_by`
OLD = "0016"


@pytest.fixture
def served(db_url):
    """(client, admin key, url): a server on a store of the test's own, wanting a key for every call."""
    _info, key = create_key(get_engine(db_url), "root-admin", ["admin"])
    app = create_app(Settings(database_url=db_url, cache_ttl_s=0, bind_host="0.0.0.0"))
    with TestClient(app, raise_server_exceptions=False) as client:  # a 500 is answered, as a server does
        yield client, key, db_url


def test_a_store_downgraded_under_the_server_fails_readiness_naming_both_revisions(served, tmp_path):
    client, key, url = served
    head = head_revision()
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ok", ready.text
    assert ready.json()["checks"]["database"]["schema_revision"] == head
    assert client.get("/api/v1/keys", headers={"X-API-Key": key}).status_code == 200

    done = signalwise("db", "downgrade", OLD, "--yes", "--db", url, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == f"schema {head} -> {OLD}\n", done.stderr
    assert client.get("/api/v1/keys", headers={"X-API-Key": key}).status_code >= 500  # what readiness guards

    for path in ("/health/ready", "/health"):
        r = client.get(path)
        assert r.status_code == 503, (path, r.text)
        answer = r.json()
        assert answer["status"] == "unavailable" and answer["database"] in ("sqlite", "postgresql"), answer
        check = answer["checks"]["database"]
        assert (check["state"], check["schema_revision"], check["release_revision"]) == \
            ("revision-mismatch", OLD, head), check
        message = answer["message"]
        assert f"the store is at schema revision {OLD}, this release's is {head}" in message, message
        assert "signalwise db upgrade" in message and "restart this server" in message, message
        assert f"the release whose revision is {OLD}" in message, message
        assert client.head(path).status_code == 503  # load balancers probe with HEAD
    assert client.get("/health/live").status_code == 200  # a restart would upgrade the store unasked

    upgraded = signalwise("db", "upgrade", "--db", url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ok", ready.text


def test_a_store_a_newer_release_upgraded_fails_readiness_naming_that_release(served):
    client, _key, url = served
    engine, head = get_engine(url), head_revision()
    newer = f"{int(head) + 1:04d}"
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": newer})
    try:
        r = client.get("/health/ready")
        assert r.status_code == 503 and r.json()["status"] == "unavailable", r.text
        assert f"the store is at schema revision {newer}, newer than this release's {head}" in r.json()["message"]
        assert f"signalwise db downgrade {head}" in r.json()["message"]
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    assert current_revision(engine) == head and client.get("/health/ready").status_code == 200


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_downgrade_on_postgresql_warns_of_the_other_sessions_on_the_database(served, tmp_path):
    client, _key, url = served
    assert client.get("/health/ready").status_code == 200  # the server's engine holds a connection in its pool
    with get_engine(url).connect() as conn:  # one of the server's own sessions
        pids = {conn.execute(text("SELECT pg_backend_pid()")).scalar_one()}
    for args in (("--dry-run",), (), ("--yes",)):
        p = signalwise("db", "downgrade", OLD, *args, "--db", url, cwd=tmp_path)
        assert p.returncode == (2 if not args else 0), p.stderr
        warning = next(line for line in p.stderr.splitlines() if line.startswith("warning: "))
        assert "other session(s) are connected to database" in warning, p.stderr
        assert any(f"pid {pid} " in warning for pid in pids) or "more. A signalwise server" in warning, warning
        assert "stop every server on the store first" in warning
    assert current_revision(get_engine(url)) == OLD


def test_downgrade_on_sqlite_says_nothing_of_sessions(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    get_engine(url)
    p = signalwise("db", "downgrade", OLD, "--yes", "--db", url, cwd=tmp_path)
    assert p.returncode == 0 and "session" not in p.stderr, p.stderr
