"""A stream's `?token=` never reaches the log: uvicorn logs each WebSocket handshake with its query string, and
the token there is a bearer credential until its `exp`. On a real `signalwise serve`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import httpx
import pytest
from support.loopback import free_port, signalwise_serving
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from signalwise.logs import StderrHandler, TextFormatter
from signalwise.store import get_engine
from signalwise.store.keys import create_key

BAD_TOKEN = "not-a-token-but-a-secret-someone-pasted"


async def _open_stream(port: int, token: str) -> None:
    """Opens `WS /api/v1/ws/live?token=…` and takes whatever comes (`serve` has no live run: closed 1013; a bad
    token: the handshake refused)."""
    try:
        async with connect(f"ws://127.0.0.1:{port}/api/v1/ws/live?topics=alert&token={token}") as ws:
            await asyncio.wait_for(ws.recv(), 5)
    except (ConnectionClosed, InvalidStatus):
        pass


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.slow
def test_serve_logs_a_websocket_handshake_without_its_token(tmp_path, log_format):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _, key = create_key(get_engine(url), "wall", ["read"])
    port = free_port()
    env = {"SIGNALWISE_JWT_SECRET": "j" * 40, "SIGNALWISE_LOG_FORMAT": log_format}
    with signalwise_serving(["serve", "--db", url, "--port", str(port)], "/health/live", port, env=env) as proc:
        answer = httpx.post(f"http://127.0.0.1:{port}/api/v1/auth/token", headers={"X-API-Key": key})
        token = answer.json()["access_token"]
        asyncio.run(_open_stream(port, token))
        asyncio.run(_open_stream(port, BAD_TOKEN))
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        err = proc.stderr.read()
    websocket_lines = [line for line in err.splitlines() if "WebSocket /api/v1/ws/live" in line]
    assert len(websocket_lines) == 2, err  # uvicorn's own lines for both handshakes are there, redacted
    assert all("token=***" in line for line in websocket_lines), websocket_lines
    assert token not in err and token.split(".")[2] not in err  # nor its signature
    assert BAD_TOKEN not in err


def test_every_line_through_the_handler_has_its_token_values_redacted(capsys):
    """Whatever the logger (uvicorn's, signalwise's, a library's through the root logger)."""
    logger = logging.Logger("any.library")
    handler = StderrHandler()
    handler.setFormatter(TextFormatter())
    logger.addHandler(handler)
    logger.warning('%s - "WebSocket %s" 403', "127.0.0.1:5", "/api/v1/sse/live?topics=a&token=eyJ.abc-_d&x=1")
    logger.warning("scope %s", {"query_string": b"access_token=zzz"})
    err = capsys.readouterr().err
    assert "token=***&x=1" in err and "eyJ.abc" not in err
    assert "access_token=***" in err and "zzz" not in err
