"""Bad input to a real server on 127.0.0.1: a 4xx whose `message` is one readable line naming the field,
never a 500 and never a Python repr."""

from __future__ import annotations

import httpx
import pytest
from support.loopback import serving

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

#: aware instants whose UTC equivalent falls outside what a datetime holds (years 1 to 9999)
OUT_OF_RANGE = ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, admin headers) of one server for the module."""
    url = f"sqlite:///{tmp_path_factory.mktemp('refusals') / 'db.sqlite'}"
    app = create_app(Settings(database_url=url, cache_ttl_s=0))
    app.add_api_route("/api/v1/test-fault", _fault)  # a bug, as a route that has one would meet it
    _info, key = create_key(get_engine(url), "admin", ["admin"])
    with serving(app) as base:
        yield base, {"X-API-Key": key}


def _fault() -> dict:
    raise RuntimeError("/srv/private/path leaked in a message")


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
def test_a_key_expiry_out_of_range_is_refused_by_its_field(served, moment):
    base, admin = served
    r = httpx.post(f"{base}/api/v1/keys", headers=admin, json={"name": "k", "scopes": ["read"], "expires_at": moment})
    assert r.status_code == 422, r.text
    assert r.json()["message"].startswith("body.expires_at: ")


def test_a_key_that_would_have_expired_already_is_refused(served):
    base, admin = served
    r = httpx.post(f"{base}/api/v1/keys", headers=admin,
                   json={"name": "k", "scopes": ["read"], "expires_at": "2020-01-01T00:00:00Z"})
    assert r.status_code == 422 and r.json()["message"].startswith("body.expires_at: 2020-01-01"), r.text
    assert "k" not in {k["name"] for k in httpx.get(f"{base}/api/v1/keys", headers=admin).json()}
    later = httpx.post(f"{base}/api/v1/keys", headers=admin,
                       json={"name": "k", "scopes": ["read"], "expires_at": "2199-01-01T00:00:00Z"})
    assert later.status_code == 201, later.text


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
def test_a_submitted_interval_out_of_range_is_refused_by_its_field(served, moment):
    base, admin = served
    body = {"intersection_id": "C", "source": "s",
            "intervals": [{"interval_start": moment, "interval_s": 900, "controller": "ql", "delay_s_per_veh": 1}]}
    r = httpx.post(f"{base}/api/v1/ml/metrics", headers=admin, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["message"].startswith("body.intervals[0].interval_start: ")
    assert httpx.get(f"{base}/api/v1/ml/metrics/C", headers=admin).status_code == 404  # nothing was stored


def test_field_errors_a_route_raises_itself_read_as_validation_errors(served):
    base, admin = served
    r = httpx.get(f"{base}/api/v1/atspm/actuations", headers=admin,
                  params={"start": "2025-01-01T00:10:00", "end": "2025-01-01T00:05:00"})
    assert r.status_code == 422, r.text
    body = r.json()
    said = "end (2025-01-01T00:05:00) must be after start (2025-01-01T00:10:00)"
    assert body == {"message": f"query.end: {said}",
                    "detail": [{"loc": ["query", "end"], "type": "value_error", "msg": said}]}
    r = httpx.get(f"{base}/api/v1/atspm/actuations", headers=admin, params={"bin": 7})
    assert r.status_code == 422 and r.json()["message"] == "query.bin: bin must divide 60 minutes"


def test_a_bug_answers_500_in_the_shape_of_every_error_without_its_text(served):
    base, admin = served
    r = httpx.get(f"{base}/api/v1/test-fault", headers=admin)
    assert r.status_code == 500 and r.headers["content-type"] == "application/json", r.text
    message = "internal error in GET /api/v1/test-fault: RuntimeError (see the server's log)"
    assert r.json() == {"message": message, "detail": message}
    assert httpx.get(f"{base}/health").status_code == 200  # the server goes on
