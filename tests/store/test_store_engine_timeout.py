"""A PostgreSQL server that takes the connection and never answers is given up after the connect timeout, not
after the system's TCP timeout: every key check, /health and store write would wait that long. The "server" is a
socket on loopback that the kernel accepts connections for and nobody reads. The attempt runs in a thread, so a
connection that would wait for ever fails the test instead of holding the suite."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from sqlalchemy import text

from signalwise.store.engine import PG_CONNECT_TIMEOUT_S, create_store_engine


@pytest.mark.slow
def test_a_database_that_never_answers_is_given_up_after_the_connect_timeout():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        engine = create_store_engine(f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/test")
        outcome: dict = {}

        def connect() -> None:
            started = time.monotonic()
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            except Exception as exc:  # noqa: BLE001 - the error is what is checked
                outcome["error"] = str(exc)
            outcome["waited_s"] = time.monotonic() - started

        attempt = threading.Thread(target=connect, daemon=True)
        attempt.start()
        attempt.join(timeout=PG_CONNECT_TIMEOUT_S + 10)
        assert not attempt.is_alive(), "the connection attempt was still waiting"
        engine.dispose()
    assert "timeout" in outcome.get("error", "") or "timed out" in outcome.get("error", ""), outcome
    assert PG_CONNECT_TIMEOUT_S - 1 <= outcome["waited_s"] < PG_CONNECT_TIMEOUT_S + 5
