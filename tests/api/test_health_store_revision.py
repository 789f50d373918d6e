"""Readiness knows the store's schema: a store taken back with `signalwise db downgrade` under a running server
makes `/health/ready` and `/health` answer 503 `unavailable`, naming both revisions and what to do, while the routes
reading what the revisions differ in fail; `db upgrade` makes it ready again. A store a newer release upgraded (the
first new replica of a rolling deploy) is a warning: 200 `degraded`, so the old replicas stay in the pool. A probe
never migrates a store (an engine the process has not opened yet is opened without migrating).
`db downgrade` on PostgreSQL warns of the other sessions on the database (the server's among them). A real app
(TestClient) on real SQLite and PostgreSQL stores; the commands run as `signalwise` runs them."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from support.cli import signalwise

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.engine import (
    create_store_engine,
    current_revision,
    dispose_engines,
    downgrade,
    head_revision,
    upgrade,
)
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


def test_a_store_a_newer_release_upgraded_keeps_readiness_with_a_warning(served):
    """A rolling deploy: the first new replica migrates the store; the old ones keep serving it and stay ready."""
    client, key, url = served
    engine, head = get_engine(url), head_revision()
    assert client.get("/health/ready").status_code == 200  # this server's engine is open, as a running one's is
    newer = f"{int(head) + 1:04d}"
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": newer})
    try:
        for path in ("/health/ready", "/health"):
            r = client.get(path)
            assert r.status_code == 200 and r.json()["status"] == "degraded", (path, r.text)
            check = r.json()["checks"]["database"]
            assert (check["state"], check["schema_revision"], check["release_revision"]) == \
                ("newer-schema", newer, head), check
            said = f"the store is at schema revision {newer}, newer than this release's {head}"
            assert check["message"].startswith(said) and said in r.json()["message"], r.text
            assert "this server goes on serving it" in check["message"], check
            assert client.head(path).status_code == 200
        assert client.get("/api/v1/keys", headers={"X-API-Key": key}).status_code == 200  # it does serve
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


def test_a_probe_never_migrates_a_store_this_process_has_not_opened(db_url, tmp_path):
    """No engine cached (the database was away when the server started): the first probe of an older store answers
    503 naming it, and leaves it at its revision; a newer release's store is a 503 too (the routes, which open it
    as the probe would, cannot); a new, empty database is made at this release's revision and is ready."""
    head = head_revision()
    engine = get_engine(db_url)
    downgrade(engine, OLD)
    dispose_engines(db_url)
    app = create_app(Settings(database_url=db_url, cache_ttl_s=0))  # reads open on loopback
    with TestClient(app) as client:
        for _ in range(2):
            r = client.get("/health/ready")
            assert r.status_code == 503 and r.json()["status"] == "unavailable", r.text
            check = r.json()["checks"]["database"]
            assert (check["state"], check["release_revision"]) == ("revision-mismatch", head), check
            assert f"is at {OLD}, this release needs {head}" in check["error"], check
            assert "signalwise db upgrade" in r.json()["message"], r.text
        assert current_revision(probe := create_store_engine(db_url)) == OLD  # not upgraded by the probes
        probe.dispose()

        newer = f"{int(head) + 1:04d}"
        upgrade(probe := create_store_engine(db_url))
        with probe.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": newer})
        probe.dispose()
        dispose_engines(db_url)
        r = client.get("/health/ready")
        assert r.status_code == 503 and r.json()["checks"]["database"]["state"] == "revision-mismatch", r.text
        assert f"at revision {newer}, which this release does not know" in r.json()["message"], r.text
        assert client.get("/api/v1/system/info").status_code == 503  # what readiness guards


def test_the_first_probe_of_a_new_database_makes_it_and_is_ready(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    app = create_app(Settings(database_url=url, cache_ttl_s=0))
    with TestClient(app) as client:
        r = client.get("/health/ready")
        assert r.status_code == 200 and r.json()["status"] == "ok", r.text
        assert r.json()["checks"]["database"]["schema_revision"] == head_revision()
    dispose_engines(url)
