"""The open /health routes name a database failure by its kind ("connection refused"), never by the driver's text,
which gave anyone reaching the port the database's host and port; the full text goes to the server's log. A real
server on 127.0.0.1 whose PostgreSQL URL names a loopback port where nothing listens."""

from __future__ import annotations

import logging
import socket

import httpx
from support.loopback import serving

from signalwise.api import create_app
from signalwise.store import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_health_names_the_kind_of_database_failure_and_logs_the_rest(caplog):
    port = _free_port()
    url = f"postgresql+psycopg://watcher@127.0.0.1:{port}/traffic"
    app = create_app(Settings(database_url=url))
    with caplog.at_level(logging.WARNING, logger="signalwise.api.health"), serving(app) as base:
        answers = {path: httpx.get(base + path, timeout=30) for path in ("/health", "/health/ready")}
        again = httpx.get(base + "/health", timeout=30)
    for path, answer in answers.items():
        assert answer.status_code == 503, (path, answer.text)
        body = answer.json()
        assert body["checks"]["database"] == {"state": "unreachable", "error": "connection refused"}, body
        assert body["message"].startswith("database unreachable: connection refused (details in the server's log)")
        for secret in (str(port), "127.0.0.1", "watcher", "traffic"):
            assert secret not in answer.text, (path, secret, answer.text)
    assert again.status_code == 503
    logged = [r.getMessage() for r in caplog.records if r.name == "signalwise.api.health"]
    assert len(logged) == 1, logged  # once while the text stays the same, not at every probe
    assert str(port) in logged[0] and "refused" in logged[0].lower()
