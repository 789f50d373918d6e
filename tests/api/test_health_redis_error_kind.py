"""The open `/health` and a Redis that does not answer: `checks.rate_limits` says the store's kind and the kind of
failure (`connection refused`), never Redis's host and port or the client's text, which go to the server's log
once (probes every few seconds do not repeat it). The same treatment the database's failure gets."""

from __future__ import annotations

import logging
import socket

import httpx
from support.loopback import serving

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_health_names_the_kind_of_redis_failure_and_logs_its_text_once(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="signalwise.api.health")
    port = _closed_port()
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _, key = create_key(get_engine(db), "ops", ["admin"])
    app = create_app(Settings(database_url=db, redis_url=f"redis://127.0.0.1:{port}/0",
                              rate_limits={"admin": "50/minute"}))
    with serving(app) as base:
        before = [httpx.get(f"{base}/health", timeout=30) for _ in range(2)]  # no limited call has met it yet
        httpx.post(f"{base}/api/v1/admin/clear-cache", headers={"X-API-Key": key}, timeout=30)
        after = httpx.get(f"{base}/health", timeout=30)
    states = [a.json()["checks"]["rate_limits"] for a in (*before, after)]
    assert [s["state"] for s in states] == ["unreachable", "unreachable", "memory-fallback"], states
    for answer, check in zip((*before, after), states, strict=True):
        assert answer.status_code == 200 and answer.json()["status"] == "degraded"
        assert check["store"] == "redis" and check["error"] == "connection refused", check
        assert str(port) not in answer.text and "127.0.0.1" not in answer.text, answer.text
        assert ("rate-limit store unreachable (Redis: connection refused; details in the server's log)"
                in answer.json()["message"])
    logged = [r.getMessage() for r in caplog.records if r.name == "signalwise.api.health"]
    redis_lines = [m for m in logged if m.startswith("health: the rate-limit store")]
    # the client's own text, with where it was trying, in the log; once for the three probes
    assert len(redis_lines) == 1, logged
    assert f"Redis at redis://127.0.0.1:{port}/0" in redis_lines[0] and str(port) in redis_lines[0], redis_lines
