"""Keys, tokens and scopes: no route that changes anything is reachable without its scope."""

from __future__ import annotations

import datetime as dt
import re

import jwt
import pytest
from fastapi.testclient import TestClient
from support.migrated_databases import migrated_sqlite

from signalwise.api import create_app
from signalwise.api.auth import OPEN, app_routes, scope_for
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key, list_keys, revoke_key

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
#: mutating routes that change nothing, by design (predictions), or check the key themselves (token exchange)
NOT_CHANGING = {("POST", "/api/v1/ml/predict"), ("POST", "/api/v1/ml/predict/batch"), ("POST", "/api/v1/auth/token")}


def _app(tmp_path, **settings):
    url = migrated_sqlite(tmp_path / "auth.db")
    return create_app(Settings(database_url=url, cache_ttl_s=0, **settings)), get_engine(url)


def _routes(app):
    return app_routes(app)


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_every_route_declares_a_scope_and_none_that_changes_anything_is_read_or_open(tmp_path):
    app, _ = _app(tmp_path)
    routes = list(_routes(app))
    assert len(routes) > 30
    for method, path in routes:
        scope = scope_for(method, path)  # raises for a route nobody declared
        if method in MUTATING and (method, path) not in NOT_CHANGING:
            assert scope not in (OPEN, "read"), (method, path, scope)


def test_without_a_key_every_mutating_route_is_refused_and_reads_only_on_loopback(tmp_path):
    public, _ = _app(tmp_path, bind_host="0.0.0.0")
    local, _ = _app(tmp_path)
    with TestClient(public) as pc, TestClient(local) as lc:
        for method, path in _routes(public):
            if method in ("HEAD", "WEBSOCKET") or scope_for(method, path) is OPEN:
                continue
            url = _concrete(path)
            r = pc.request(method, url, json={})
            assert r.status_code == 401, (method, url, r.status_code, r.text)
            assert "needs an API key or token with scope" in r.json()["message"]
            r = lc.request(method, url, json={})
            if scope_for(method, path) == "read":
                assert r.status_code != 401, (method, url)  # open for reading on 127.0.0.1
            else:
                assert r.status_code == 401, (method, url, r.status_code)


def test_a_key_without_the_scope_gets_403_and_with_it_gets_through(tmp_path):
    app, engine = _app(tmp_path, bind_host="0.0.0.0")
    _, reader = create_key(engine, "dashboard", ["read"])
    _, ingester = create_key(engine, "loop-detectors", ["ingest"])
    record = {"simulation_id": "S", "timestamp": "2025-09-10T23:20:00Z", "intersection_id": "I",
              "signals": [{"direction": "north", "vehicle_counts": {"car": 1}, "emergency_vehicle_present": False,
                           "signal_status": "GREEN", "signal_timer": 1, "vehicles_crossed": 1, "avg_wait_time": 1.0,
                           "green_time_allocated": 20}],
              "metrics": {"total_vehicles_passed": 1, "avg_wait_time_all_sides": 1.0, "throughput": 0.5,
                          "avg_speed": 20.0, "fuel_saved": 0.1, "co2_saved": 0.2, "emergency_overrides": 0}}
    with TestClient(app) as c:
        r = c.post("/api/v1/ingest/simulation", json=record, headers={"X-API-Key": reader})
        assert r.status_code == 403 and "'dashboard' lacks scope 'ingest'" in r.json()["message"]
        assert c.post("/api/v1/ingest/simulation", json=record, headers={"X-API-Key": ingester}).status_code == 201
        assert c.get("/api/v1/analytics/speeds", headers={"X-API-Key": ingester}).status_code == 403
        assert c.get("/api/v1/analytics/speeds", headers={"X-API-Key": reader}).status_code == 200
        assert c.post("/api/v1/admin/clear-cache", headers={"X-API-Key": reader}).status_code == 403


def test_tokens_expire_are_checked_and_carry_the_key_scopes(tmp_path):
    secret = "s" * 40
    app, engine = _app(tmp_path, bind_host="0.0.0.0", jwt_secret=secret)
    info, key = create_key(engine, "ops", ["read", "operate"])
    with TestClient(app) as c:
        assert c.post("/api/v1/auth/token").status_code == 401
        unknown = c.post("/api/v1/auth/token", json={"api_key": key + "x"})
        assert unknown.status_code == 401  # says where keys are looked up, as every other route's 401 does
        assert "keys are checked in this server's own database" in unknown.json()["message"], unknown.text
        r = c.post("/api/v1/auth/token", headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["scopes"] == ["read", "operate"] and 0 < body["expires_in"] <= 900
        claims = jwt.decode(body["access_token"], secret, algorithms=["HS256"])
        assert claims["sub"] == "ops" and claims["exp"] > claims["iat"]
        bearer = {"Authorization": f"Bearer {body['access_token']}"}
        assert c.get("/api/v1/analytics/speeds", headers=bearer).status_code == 200
        assert c.post("/api/v1/admin/clear-cache", headers=bearer).status_code == 403
        old = jwt.encode({**claims, "exp": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)}, secret, "HS256")
        r = c.get("/api/v1/analytics/speeds", headers={"Authorization": f"Bearer {old}"})
        assert r.status_code == 401 and "token expired" in r.json()["message"]
        forged = jwt.encode({**claims, "scopes": ["admin"]}, "another secret of forty characters....", "HS256")
        r = c.post("/api/v1/admin/clear-cache", headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == 401 and "invalid token" in r.json()["message"]


def test_revoked_and_expired_keys_are_refused_with_the_reason(tmp_path):
    app, engine = _app(tmp_path, bind_host="0.0.0.0")
    _, old = create_key(engine, "rotating", ["read"])
    _, new = create_key(engine, "rotating-2", ["read"])
    _, stale = create_key(engine, "temp", ["read"], expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    revoke_key(engine, "rotating")
    with TestClient(app) as c:
        r = c.get("/api/v1/analytics/speeds", headers={"X-API-Key": old})
        assert r.status_code == 401 and "'rotating' is revoked" in r.json()["message"]
        assert c.get("/api/v1/analytics/speeds", headers={"X-API-Key": new}).status_code == 200
        r = c.get("/api/v1/analytics/speeds", headers={"X-API-Key": stale})
        assert r.status_code == 401 and "'temp' is expired" in r.json()["message"]


def test_open_routes_answer_whatever_credential_comes_along(tmp_path):
    """A health probe, a metrics scraper or a page that still sends a revoked key or a broken token is not
    refused on the routes that need none; the same credentials stay refused where a scope is needed."""
    app, engine = _app(tmp_path, bind_host="0.0.0.0")
    _, revoked = create_key(engine, "old", ["read"])
    revoke_key(engine, "old")
    bad = [{"X-API-Key": "sw_bad"}, {"X-API-Key": revoked}, {"Authorization": "Bearer not-a-token"}]
    with TestClient(app) as c:
        for headers in bad:
            for path in ("/health", "/metrics", "/docs", "/openapi.json"):
                r = c.get(path, headers=headers)
                assert r.status_code == 200, (path, headers, r.text)
            assert c.get("/api/v1/analytics/speeds", headers=headers).status_code == 401
        r = c.head("/health")  # load balancers probe with HEAD
        assert r.status_code == 200 and r.content == b""
    import warnings

    (tmp_path / "fresh").mkdir()
    fresh, _ = _app(tmp_path / "fresh")
    with warnings.catch_warnings(), TestClient(fresh) as c:
        warnings.simplefilter("error")  # FastAPI warns of two operations sharing an id (one GET+HEAD route did)
        assert list(c.get("/openapi.json").json()["paths"]["/health"]) == ["get"]


def test_insecure_no_auth_opens_everything(tmp_path):
    app, _ = _app(tmp_path, bind_host="0.0.0.0", insecure_no_auth=True)
    with TestClient(app) as c:
        assert c.post("/api/v1/admin/clear-cache").status_code == 200


@pytest.mark.parametrize("scopes", [["nope"], []])
def test_unknown_scopes_are_refused(tmp_path, scopes):
    from signalwise.store.keys import ApiKeyError

    _, engine = _app(tmp_path)
    with pytest.raises(ApiKeyError):
        create_key(engine, "x", scopes)


def test_the_keys_command_creates_a_working_key_lists_and_revokes_it(tmp_path):
    from support.cli import signalwise

    url = f"sqlite:///{tmp_path / 'auth.db'}"

    def cli(*args):
        return signalwise("keys", *args, "--db", url)

    p = cli("create", "--name", "ops", "--scope", "read", "--scope", "operate")
    assert p.returncode == 0, p.stderr
    key = p.stdout.strip()
    assert key.startswith("sw_") and "printed" not in key
    app, _ = _app(tmp_path, bind_host="0.0.0.0")
    with TestClient(app) as c:
        assert c.get("/api/v1/analytics/speeds", headers={"X-API-Key": key}).status_code == 200
        listed = cli("list")
        assert "ops" in listed.stdout and "read operate" in listed.stdout and key not in listed.stdout
        assert cli("revoke", "ops").returncode == 0
        assert c.get("/api/v1/analytics/speeds", headers={"X-API-Key": key}).status_code == 401
    p = cli("create", "--name", "x", "--scope", "nope")
    assert p.returncode == 2 and "unknown scope(s) nope" in p.stderr
    # the README's spelling, and a comma-separated list, give the same key as repeating --scope
    assert cli("create", "--name", "ops2", "--scopes", "read,operate").returncode == 0
    assert cli("create", "--name", "ops3", "--scopes", "operate").returncode == 0
    listed = cli("list").stdout
    assert next(line for line in listed.splitlines() if "ops2" in line).count("read operate") == 1
    assert "operate" in next(line for line in listed.splitlines() if "ops3" in line)


def test_a_key_name_is_one_active_key_and_plain_text(tmp_path):
    """Revoking by name revokes every active key of that name, so a second active key of the same name (a
    client's, created by mistake) would be revoked with the first; a name with a newline forges log lines."""
    app, engine = _app(tmp_path)
    admin = create_key(engine, "admin", ["admin"])[1]
    with TestClient(app) as c:
        headers = {"X-API-Key": admin}
        assert c.post("/api/v1/keys", json={"name": "gw", "scopes": ["ingest"]}, headers=headers).status_code == 201
        again = c.post("/api/v1/keys", json={"name": "gw", "scopes": ["read"]}, headers=headers)
        assert again.status_code == 409 and "an active key is named 'gw'" in again.json()["message"]
        forged = c.post("/api/v1/keys", json={"name": "a\nb", "scopes": ["read"]}, headers=headers)
        assert forged.status_code == 422 and "control characters" in forged.json()["message"]
        revoked = c.delete("/api/v1/keys/gw", headers=headers).json()
        assert [k["name"] for k in revoked] == ["gw"]
        # once revoked, the name is free again (a rotation that keeps the client's name)
        assert c.post("/api/v1/keys", json={"name": "gw", "scopes": ["ingest"]}, headers=headers).status_code == 201
    assert sorted(k.state() for k in list_keys(engine) if k.name == "gw") == ["active", "revoked"]


def test_metrics_and_monitoring_answer_and_the_second_names_are_the_live_routes(tmp_path):
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    app, _ = _app(tmp_path)
    rt = LiveRuntime(RunConfig(scenario="single"), LiveOptions(speed=None, duration_s=120, in_process=True),
                     tmp_path / "live")
    rt.open()
    rt.run()
    app.state.live = rt
    with TestClient(app) as c:
        c.get("/api/v1/live/status")
        text = c.get("/metrics").text
        assert 'signalwise_http_request_duration_seconds_count{method="GET",route="/api/v1/live/status",status="200"} 1.0' in text
        assert 'signalwise_profiler_milliseconds{quantile="p99",stage="decision_path"}' in text
        assert "signalwise_fallback_share 0.0" in text and "signalwise_stream_clients" in text
        assert c.get("/api/v1/monitoring/performance").json().keys() == c.get("/api/v1/live/profiler").json().keys()
        assert c.get("/api/v1/monitoring/alerts").json() == c.get("/api/v1/live/alerts").json()
        system = c.get("/api/v1/monitoring/system").json()
        assert system["process_rss_mb"] > 10


def test_a_token_verified_before_is_refused_once_it_expires():
    """Verified tokens are remembered for speed; the memory must not outlive the token's `exp`."""
    import time

    from fastapi import HTTPException

    from signalwise.api.auth import decode_token

    secret = "a signing secret of at least thirty-two bytes"
    exp = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.0)
    token = jwt.encode({"sub": "ops", "scopes": ["read"], "exp": exp}, secret, "HS256")
    assert decode_token(token, secret).scopes == frozenset({"read"})
    assert decode_token(token, secret).name == "ops"  # the remembered answer
    time.sleep(max(0.0, (exp - dt.datetime.now(dt.UTC)).total_seconds()) + 1.05)
    with pytest.raises(HTTPException) as refused:
        decode_token(token, secret)
    assert refused.value.status_code == 401 and "expired" in refused.value.detail
    with pytest.raises(HTTPException):  # another secret never sees the first secret's verdict
        decode_token(jwt.encode({"sub": "x", "scopes": ["read"], "exp": exp + dt.timedelta(hours=1)}, secret, "HS256"),
                     "another secret of at least thirty-two bytes")


def test_a_revoked_keys_token_changes_nothing_but_still_reads_until_it_expires(tmp_path):
    """On a real server: revoking a leaked admin key must stop its token at once from changing anything
    (above all from making itself a new key); its reads go on until the token's `exp`."""
    import httpx
    from support.loopback import serving

    app, engine = _app(tmp_path)
    _, leaked = create_key(engine, "leaked", ["admin"])
    _, other = create_key(engine, "other", ["operate"])
    with serving(app) as base:
        def bearer(key: str) -> dict:
            r = httpx.post(f"{base}/api/v1/auth/token", headers={"X-API-Key": key})
            assert r.status_code == 200, r.text
            return {"Authorization": f"Bearer {r.json()['access_token']}"}

        stolen, kept = bearer(leaked), bearer(other)
        assert httpx.post(f"{base}/api/v1/admin/clear-cache", headers=stolen).status_code == 200
        revoke_key(engine, "leaked")
        r = httpx.post(f"{base}/api/v1/keys", headers=stolen, json={"name": "backdoor", "scopes": ["admin"]})
        assert r.status_code == 401, r.text
        assert "the API key this token was issued for ('leaked') is revoked" in r.json()["message"]
        assert httpx.post(f"{base}/api/v1/admin/clear-cache", headers=stolen).status_code == 401
        assert httpx.get(f"{base}/api/v1/analytics/simulations", headers=stolen).status_code == 200
        assert "backdoor" not in {k.name for k in list_keys(engine)}
        r = httpx.post(f"{base}/api/v1/live/controller", headers=kept, json={"controller": "fixed"})
        assert r.status_code == 503, r.text  # an active key's token passes (no live run here to switch)


@pytest.mark.slow
def test_every_worker_of_serve_takes_the_tokens_the_others_issue(tmp_path, monkeypatch):
    """`signalwise serve --workers 2` without SIGNALWISE_JWT_SECRET: a token issued by one worker is taken by the
    other (each new connection may reach either), not refused with `Signature verification failed`."""

    import httpx
    from support.loopback import free_port, signalwise_serving

    url = migrated_sqlite(tmp_path / "auth.db")
    _info, key = create_key(get_engine(url), "ops", ["admin"])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.delenv("SIGNALWISE_JWT_SECRET", raising=False)  # as an operator who set none
    with signalwise_serving(["serve", "--db", url, "--workers", "2", "--port", str(port)], "/health", port):
        codes = []
        for _ in range(6):  # each exchange and each use on a new connection: both workers serve some of them
            token = httpx.post(f"{base}/api/v1/auth/token", headers={"X-API-Key": key}).json()["access_token"]
            for _ in range(3):
                codes.append(httpx.post(f"{base}/api/v1/admin/clear-cache",
                                        headers={"Authorization": f"Bearer {token}"}).status_code)
    assert codes == [200] * 18, codes
