"""Rate limits per key on a moving window: the 101st call in a minute gets 429, shared across workers via Redis."""

from __future__ import annotations

import socket
import uuid

import pytest
from fastapi.testclient import TestClient

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key


def _redis_reason() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return None
    except OSError as exc:
        return f"Redis on 127.0.0.1:6379 is not reachable ({exc})"


def _apps(tmp_path, n=1, **settings):
    url = f"sqlite:///{tmp_path / 'rl.db'}"
    apps = [create_app(Settings(database_url=url, bind_host="0.0.0.0", **settings)) for _ in range(n)]
    return apps, get_engine(url)


def test_the_101st_mutation_in_a_minute_gets_429_with_headers_and_other_keys_are_not_affected(tmp_path):
    (app,), engine = _apps(tmp_path)
    _, a = create_key(engine, "a", ["admin"])
    _, b = create_key(engine, "b", ["admin"])
    with TestClient(app) as c:
        codes = [c.post("/api/v1/admin/clear-cache", headers={"X-API-Key": a}) for _ in range(101)]
        assert [r.status_code for r in codes[:100]] == [200] * 100
        last = codes[100]
        assert last.status_code == 429 and int(last.headers["Retry-After"]) >= 1
        assert last.headers["X-RateLimit-Limit"] == "100" and last.headers["X-RateLimit-Remaining"] == "0"
        assert codes[0].headers["X-RateLimit-Remaining"] == "99"
        assert "rate limit of 100 per 1 minute" in last.json()["message"]
        assert c.post("/api/v1/admin/clear-cache", headers={"X-API-Key": b}).status_code == 200
        # reads are not limited by default
        assert all(c.get("/api/v1/analytics/speeds", headers={"X-API-Key": a}).status_code == 200 for _ in range(120))


def test_limits_are_configurable_per_scope(tmp_path):
    (app,), engine = _apps(tmp_path, rate_limits={"admin": "3/minute", "read": "5/minute"})
    _, key = create_key(engine, "k", ["admin"])
    with TestClient(app) as c:
        assert [c.post("/api/v1/admin/clear-cache", headers={"X-API-Key": key}).status_code
                for _ in range(4)] == [200, 200, 200, 429]
        assert [c.get("/api/v1/analytics/speeds", headers={"X-API-Key": key}).status_code
                for _ in range(6)][-1] == 429


@pytest.mark.redis
def test_two_workers_sharing_redis_share_the_count(tmp_path):
    reason = _redis_reason()
    if reason:
        pytest.skip(reason)
    prefix = uuid.uuid4().hex  # a fresh key id space: counts of earlier runs cannot interfere
    (w1, w2), engine = _apps(tmp_path, n=2, redis_url="redis://127.0.0.1:6379/0")
    _, key = create_key(engine, f"shared-{prefix}", ["admin"])
    with TestClient(w1) as c1, TestClient(w2) as c2:
        codes = [(c1 if k % 2 else c2).post("/api/v1/admin/clear-cache", headers={"X-API-Key": key}).status_code
                 for k in range(101)]
    assert codes[:100] == [200] * 100 and codes[100] == 429
