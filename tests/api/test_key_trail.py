"""Key management leaves a trail and keeps its own rules: names records give a meaning to are refused, who
created and who revoked each key is stored and listed, each creation and revocation is one log line, and a key
that expires cannot create one that outlives it. A real app (TestClient) on a real SQLite store."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from support.migrated_databases import migrated_sqlite
from typer.testing import CliRunner

from signalwise.api import create_app
from signalwise.cli import app as cli
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key, list_keys
from signalwise.store.model_registry import default_actor
from signalwise.store.tables import ApiKey

RESERVED = ["restart", "local", "insecure", "runtime", "unknown", "cli", "Restart", " LOCAL ", "cli:alice",
            "import:/srv/models"]


def _serve(tmp_path):
    """(client, engine, url, the admin key's record and key) on a server that wants a key for every call."""
    url = migrated_sqlite(tmp_path / "keys.db")
    engine = get_engine(url)
    info, key = create_key(engine, "root-admin", ["admin"])
    with TestClient(create_app(Settings(database_url=url, cache_ttl_s=0, bind_host="0.0.0.0"))) as client:
        yield client, engine, url, info, key


@pytest.fixture
def served(tmp_path):
    """A server and store of the test's own."""
    yield from _serve(tmp_path)


@pytest.fixture(scope="module")
def refusing_served(tmp_path_factory):
    """One server and store for the refused names below: none of them may add a key."""
    yield from _serve(tmp_path_factory.mktemp("refused"))


def _post_key(client, admin_key: str, **body):
    return client.post("/api/v1/keys", json=body, headers={"X-API-Key": admin_key})


@pytest.mark.parametrize("name", RESERVED)
def test_a_reserved_name_is_refused_over_the_api_with_the_reason(refusing_served, name):
    client, engine, _, _, admin = refusing_served
    r = _post_key(client, admin, name=name, scopes=["operate"])
    assert r.status_code == 422, r.text
    assert f"the name {name.strip()!r} is reserved: change logs and readers use it for" in r.json()["message"]
    assert [k.name for k in list_keys(engine)] == ["root-admin"]


@pytest.mark.parametrize("name", ["restart", "insecure", "cli:bob"])
def test_a_reserved_name_is_refused_by_keys_create(tmp_path, name):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = CliRunner().invoke(cli, ["keys", "create", "--name", name, "--scope", "read", "--db", url])
    assert result.exit_code == 2, result.output
    assert f"error: the name {name!r} is reserved" in result.output
    assert list_keys(get_engine(url)) == []


def test_who_created_and_who_revoked_each_key_is_stored_and_listed(served):
    client, engine, url, admin_info, admin = served
    h = {"X-API-Key": admin}
    made = _post_key(client, admin, name="city-read", scopes=["read"]).json()
    assert made["created_by"] == "root-admin" and made["created_by_key_id"] == admin_info.id
    assert made["revoked_by"] is None and made["name_reserved"] is False
    # over a token of the admin key too: the token names its key
    token = client.post("/api/v1/auth/token", headers=h).json()["access_token"]
    r = client.post("/api/v1/keys", json={"name": "ops", "scopes": ["operate"]},
                    headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201 and r.json()["created_by_key_id"] == admin_info.id
    revoked = client.delete("/api/v1/keys/city-read", headers=h).json()
    assert [(k["name"], k["revoked_by"], k["revoked_by_key_id"]) for k in revoked] == [
        ("city-read", "root-admin", admin_info.id)]
    listed = {k["name"]: k for k in client.get("/api/v1/keys", headers=h).json()}
    assert (listed["city-read"]["created_by"], listed["city-read"]["revoked_by"]) == ("root-admin", "root-admin")
    assert listed["city-read"]["state"] == "revoked" and listed["city-read"]["revoked_at"] is not None
    assert listed["root-admin"]["created_by"] is None  # made by the library call, which names nobody

    # the command line records itself as cli:<user>, and `keys list` shows both
    actor = default_actor()
    assert CliRunner().invoke(cli, ["keys", "create", "--name", "night", "--scope", "read", "--db", url]).exit_code == 0
    assert CliRunner().invoke(cli, ["keys", "revoke", "ops", "--db", url]).exit_code == 0
    by_name = {k.name: k for k in list_keys(engine)}
    assert by_name["night"].created_by == actor and by_name["night"].created_by_key_id is None
    assert by_name["ops"].revoked_by == actor and by_name["ops"].created_by == "root-admin"
    listing = CliRunner(env={"COLUMNS": "250"}).invoke(cli, ["keys", "list", "--db", url])
    assert listing.exit_code == 0, listing.output
    assert "created by" in listing.output and f"root-admin (sw_{admin_info.id})" in listing.output
    assert f"by {actor}" in listing.output and f"by root-admin (sw_{admin_info.id})" in listing.output


def test_each_key_created_or_revoked_is_one_log_line_with_name_and_scopes_never_the_key(served, caplog):
    client, _, _, admin_info, admin = served
    with caplog.at_level(logging.WARNING, logger="signalwise.api.keys"):
        key = _post_key(client, admin, name="feeds", scopes=["ingest", "read"]).json()["key"]
        client.delete("/api/v1/keys/feeds", headers={"X-API-Key": admin})
    lines = [r.getMessage() for r in caplog.records if r.name == "signalwise.api.keys"]
    assert len(lines) == 2, lines
    created, revoked = lines
    assert "'feeds' created by 'root-admin'" in created and "scopes ingest read" in created
    assert f"(sw_{admin_info.id})" in created and "never expires" in created
    assert "'feeds' revoked by 'root-admin'" in revoked and "scopes ingest read" in revoked
    secret = key.split("_", 2)[2]
    assert all(secret not in line for line in lines)


def test_a_key_expiring_in_an_hour_cannot_create_a_key_that_outlives_it(served):
    client, engine, _, _, admin = served
    hour = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    lent = _post_key(client, admin, name="contractor", scopes=["admin"], expires_at=hour.isoformat())
    assert lent.status_code == 201, lent.text
    contractor = lent.json()["key"]

    forever = _post_key(client, contractor, name="contractor-forever", scopes=["admin", "operate"])
    assert forever.status_code == 422, forever.text
    assert "key 'contractor' expires at" in forever.json()["message"]
    assert "not a key that never expires" in forever.json()["message"]
    later = _post_key(client, contractor, name="contractor-later", scopes=["read"],
                      expires_at=(hour + dt.timedelta(days=1)).isoformat())
    assert later.status_code == 422 and "must expire by then too" in later.json()["message"]
    # its token is held to the same rule
    token = client.post("/api/v1/auth/token", headers={"X-API-Key": contractor}).json()["access_token"]
    r = client.post("/api/v1/keys", json={"name": "via-token", "scopes": ["read"]},
                    headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 422 and "key 'contractor' expires at" in r.json()["message"]
    assert {k.name for k in list_keys(engine)} == {"root-admin", "contractor"}

    sooner = _post_key(client, contractor, name="helper", scopes=["read"],
                       expires_at=(hour - dt.timedelta(minutes=5)).isoformat())
    assert sooner.status_code == 201 and sooner.json()["created_by"] == "contractor"
    # an admin key that never expires creates keys of any lifetime
    assert _post_key(client, admin, name="permanent", scopes=["read"]).status_code == 201


def test_a_key_stored_with_a_reserved_name_works_and_is_flagged(served):
    """A key named `restart` stored before such names were refused keeps working (revoking it would cut its
    clients off unannounced); `GET /api/v1/keys` and `keys list` flag it."""
    client, engine, url, _, admin = served
    info, old = create_key(engine, "was-restart", ["read"])
    with engine.begin() as conn:  # as a store written before names were checked holds it
        conn.execute(update(ApiKey.__table__).where(ApiKey.__table__.c.id == info.id).values(name="restart"))
    assert client.get("/api/v1/analytics/speeds", headers={"X-API-Key": old}).status_code == 200
    listed = {k["name"]: k for k in client.get("/api/v1/keys", headers={"X-API-Key": admin}).json()}
    assert listed["restart"]["name_reserved"] is True and listed["root-admin"]["name_reserved"] is False
    listing = CliRunner().invoke(cli, ["keys", "list", "--db", url])
    assert listing.exit_code == 0, listing.output
    assert f"warning: key {info.id} is named 'restart', which change logs and readers use for" in listing.output
    assert f"signalwise keys revoke {info.id}" in listing.output
