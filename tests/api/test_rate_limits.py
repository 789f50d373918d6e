"""Rate limits per key on a moving window: the 101st call in a minute gets 429, shared across workers via Redis;
Redis down at start: test_redis_down_at_start.py; going away later: test_dependency_outages.py."""

from __future__ import annotations

import time
import uuid

import pytest
from fastapi.testclient import TestClient
from support.databases import redis_unavailable_reason
from support.migrated_databases import migrated_sqlite

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key


def _apps(tmp_path, n=1, **settings):
    url = migrated_sqlite(tmp_path / "rl.db")
    apps = [create_app(Settings(database_url=url, bind_host="0.0.0.0", **settings)) for _ in range(n)]
    return apps, get_engine(url)


def _clear_of_a_minute_boundary(needed_s: float = 20.0) -> None:
    """Wait, when needed, until `needed_s` fit before the next minute. The sliding-window counter weighs the past
    minute's hits by how much of it is still in the window: 100 hits just before a boundary count as 99.8 just
    after it, and the 101st passes (the test failed so on a slow machine)."""
    left = 60.0 - time.time() % 60.0
    if left < needed_s:
        time.sleep(left + 0.5)


@pytest.mark.slow
def test_the_101st_mutation_in_a_minute_gets_429_with_headers_and_other_keys_are_not_affected(tmp_path):
    _clear_of_a_minute_boundary()
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


@pytest.mark.slow
def test_a_detector_feed_has_its_own_limit_beside_a_persons_ingest(tmp_path):
    """A gateway posting every 2 s for five signals makes 150 calls a minute: over `ingest`'s 100, under `feed`'s
    6,000, and the same key's feed calls leave its ingest count alone. (No live run is attached, so each feed
    call is answered 503 after it is counted: the limiter runs first.)"""
    (app,), engine = _apps(tmp_path)
    _, key = create_key(engine, "gateway", ["ingest"])
    with TestClient(app) as c:
        feed = [c.post("/api/v1/live/feeds/detectors", json=[], headers={"X-API-Key": key}) for _ in range(150)]
        assert {r.status_code for r in feed} == {503}
        assert feed[-1].headers["X-RateLimit-Limit"] == "6000" and feed[-1].headers["X-RateLimit-Remaining"] == "5850"
        ingest = c.post("/api/v1/ingest/simulation", json={}, headers={"X-API-Key": key})
        assert ingest.headers["X-RateLimit-Limit"] == "100" and ingest.headers["X-RateLimit-Remaining"] == "99"
    _clear_of_a_minute_boundary(2.0)
    (tmp_path / "own").mkdir()
    (limited,), engine = _apps(tmp_path / "own", rate_limits={"feed": "3/minute"})
    _, key = create_key(engine, "gateway", ["ingest"])
    with TestClient(limited) as c:
        assert [c.post("/api/v1/live/feeds/detectors", json=[], headers={"X-API-Key": key}).status_code
                for _ in range(4)] == [503, 503, 503, 429]


def test_limits_are_configurable_per_scope(tmp_path):
    _clear_of_a_minute_boundary(5.0)
    (app,), engine = _apps(tmp_path, rate_limits={"admin": "3/minute", "read": "5/minute"})
    _, key = create_key(engine, "k", ["admin"])
    with TestClient(app) as c:
        assert [c.post("/api/v1/admin/clear-cache", headers={"X-API-Key": key}).status_code
                for _ in range(4)] == [200, 200, 200, 429]
        assert [c.get("/api/v1/analytics/speeds", headers={"X-API-Key": key}).status_code
                for _ in range(6)][-1] == 429


@pytest.mark.redis
@pytest.mark.slow
def test_two_workers_sharing_redis_share_the_count(tmp_path):
    reason = redis_unavailable_reason()
    if reason:
        pytest.skip(reason)
    prefix = uuid.uuid4().hex  # a fresh key id space: counts of earlier runs cannot interfere
    (w1, w2), engine = _apps(tmp_path, n=2, redis_url="redis://127.0.0.1:6379/0")
    _, key = create_key(engine, f"shared-{prefix}", ["admin"])
    with TestClient(w1) as c1, TestClient(w2) as c2:
        codes = [(c1 if k % 2 else c2).post("/api/v1/admin/clear-cache", headers={"X-API-Key": key}).status_code
                 for k in range(101)]
    assert codes[:100] == [200] * 100 and codes[100] == 429


@pytest.mark.slow
def test_a_read_limit_never_counts_health_checks_metrics_scrapes_or_the_page(tmp_path):
    """On a real server: a `read` limit counts `read` routes only; the open ones (a load balancer's /health, a
    Prometheus scrape, the dashboard's page, the docs) answer however often they are asked."""
    import httpx
    from support.loopback import serving

    _clear_of_a_minute_boundary(5.0)
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'rl.db'}", rate_limits={"read": "3/minute"}))
    with serving(app) as base:
        for path in ("/health", "/metrics", "/", "/docs"):
            answers = [httpx.get(base + path) for _ in range(5)]
            assert [r.status_code for r in answers] == [200] * 5, (path, answers[-1].text[:200])
            assert "x-ratelimit-limit" not in answers[-1].headers, path
        assert [httpx.get(f"{base}/api/v1/system/info").status_code for _ in range(4)] == [200, 200, 200, 429]
