"""A worker that fell back to counting in memory while Redis was away reports Redis again once Redis answers, even
when no rate-limited call reaches it (reads are not limited by default): `/health` asks Redis itself, at most
every few seconds, instead of reporting `memory-fallback` until a limited call happens by. Redis is the test's
own, on a free port."""

from __future__ import annotations

import logging
import shutil
import time

import httpx
import pytest
from support.loopback import serving
from support.outages import OwnRedis

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key


@pytest.fixture
def own_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    redis = OwnRedis(tmp_path).start()
    try:
        yield redis
    finally:
        redis.stop()


def test_health_sees_redis_back_without_a_limited_call(tmp_path, own_redis, caplog):
    caplog.set_level(logging.WARNING, logger="signalwise.api.ratelimit")
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _, key = create_key(get_engine(db), "ops", ["admin", "read"])
    app = create_app(Settings(database_url=db, redis_url=own_redis.url, rate_limits={"admin": "50/minute"}))
    app.state.rate_limits.retry_s = 0.3  # Redis is asked again this soon (5 s in service)
    headers = {"X-API-Key": key}
    with serving(app) as base:
        own_redis.stop()
        assert httpx.post(f"{base}/api/v1/admin/clear-cache", headers=headers).status_code == 200  # in memory
        time.sleep(0.4)
        health = httpx.get(f"{base}/health").json()
        assert health["rate_limits"] == "memory-fallback", health  # asked again: still away

        own_redis.start()  # the same port
        time.sleep(0.4)
        # only reads and health checks from here on: none of them is rate-limited
        assert httpx.get(f"{base}/api/v1/system/info", headers=headers).status_code == 200
        health = httpx.get(f"{base}/health")
        assert health.status_code == 200 and health.json()["rate_limits"] == "redis", health.text
        assert health.json()["status"] == "ok", health.text
        # and a limited call counts in Redis again, without a second "answers again"
        assert httpx.post(f"{base}/api/v1/admin/clear-cache", headers=headers).status_code == 200
    said = [r.getMessage() for r in caplog.records if r.name == "signalwise.api.ratelimit"]
    assert len(said) == 2 and "does not answer" in said[0] and "answers again" in said[1], said
