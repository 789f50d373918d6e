"""`POST /api/v1/keys` refuses a body key it has no field for, naming it, and makes no key.

An integrator sent `{"name": "xtra", "scopes": ["read"], "admin": true}` and got 201: a read key, the `admin`
dropped without a word (unknown query parameters were already a 422). Worse, `"expires"` for `expires_at` made a
key that never expires. On a real uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import httpx
import pytest
from support.loopback import serving

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key


@pytest.fixture
def served(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    app = create_app(Settings(database_url=url))
    _info, admin = create_key(get_engine(url), "root-admin", ["admin"])
    with serving(app) as base, httpx.Client(base_url=base, headers={"X-API-Key": admin}, timeout=15) as client:
        yield client


def _names(client: httpx.Client) -> set[str]:
    return {k["name"] for k in client.get("/api/v1/keys").json()}


@pytest.mark.parametrize("body, message", [
    ({"name": "xtra", "scopes": ["read"], "admin": True},
     "body.admin: not a field; the fields here: name, scopes, expires_at"),
    ({"name": "xtra", "scopes": ["read"], "expires": "2027-01-01T00:00:00Z"},
     "body.expires: not a field; did you mean expires_at?"),
    ({"name": "xtra", "scope": ["read"]}, "body.scope: not a field; did you mean scopes?"),
])
def test_a_key_the_body_has_no_field_for_is_a_422_naming_it_and_no_key_is_made(served, body, message):
    r = served.post("/api/v1/keys", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["message"] == message, r.text
    assert r.json()["detail"][0]["type"] == "extra_forbidden"
    assert _names(served) == {"root-admin"}


def test_a_body_of_the_known_fields_still_makes_the_key(served):
    r = served.post("/api/v1/keys", json={"name": "reader", "scopes": ["read"], "expires_at": None})
    assert r.status_code == 201, r.text
    assert r.json()["scopes"] == ["read"] and r.json()["key"].startswith("sw_")
    assert _names(served) == {"root-admin", "reader"}


def test_the_openapi_schema_says_no_other_field_is_taken(served):
    schema = served.get("/openapi.json").json()["components"]["schemas"]["KeyCreate"]
    assert schema["additionalProperties"] is False
