"""A key creates only keys whose scopes it holds itself: `admin` does not hold `evidence`, so an admin key (or a
token of it) cannot make an `evidence` key, for itself or another; a key holding `admin` and `evidence` can, and
so can the command line. A name that reads as a reserved one (an invisible character, a look-alike letter) is
refused, and one stored before is flagged. A real app (TestClient) on a real SQLite store."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from support.migrated_databases import migrated_sqlite
from typer.testing import CliRunner

from signalwise.api import create_app
from signalwise.cli import app as cli
from signalwise.store import Settings, get_engine
from signalwise.store.keys import (
    ApiKeyError,
    ScopeNotHeld,
    check_name,
    create_key,
    list_keys,
    reserved_meaning,
)
from signalwise.store.tables import ApiKey


def _serve(tmp_path):
    """(client, engine, url, {name: (record, key)}) for an admin-only key and an admin+evidence key, on a server
    that wants a key for every call."""
    url = migrated_sqlite(tmp_path / "grants.db")
    engine = get_engine(url)
    keys = {"root-admin": create_key(engine, "root-admin", ["admin"]),
            "dpo": create_key(engine, "dpo", ["admin", "evidence"])}
    with TestClient(create_app(Settings(database_url=url, cache_ttl_s=0, bind_host="0.0.0.0"))) as client:
        yield client, engine, url, keys


@pytest.fixture
def served(tmp_path):
    """A server and store of the test's own."""
    yield from _serve(tmp_path)


@pytest.fixture(scope="module")
def names_served(tmp_path_factory):
    """One server and store for the name checks below: each adds only keys of names no other one uses, and a
    refused name is checked by the keys being the same after it as before."""
    yield from _serve(tmp_path_factory.mktemp("names"))


def _key_names(engine) -> list[str]:
    return sorted(k.name for k in list_keys(engine))


def _post_key(client, headers: dict, **body):
    return client.post("/api/v1/keys", json=body, headers=headers)


def test_an_admin_key_and_its_token_cannot_grant_evidence_to_any_key(served):
    client, engine, _, keys = served
    admin = {"X-API-Key": keys["root-admin"][1]}
    assert client.get("/api/v1/evidence/violations/1", headers=admin).status_code == 403
    token = client.post("/api/v1/auth/token", headers=admin).json()["access_token"]
    for headers in (admin, {"Authorization": f"Bearer {token}"}):
        for scopes in (["evidence"], ["admin", "evidence"], ["read", "evidence"]):
            r = _post_key(client, headers, name="self-evidence", scopes=scopes)
            assert r.status_code == 403, r.text
            message = r.json()["message"]
            assert "key 'root-admin' cannot grant evidence: a key creates only keys whose scopes it holds" in message
            assert "signalwise keys create" in message
    assert sorted(k.name for k in list_keys(engine)) == ["dpo", "root-admin"]
    # the scopes it holds it still grants
    assert _post_key(client, admin, name="ops", scopes=["admin", "operate"]).status_code == 201


def test_a_key_holding_admin_and_evidence_creates_an_evidence_key_that_reads_evidence(served):
    client, engine, _, keys = served
    dpo_info, dpo = keys["dpo"]
    r = _post_key(client, {"X-API-Key": dpo}, name="court", scopes=["evidence"])
    assert r.status_code == 201, r.text
    assert (r.json()["scopes"], r.json()["created_by"], r.json()["created_by_key_id"]) == (
        ["evidence"], "dpo", dpo_info.id)
    # it passes auth on the evidence route (no violation stored: 404, not 403)
    assert client.get("/api/v1/evidence/violations/1", headers={"X-API-Key": r.json()["key"]}).status_code == 404


def test_the_command_line_creates_an_evidence_key(served):
    _, engine, url, _ = served
    result = CliRunner().invoke(cli, ["keys", "create", "--name", "court", "--scope", "evidence", "--db", url])
    assert result.exit_code == 0, result.output
    assert {k.name: k.scopes for k in list_keys(engine)}["court"] == ("evidence",)


def test_the_store_refuses_a_grant_the_creating_key_does_not_hold(served):
    """`create_key` checks the creator's own row in the transaction that inserts, whoever calls it."""
    _, engine, _, keys = served
    with pytest.raises(ScopeNotHeld, match="key 'root-admin' cannot grant evidence"):
        create_key(engine, "by-library", ["evidence"], created_by="root-admin",
                   creator_key_id=keys["root-admin"][0].id)
    info, _ = create_key(engine, "by-dpo", ["evidence", "read"], created_by="dpo", creator_key_id=keys["dpo"][0].id)
    assert info.scopes == ("evidence", "read")


#: names that read as a reserved one, each with what the refusal says
READS_AS = {
    "restart\u200b": "a key's name has no control characters nor invisible ones (U+200B at 7)",  # zero-width space
    "r\u0435start": "the name 'r\\u0435start' reads as the reserved 'restart'",  # Cyrillic е
    "re\u0455tart": "the name 're\\u0455tart' reads as the reserved 'restart'",  # Cyrillic ѕ
    "\uff52\uff45\uff53\uff54\uff41\uff52\uff54": "reads as the reserved 'restart'",  # full-width (NFKC)
    "\u0441li:alice": "reads as the reserved 'cli:'",  # Cyrillic с
    "loc\u0430l": "reads as the reserved 'local'",  # Cyrillic а
}


@pytest.mark.parametrize("name", list(READS_AS))
def test_a_name_that_reads_as_a_reserved_one_is_refused(names_served, name):
    client, engine, url, keys = names_served
    before = _key_names(engine)
    r = _post_key(client, {"X-API-Key": keys["root-admin"][1]}, name=name, scopes=["operate"])
    assert r.status_code == 422, r.text
    assert READS_AS[name] in r.json()["message"]
    result = CliRunner().invoke(cli, ["keys", "create", "--name", name, "--scope", "read", "--db", url])
    assert result.exit_code == 2, result.output
    assert _key_names(engine) == before


@pytest.mark.parametrize("name", ["Z\u00fcrich", "ops\u2013night", "\u0440\u0443\u0441"])
def test_a_name_outside_ascii_letters_digits_and_a_few_marks_is_refused(names_served, name):
    """Any other character could pass for one of these in a listing: `ops–night` (an en dash) is not `ops-night`."""
    client, engine, _, keys = names_served
    before = _key_names(engine)
    r = _post_key(client, {"X-API-Key": keys["root-admin"][1]}, name=name, scopes=["read"])
    assert r.status_code == 422, r.text
    assert "a key's name is made of ASCII letters, digits, spaces and - _ . @ : (not" in r.json()["message"]
    assert _key_names(engine) == before


@pytest.mark.parametrize("name", ["ops", "night-shift", "city_read.v2", "ops@city.example", "team:ops", "Night Ops 2"])
def test_plain_names_are_taken(names_served, name):
    client, _, _, keys = names_served
    r = _post_key(client, {"X-API-Key": keys["root-admin"][1]}, name=name, scopes=["read"])
    assert r.status_code == 201, r.text
    assert r.json()["name"] == name and r.json()["name_reserved"] is False


@pytest.mark.parametrize("stored", ["restart\u200b", "r\u0435start", "\uff4c\uff4f\uff43\uff41\uff4c"])
def test_a_key_stored_with_a_look_alike_of_a_reserved_name_works_and_is_flagged(names_served, stored):
    client, engine, url, keys = names_served
    info, old = create_key(engine, "was-look-alike", ["read"])
    with engine.begin() as conn:  # as a store written before such names were refused holds it
        conn.execute(update(ApiKey.__table__).where(ApiKey.__table__.c.id == info.id).values(name=stored))
    assert client.get("/api/v1/analytics/speeds", headers={"X-API-Key": old}).status_code == 200
    listed = {k["id"]: k for k in client.get("/api/v1/keys", headers={"X-API-Key": keys["root-admin"][1]}).json()}
    assert listed[info.id]["name_reserved"] is True
    assert listed[keys["dpo"][0].id]["name_reserved"] is False
    listing = CliRunner().invoke(cli, ["keys", "list", "--db", url])
    assert f"warning: key {info.id} is named" in listing.output


def test_a_name_in_another_script_is_not_taken_for_a_reserved_one():
    """Only a name keeping some of a reserved name's own letters reads as it: a stored name in another script
    of the same length is not flagged."""
    assert reserved_meaning("\u0440\u0443\u0441\u0441\u043a\u0438\u0439") is None  # русский, 7 letters
    assert reserved_meaning("r\u0435start") is not None
    with pytest.raises(ApiKeyError, match="is made of ASCII letters"):  # refused as a new name all the same
        check_name("\u0440\u0443\u0441\u0441\u043a\u0438\u0439")
