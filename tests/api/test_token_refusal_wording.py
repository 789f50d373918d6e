"""A bearer that is no token this server could have issued is refused with a plain reason, its decoder's words
(codecs, byte positions) kept for the log at DEBUG; a request sending both `Authorization: Bearer` and
`X-API-Key` is served under the token, and a refusal then says the key was not read. A real app (TestClient)
on a real SQLite store, real keys and tokens from POST /api/v1/auth/token."""

from __future__ import annotations

import base64
import logging

import pytest
from fastapi.testclient import TestClient
from support.migrated_databases import migrated_sqlite

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

SECRET = "s" * 40


@pytest.fixture
def served(tmp_path):
    url = migrated_sqlite(tmp_path / "db.sqlite")
    engine = get_engine(url)
    keys = {name: create_key(engine, name, scopes)[1] for name, scopes in (("boss", ["admin"]), ("wall", ["read"]))}
    app = create_app(Settings(database_url=url, bind_host="0.0.0.0", jwt_secret=SECRET))
    with TestClient(app) as client:
        yield client, keys


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("bearer", [
    "abc.def.ghi",  # base64 of bytes that are no UTF-8
    "abc",  # one segment
    f"{_b64(b'not json')}.{_b64(b'{}')}.sig",  # a header that is no JSON
    "%%%.%%%.%%%",  # no base64
])
def test_a_malformed_bearer_is_refused_plainly_and_its_decoder_error_is_logged_at_debug(served, caplog, bearer):
    client, _keys = served
    with caplog.at_level(logging.DEBUG, logger="signalwise.api.auth"):
        r = client.get("/api/v1/analytics/speeds", headers={"Authorization": f"Bearer {bearer}"})
    assert r.status_code == 401, r.text
    assert r.json()["message"] == "invalid token: not a token this server issued (malformed)", r.text
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    debug = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.DEBUG
             and rec.name == "signalwise.api.auth" and rec.getMessage().startswith("invalid token: ")]
    assert debug and all("not a token this server issued" not in m for m in debug), caplog.text
    if bearer == "abc.def.ghi":
        assert "codec can't decode" in debug[0] and "codec" not in r.text, debug


def test_a_token_signed_with_another_secret_still_says_so(served):
    client, keys = served
    token = client.post("/api/v1/auth/token", headers={"X-API-Key": keys["wall"]}).json()["access_token"]
    header, claims, _sig = token.split(".")
    forged = f"{header}.{claims}.{_b64(b'another signature of 32 bytes...')}"
    r = client.get("/api/v1/analytics/speeds", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json()["message"] == "invalid token: Signature verification failed", r.text


def test_with_both_credentials_the_bearer_token_is_read_and_a_refusal_says_the_key_was_not(served):
    client, keys = served
    reader = client.post("/api/v1/auth/token", headers={"X-API-Key": keys["wall"]}).json()["access_token"]
    both = {"X-API-Key": keys["boss"], "Authorization": f"Bearer {reader}"}
    note = ("; the request sent both Authorization: Bearer and X-API-Key: the bearer token is the credential read, "
            "the key is not")
    assert client.get("/api/v1/analytics/speeds", headers=both).status_code == 200  # the token's read
    r = client.get("/api/v1/keys", headers=both)  # the admin key would pass; the reader token does not
    assert r.status_code == 403, r.text
    assert r.json()["message"] == f"'wall' lacks scope 'admin' for GET /api/v1/keys (it has read){note}", r.text
    r = client.get("/api/v1/keys", headers={**both, "Authorization": "Bearer abc.def.ghi"})
    assert r.status_code == 401, r.text
    assert r.json()["message"] == f"invalid token: not a token this server issued (malformed){note}", r.text
    # one credential alone: no note
    r = client.get("/api/v1/keys", headers={"Authorization": f"Bearer {reader}"})
    assert r.status_code == 403 and "X-API-Key" not in r.json()["message"], r.text
    assert client.get("/api/v1/keys", headers={"X-API-Key": keys["boss"]}).status_code == 200
