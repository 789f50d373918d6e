"""Streams from a browser page of another site, and the end of a run on workers fed through Redis.

- A WebSocket or EventSource carrying the `Origin` of another site gets no read open without a key (CORS does
  not guard a WebSocket: a page the operator opens elsewhere would read the live run); with a key or token it
  is served, as is a client that sends no Origin (scripts) and this server's own pages.
- A `serve` worker streaming a run through Redis ends its streams as the run's own server does (WS close 1001,
  SSE `event: end`), and a client subscribing afterwards gets the last snapshot, then the end. These tests use
  the Redis at 127.0.0.1:6379 and skip, with the reason, when none answers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from support.loopback import serving_port as serving
from test_streams import _FakeRuntime  # the same stand-in runtime as the other stream tests
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from signalwise.api import create_app
from signalwise.api import streams as streams_module
from signalwise.api.streams import StreamHub, redis_unavailable_reason
from signalwise.store import Settings

SECRET = "s" * 40
REDIS_URL = "redis://127.0.0.1:6379/0"
OPS = "https://ops.city.example"
EVIL = "https://evil.example"


def token(scopes=("read",)) -> str:
    now = dt.datetime.now(dt.UTC)
    return jwt.encode({"sub": "wall", "scopes": list(scopes), "iat": now, "exp": now + dt.timedelta(seconds=300)},
                      SECRET, algorithm="HS256")


def ws_url(port: int, query: str = "") -> str:
    return f"ws://127.0.0.1:{port}/api/v1/ws/live" + (f"?{query}" if query else "")


async def recv_json(ws, timeout_s: float = 5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout_s))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def _streaming_app(tmp_path, **settings):
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", jwt_secret=SECRET, **settings))
    app.state.streams = StreamHub(heartbeat_s=5)
    app.state.live = _FakeRuntime()
    return app


# -- Origin ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cors", [[OPS], []], ids=["cors-configured", "no-cors"])
def test_a_page_of_another_site_gets_no_keyless_read_of_the_live_stream(tmp_path, cors):
    app = _streaming_app(tmp_path, cors_origins=cors)
    with serving(app) as port:
        async def subscribed(origin: str | None, query: str = "") -> bool:
            try:
                async with connect(ws_url(port, query), origin=origin) as ws:
                    return (await recv_json(ws))["type"] == "subscribed"
            except InvalidStatus as exc:
                assert exc.response.status_code == 403, exc
                assert b"needs an API key or token" in exc.response.body, exc.response.body
                return False

        async def main():
            return {
                "no origin (a script)": await subscribed(None),
                "another site": await subscribed(EVIL),
                "origin null": await subscribed("null"),
                "this server's own page": await subscribed(f"http://127.0.0.1:{port}"),
                "a listed origin": await subscribed(OPS),
                "another site with a token": await subscribed(EVIL, f"token={token()}"),
            }

        got = run(main())
        sse = f"http://127.0.0.1:{port}/api/v1/sse/live"
        with httpx.stream("GET", sse, headers={"Origin": EVIL}, timeout=5) as r:
            sse_foreign = r.status_code
        with httpx.stream("GET", sse, timeout=5) as r:
            sse_script = r.status_code
    assert got == {"no origin (a script)": True, "another site": False, "origin null": False,
                   "this server's own page": True, "a listed origin": bool(cors), "another site with a token": True}
    assert (sse_foreign, sse_script) == (403, 200)


def test_a_name_pointed_at_loopback_is_not_taken_for_the_servers_own_origin(tmp_path):
    """DNS rebinding: a page of `testserver` (Host and Origin agree) on a loopback server is not its own page
    (its own, `http://127.0.0.1:port`, is served: the test above)."""
    app = _streaming_app(tmp_path)
    with TestClient(app) as c:
        with pytest.raises(WebSocketDenialResponse) as info, \
                c.websocket_connect("/api/v1/ws/live", headers={"origin": "http://testserver"}):
            pass
        assert info.value.status_code == 403 and "from a page of http://testserver" in info.value.json()["message"]


# -- the end of a run, through Redis -------------------------------------------------------------------
def _redis_or_skip() -> None:
    reason = redis_unavailable_reason(REDIS_URL)
    if reason:
        pytest.skip(reason)


def _snapshot(running: bool) -> dict:
    return {"running": running, "seq": 1, "signals": [{"intersection_id": "J1", "phase": 0}]}


def _serve_worker(tmp_path, channel: str):
    """A `serve` worker: no live run of its own, the run's messages through Redis."""
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'serve.sqlite'}", jwt_secret=SECRET))
    app.state.streams = StreamHub(redis_url=REDIS_URL, channel=channel, heartbeat_s=5)
    return app


async def _until_subscribed(hub: StreamHub) -> None:
    deadline = time.monotonic() + 5
    while not hub.redis_subscribed:
        assert time.monotonic() < deadline, "the worker did not subscribe to Redis"
        await asyncio.sleep(0.05)


async def _until_closed(ws, timeout_s: float) -> tuple[list[dict], object]:
    seen = []
    with pytest.raises(ConnectionClosed) as info:
        while True:
            seen.append(await recv_json(ws, timeout_s))
    return seen, info.value.rcvd


@pytest.mark.redis
def test_a_serve_workers_streams_end_when_the_run_ends_and_later_clients_get_the_last_snapshot_then_the_end(
        tmp_path):
    _redis_or_skip()
    channel = f"signalwise:test:{uuid.uuid4().hex}"
    app = _serve_worker(tmp_path, channel)
    loop_hub = StreamHub(redis_url=REDIS_URL, channel=channel, profiler_every_s=0.1)  # the `live` process's
    rt = _FakeRuntime()
    loop_hub.attach(rt)
    try:
        with serving(app) as port:
            async def main():
                async with connect(ws_url(port, "topics=snapshot,alert")) as ws, \
                        httpx.AsyncClient(timeout=10) as client, \
                        client.stream("GET", f"http://127.0.0.1:{port}/api/v1/sse/live?topics=alert") as sse:
                    assert (await recv_json(ws))["type"] == "subscribed"
                    await _until_subscribed(app.state.streams)
                    rt.publish("snapshot", _snapshot(True))
                    assert (await recv_json(ws))["data"]["running"] is True
                    rt.publish("snapshot", _snapshot(False))  # the run's last snapshot; its hub then says why
                    rt.status_text = "complete"
                    t0 = time.monotonic()
                    seen, rcvd = await _until_closed(ws, 10)
                    closed_after_s = time.monotonic() - t0
                    sse_lines = [line async for line in sse.aiter_lines()]
                async with connect(ws_url(port)) as late:  # after the end: the last snapshot, then the end
                    assert (await recv_json(late))["type"] == "subscribed"
                    late_seen, late_rcvd = await _until_closed(late, 5)
                return seen, rcvd, closed_after_s, sse_lines, late_seen, late_rcvd

            seen, rcvd, closed_after_s, sse_lines, late_seen, late_rcvd = run(main())
    finally:
        loop_hub.close()
    assert [m["data"]["running"] for m in seen if m["type"] == "snapshot"] == [False]
    assert (rcvd.code, rcvd.reason) == (1001, "the live run ended (complete)") and closed_after_s < 4
    assert "event: end" in sse_lines and any('"code": 1001' in line for line in sse_lines), sse_lines
    assert [(m["type"], m["data"]["running"]) for m in late_seen] == [("snapshot", False)]
    assert (late_rcvd.code, late_rcvd.reason) == (1001, "the live run ended (complete)")


@pytest.mark.redis
def test_a_runs_last_snapshot_alone_ends_a_serve_workers_streams(tmp_path, monkeypatch):
    """A publisher that sends no `end` (its Redis publish dropped, or an older version): `running: false` is
    enough, after END_WAIT_S; and a run that goes on is not ended."""
    _redis_or_skip()
    monkeypatch.setattr(streams_module, "END_WAIT_S", 0.5)
    channel = f"signalwise:test:{uuid.uuid4().hex}"
    app = _serve_worker(tmp_path, channel)
    publisher = StreamHub(redis_url=REDIS_URL, channel=channel)  # no runtime attached: no `end` from it
    try:
        with serving(app) as port:
            async def main():
                async with connect(ws_url(port, "topics=snapshot")) as ws:
                    assert (await recv_json(ws))["type"] == "subscribed"
                    await _until_subscribed(app.state.streams)
                    publisher.publish("snapshot", _snapshot(True))
                    assert (await recv_json(ws))["data"]["running"] is True
                    with pytest.raises(TimeoutError):  # heartbeats every 5 s: nothing ends a running stream
                        await recv_json(ws, 1.0)
                    publisher.publish("snapshot", _snapshot(False))
                    return await _until_closed(ws, 5)

            seen, rcvd = run(main())
    finally:
        publisher.close()
    assert [m["data"]["running"] for m in seen] == [False]
    assert (rcvd.code, rcvd.reason) == (1001, "the live run ended")
