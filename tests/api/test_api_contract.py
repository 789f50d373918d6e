"""What an integrator reads off the API: the OpenAPI schema's credentials, scopes and error bodies, the headers a
page on another origin may read, the token exchange, page sizes and units; and that `admin` does not read
evidence images."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from support.migrated_databases import migrated_sqlite

from signalwise.api import create_app
from signalwise.api.auth import OPEN, app_routes, scope_for
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key
from signalwise.store.tables import Run

OPS = "https://ops.city.example"
RECORD = {"simulation_id": "S", "timestamp": "2025-09-10T23:20:00Z", "intersection_id": "I",
          "signals": [{"direction": "north", "vehicle_counts": {"car": 1}, "emergency_vehicle_present": False,
                       "signal_status": "GREEN", "signal_timer": 1, "vehicles_crossed": 1, "avg_wait_time": 1.0,
                       "green_time_allocated": 20}],
          "metrics": {"total_vehicles_passed": 1, "avg_wait_time_all_sides": 1.0, "throughput": 0.5,
                      "avg_speed": 20.0, "fuel_saved": 0.1, "co2_saved": 0.2, "emergency_overrides": 0}}


def _app(tmp_path, **settings):
    url = migrated_sqlite(tmp_path / "contract.db")
    return create_app(Settings(database_url=url, cache_ttl_s=0, **settings)), get_engine(url)


def _resolve(spec: dict, schema: dict) -> dict:
    ref = schema.get("$ref", "")
    return spec["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def test_the_schema_declares_the_credentials_and_each_operations_scope_and_error_body(tmp_path):
    app, _ = _app(tmp_path)
    with TestClient(app) as c:
        spec = c.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["BearerToken"]["type"] == "http" and schemes["BearerToken"]["scheme"] == "bearer"
    declared = 0
    for method, path in app_routes(app):
        op = spec["paths"].get(path, {}).get(method.lower())
        if op is None:  # not in the schema (streams, docs pages, HEAD)
            continue
        scope = scope_for(method, path)
        if scope is OPEN:  # no credential asked; only the token exchange refuses (401) the key it exchanges
            assert "security" not in op, (method, path)
            assert ("401" in op["responses"]) == (path == "/api/v1/auth/token"), (method, path)
            continue
        declared += 1
        assert op["security"] == [{"ApiKey": []}, {"BearerToken": []}] and op["x-scope"] == scope, (method, path)
        for code in ("401", "403", "429"):
            body = op["responses"][code]["content"]["application/json"]["schema"]
            assert _resolve(spec, body)["title"] == "ErrorBody", (method, path, code)
        assert "Retry-After" in op["responses"]["429"]["headers"]
    assert declared > 60
    assert "security" not in spec["paths"]["/health"]["get"]
    keys_post = spec["paths"]["/api/v1/keys"]["post"]
    assert keys_post["x-scope"] == "admin"
    error = _resolve(spec, keys_post["responses"]["422"]["content"]["application/json"]["schema"])
    assert set(error["required"]) == {"message", "detail"}
    detail_kinds = {k.get("type") for k in error["properties"]["detail"]["anyOf"]}
    assert detail_kinds == {"string", "array"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_the_error_body_the_schema_declares_is_the_one_the_server_sends(tmp_path):
    app, engine = _app(tmp_path, bind_host="0.0.0.0")
    _, reader = create_key(engine, "reader", ["read"])
    with TestClient(app) as c:
        spec = c.get("/openapi.json").json()
        declared = set(spec["components"]["schemas"]["ErrorBody"]["properties"])
        for r, kind in ((c.get("/api/v1/analytics/speeds"), str),  # 401
                        (c.post("/api/v1/admin/clear-cache", headers={"X-API-Key": reader}), str),  # 403
                        (c.post("/api/v1/keys", json={}, headers={"X-API-Key": reader}), str),  # 403 before the body
                        (c.get("/api/v1/analytics/speeds?limit=0", headers={"X-API-Key": reader}), list)):  # 422
            assert r.status_code in (401, 403, 422) and set(r.json()) == declared, r.text
            assert isinstance(r.json()["detail"], kind), r.text


def test_a_page_on_a_listed_origin_may_read_the_rate_limit_and_auth_headers(tmp_path):
    app, engine = _app(tmp_path, cors_origins=[OPS], rate_limits={"read": "2/minute"}, bind_host="0.0.0.0")
    _, key = create_key(engine, "wall", ["read"])
    with TestClient(app) as c:
        answers = [c.get("/api/v1/analytics/speeds", headers={"Origin": OPS, "X-API-Key": key}) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    for r in answers:
        exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
        assert {"retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
                "x-auth-checked"} <= exposed, r.headers
    assert "retry-after" in answers[2].headers and "x-ratelimit-remaining" in answers[0].headers


def test_admin_does_not_read_evidence_unless_granted_it(tmp_path):
    app, engine = _app(tmp_path, bind_host="0.0.0.0", evidence_dir=tmp_path / "evidence")
    keys = {name: create_key(engine, name, scopes)[1]
            for name, scopes in (("admin", ["admin"]), ("admin-evidence", ["admin", "evidence"]))}
    with TestClient(app) as c:
        r = c.get("/api/v1/evidence/violations/1", headers={"X-API-Key": keys["admin"]})
        assert r.status_code == 403 and "lacks scope 'evidence'" in r.json()["message"]
        r = c.get("/api/v1/evidence/violations/1", headers={"X-API-Key": keys["admin-evidence"]})
        assert r.status_code == 404  # through the scope check: no violation 1 is stored
        assert c.get("/api/v1/evidence/access", headers={"X-API-Key": keys["admin"]}).status_code == 200
        # nor grants it to a key it creates: only a key holding evidence does
        refused = c.post("/api/v1/keys", json={"name": "dpo", "scopes": ["evidence"]},
                         headers={"X-API-Key": keys["admin"]})
        assert refused.status_code == 403 and "cannot grant evidence" in refused.json()["message"]
        made = c.post("/api/v1/keys", json={"name": "dpo", "scopes": ["evidence"]},
                      headers={"X-API-Key": keys["admin-evidence"]})
        assert made.status_code == 201 and made.json()["scopes"] == ["evidence"]
        r = c.get("/api/v1/evidence/violations/1", headers={"X-API-Key": made.json()["key"]})
        assert r.status_code == 404


@pytest.mark.parametrize("body", [{}, None, {"api_key": ""}], ids=["empty-json-body", "no-body", "empty-key-in-body"])
def test_the_token_exchange_takes_the_header_key_whatever_body_comes_along(tmp_path, body):
    app, engine = _app(tmp_path)
    _, key = create_key(engine, "wrapper", ["read"])
    with TestClient(app) as c:
        r = c.post("/api/v1/auth/token", headers={"X-API-Key": key}, json=body)
        assert r.status_code == 200, r.text
        assert r.json()["scopes"] == ["read"]
        r = c.post("/api/v1/auth/token", json={})  # no key at all: said so
        assert r.status_code == 401 and "X-API-Key header" in r.json()["message"]


def test_the_declared_page_size_is_the_enforced_one(tmp_path):
    app, _ = _app(tmp_path, max_page_size=250)
    with TestClient(app) as c:
        spec = c.get("/openapi.json").json()
        limits = [p["schema"]["maximum"] for path in ("/api/v1/analytics/speeds", "/api/v1/analytics/simulations")
                  for p in spec["paths"][path]["get"]["parameters"] if p["name"] == "limit"]
        assert limits == [250, 250]
        assert c.get("/api/v1/analytics/speeds?limit=250").status_code == 200
        r = c.get("/api/v1/analytics/speeds?limit=251")
        assert r.status_code == 422 and r.json()["message"].startswith("query.limit: ")


def test_speeds_and_simulation_metrics_carry_their_units(tmp_path):
    app, engine = _app(tmp_path)
    _, key = create_key(engine, "feed", ["ingest"])
    with TestClient(app) as c:
        assert c.post("/api/v1/ingest/simulation", json=RECORD, headers={"X-API-Key": key}).status_code == 201
        speeds = c.get("/api/v1/analytics/speeds").json()
        assert speeds["items"][0]["mean_speed"] == 20.0  # the field names stay
        assert all(speeds["fields"][name].startswith("km/h: ") for name in ("mean_speed", "min_speed", "max_speed"))
        with engine.begin() as conn:  # the listing shows tagged runs: tagged as a published run is
            conn.execute(Run.__table__.update().values(scenario="corridor", controller="fixed"))
        sims = c.get("/api/v1/analytics/simulations").json()
    metrics = sims["items"][0]["metrics"]
    assert "avg_speed" in metrics and "fuel_saved" in metrics
    assert sims["fields"]["avg_speed"].startswith("km/h: ") and sims["fields"]["fuel_saved"].startswith("l: ")
    assert sims["fields"]["co2_saved"].startswith("kg: ") and sims["fields"]["throughput"].startswith("share 0-1: ")
    assert set(sims["fields"]) == set(metrics)
