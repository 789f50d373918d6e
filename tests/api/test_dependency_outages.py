"""The API while PostgreSQL or Redis is down, on real servers: a live run stays under operators' control.

PostgreSQL is reached through a TCP proxy the test stops (the shared server on 5432 is never stopped); Redis is
one of the test's own on a free port. Keys verified before the outage are taken from the server's memory, with
a header and one log line saying so; a key never verified here is refused with the reason; a key revoked
meanwhile stops at the database's first answer. Rate limits count in memory while Redis is away.
"""

from __future__ import annotations

import logging
import shutil
import time

import httpx
import pytest
from support import outages
from support.loopback import serving, serving_live
from support.outages import OwnRedis

from signalwise.api import create_app
from signalwise.api.auth import issue_token
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key, revoke_key

SECRET = "s" * 40


@pytest.fixture
def proxied_postgres(tmp_path):
    with outages.proxied_postgres(tmp_path) as found:
        yield found


@pytest.mark.postgres
def test_with_postgres_down_verified_keys_keep_control_unseen_ones_are_refused_and_revocation_holds_on_return(
        proxied_postgres, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="signalwise.api.auth")
    direct, proxied, proxy = proxied_postgres
    engine = get_engine(direct)
    _, ops = create_key(engine, "ops", ["read", "operate"])
    _, other = create_key(engine, "other", ["read", "operate"])
    settings = Settings(database_url=proxied, bind_host="0.0.0.0", jwt_secret=SECRET)
    with serving_live(settings, tmp_path / "live") as (client, rt):
        signal = rt.stepper.intersections[0].id
        override = {"intersection_id": signal, "action": "hold", "phase_number": 1, "duration_s": 30}
        key = {"X-API-Key": ops}
        assert client.get("/api/v1/live/status", headers=key).status_code == 200
        token = client.post("/api/v1/auth/token", headers=key).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert client.post("/api/v1/live/override", json=override, headers=bearer).status_code == 200

        proxy.stop()  # PostgreSQL is away for this server
        status = client.get("/api/v1/live/status", headers=key)
        assert status.status_code == 200, status.text  # it was 503 "database unavailable"
        assert status.headers["X-Auth-Checked"].startswith("memory; database unreachable")
        assert client.get("/api/v1/live/alerts", headers=key).status_code == 200
        changed = client.post("/api/v1/live/override", json={**override, "duration_s": 20}, headers=bearer)
        assert changed.status_code == 200, changed.text
        assert "database unreachable" in changed.headers["X-Auth-Checked"]
        # no token is made from memory: it would outlive the outage, a key revoked meanwhile inside it
        fresh = client.post("/api/v1/auth/token", headers=key)
        assert fresh.status_code == 503 and "tokens are issued only while the database answers" in fresh.text
        # a key this server never verified cannot be checked: refused, and the answer says why
        unseen = client.get("/api/v1/live/status", headers={"X-API-Key": other})
        assert unseen.status_code == 503
        assert "has not verified this key" in unseen.json()["message"]
        assert "5432" not in unseen.text and "connection" not in unseen.text  # the database's error is the log's
        assert "SIGNALWISE_KEY_CACHE_GRACE_S" in unseen.json()["message"]
        # the key is revoked while this server cannot see it: it goes on from memory until the database answers
        revoke_key(engine, "ops")
        assert client.get("/api/v1/live/status", headers=key).status_code == 200

        proxy.start()
        revoked = client.get("/api/v1/live/status", headers=key)
        assert revoked.status_code == 401 and "revoked" in revoked.json()["message"]
        assert client.post("/api/v1/live/override", json=override, headers=bearer).status_code == 401
        proxy.stop()  # and once refused by the database, it is not in memory any more
        again = client.get("/api/v1/live/status", headers=key)
        assert again.status_code == 503 and "has not verified this key" in again.json()["message"]
        assert rt.running
    memory_lines = [r.getMessage() for r in caplog.records if "checked from this server's memory" in r.getMessage()]
    assert len(memory_lines) == 1, memory_lines  # once per key and outage, not once per call
    secret = ops.split("_", 2)[2]  # the key's secret may itself hold "_": split at the first two only
    assert "'ops'" in memory_lines[0] and secret not in memory_lines[0]


@pytest.mark.postgres
def test_a_token_whose_key_cannot_be_checked_is_refused_without_the_database_error(proxied_postgres, caplog):
    """The 503 names neither the database's host nor its port nor the driver's words (a page of
    SIGNALWISE_CORS_ORIGINS reads it); the log has them."""
    caplog.set_level(logging.WARNING, logger="signalwise.api.auth")
    direct, proxied, proxy = proxied_postgres
    info, _key = create_key(get_engine(direct), "ops", ["admin"])
    token, _exp = issue_token(info, SECRET, 300)
    app = create_app(Settings(database_url=proxied, bind_host="0.0.0.0", jwt_secret=SECRET))
    with serving(app) as base:
        assert httpx.get(f"{base}/health/ready").status_code == 200  # the server's engine is open
        proxy.stop()
        r = httpx.post(f"{base}/api/v1/admin/clear-cache", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 503 and r.headers["Retry-After"] == "5", r.text
        message = r.json()["message"]
        assert message.startswith("database unavailable; this server has not verified the API key this token was "
                                  "issued for ('ops')"), message
        assert message.endswith("so it cannot be checked until the database answers"), message
        for secret in (str(proxy.port), "127.0.0.1", "connection", "refused"):
            assert secret not in r.text, (secret, r.text)
    logged = [r.getMessage() for r in caplog.records if "a token of a key this server has not verified" in
              r.getMessage()]
    assert logged and logged[0].startswith("database unreachable (") and str(proxy.port) in logged[0], logged


@pytest.mark.postgres
@pytest.mark.slow
def test_a_key_verified_longer_ago_than_the_grace_period_is_refused_while_postgres_is_down(proxied_postgres):
    direct, proxied, proxy = proxied_postgres
    _, key = create_key(get_engine(direct), "ops", ["admin"])
    app = create_app(Settings(database_url=proxied, bind_host="0.0.0.0", key_cache_grace_s=3.0))
    with serving(app) as base:
        assert httpx.post(f"{base}/api/v1/admin/clear-cache", headers={"X-API-Key": key}).status_code == 200
        proxy.stop()
        assert httpx.post(f"{base}/api/v1/admin/clear-cache", headers={"X-API-Key": key}).status_code == 200
        time.sleep(3.5)
        late = httpx.post(f"{base}/api/v1/admin/clear-cache", headers={"X-API-Key": key})
        assert late.status_code == 503 and "in the last 3 s" in late.json()["message"], late.text


@pytest.mark.postgres
def test_a_key_revoked_through_the_api_is_not_taken_from_memory_in_a_later_outage(proxied_postgres):
    direct, proxied, proxy = proxied_postgres
    engine = get_engine(direct)
    _, admin = create_key(engine, "admin", ["admin", "read"])
    _, gone = create_key(engine, "leaver", ["read", "operate"])
    app = create_app(Settings(database_url=proxied, bind_host="0.0.0.0"))
    with serving(app) as base:
        assert httpx.post(f"{base}/api/v1/admin/clear-cache", headers={"X-API-Key": admin}).status_code == 200
        assert httpx.get(f"{base}/api/v1/keys", headers={"X-API-Key": gone}).status_code in (200, 403)  # verified
        assert httpx.delete(f"{base}/api/v1/keys/leaver", headers={"X-API-Key": admin}).status_code == 200
        proxy.stop()
        refused = httpx.get(f"{base}/api/v1/system/info", headers={"X-API-Key": gone})
        assert refused.status_code == 503 and "has not verified this key" in refused.text, refused.text


@pytest.fixture
def own_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    redis = OwnRedis(tmp_path).start()
    try:
        yield redis
    finally:
        redis.stop()


def _gauge(base: str, name: str) -> float:
    line = next(ln for ln in httpx.get(f"{base}/metrics").text.splitlines() if ln.startswith(name + " "))
    return float(line.split()[1])


def test_with_redis_down_limited_calls_count_in_memory_and_it_is_logged_shown_and_undone(
        tmp_path, own_redis, caplog):
    caplog.set_level(logging.WARNING, logger="signalwise.api.ratelimit")
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _, key = create_key(get_engine(db), "ops", ["admin"])
    app = create_app(Settings(database_url=db, redis_url=own_redis.url, rate_limits={"admin": "5/minute"}))
    app.state.rate_limits.retry_s = 0.3  # Redis is asked again this soon (5 s in service)
    headers = {"X-API-Key": key}
    with serving(app) as base:
        first = httpx.post(f"{base}/api/v1/admin/clear-cache", headers=headers)
        assert first.status_code == 200
        # the window's end, not "now" (Redis gave the first call of a window a reset of now)
        assert int(first.headers["X-RateLimit-Reset"]) >= time.time() + 50, first.headers
        assert httpx.get(f"{base}/health").json()["rate_limits"] == "redis"
        assert _gauge(base, "signalwise_rate_limit_store_fallback") == 0

        own_redis.stop()
        codes = [httpx.post(f"{base}/api/v1/admin/clear-cache", headers=headers).status_code for _ in range(6)]
        assert codes == [200] * 5 + [429], codes  # it answered 503: now counted in memory, and still limited
        health = httpx.get(f"{base}/health")
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "degraded" and health.json()["rate_limits"] == "memory-fallback"
        # the open route names the store's kind, never its address (that is in the server's log)
        assert health.json()["checks"]["rate_limits"]["store"] == "redis" and own_redis.url not in health.text
        assert httpx.get(f"{base}/health/ready").status_code == 200
        assert _gauge(base, "signalwise_rate_limit_store_fallback") == 1

        own_redis.start()  # the same port, empty
        time.sleep(0.4)
        back = httpx.post(f"{base}/api/v1/admin/clear-cache", headers=headers)
        assert back.status_code == 200 and back.headers["X-RateLimit-Remaining"] == "4", back.headers
        assert _gauge(base, "signalwise_rate_limit_store_fallback") == 0
        assert httpx.get(f"{base}/health").json()["rate_limits"] == "redis"
    said = [r.getMessage() for r in caplog.records if r.name == "signalwise.api.ratelimit"]
    assert len(said) == 2 and "does not answer" in said[0] and "answers again" in said[1], said
