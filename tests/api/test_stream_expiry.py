"""An open stream lasts no longer than its credential: a WebSocket or SSE stream ends at its token's `exp`, and
soon after its key (or its token's key) is revoked, with the reason. On a real uvicorn on 127.0.0.1, with real
keys and tokens from POST /api/v1/auth/token."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import jwt
import pytest
from support.loopback import serving_port
from support.migrated_databases import migrated_sqlite
from test_streams import _FakeRuntime  # the stand-in runtime of the other stream tests
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from signalwise.api import create_app
from signalwise.api.streams import StreamHub
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key, revoke_key

TOKEN_TTL_S = 3  # below Settings' floor of 30 s, set on a copy: a test cannot wait half a minute
HEARTBEAT_S = 0.5


def _app(tmp_path, token_ttl_s: int = 900):
    url = migrated_sqlite(tmp_path / "db.sqlite")
    settings = Settings(database_url=url, jwt_secret="s" * 40).model_copy(update={"token_ttl_s": token_ttl_s})
    app = create_app(settings)
    app.state.streams = StreamHub(heartbeat_s=HEARTBEAT_S)
    app.state.live = _FakeRuntime()
    engine = get_engine(url)
    keys = {name: create_key(engine, name, scopes)[1]
            for name, scopes in (("wall", ["read"]), ("boss", ["admin"]))}
    return app, engine, keys


def _token(port: int, key: str) -> dict:
    answer = httpx.post(f"http://127.0.0.1:{port}/api/v1/auth/token", headers={"X-API-Key": key})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _exp_s(token: dict) -> int:
    return jwt.decode(token["access_token"], options={"verify_signature": False})["exp"]


async def _ws_until_closed(ws, timeout_s: float) -> tuple[list[dict], int, str]:
    """Every message until the server closes the stream: (messages, close code, reason)."""
    messages = []
    try:
        async with asyncio.timeout(timeout_s):
            async for text in ws:
                messages.append(json.loads(text))
    except ConnectionClosed:
        pass
    return messages, ws.close_code, ws.close_reason


def _sse_until_error(port: int, query: str, headers: dict, timeout_s: float) -> tuple[list[str], dict]:
    """The event names of an SSE stream until its `event: error`, and that event's data."""
    events: list[str] = []
    url = f"http://127.0.0.1:{port}/api/v1/sse/live?topics=alert" + (f"&{query}" if query else "")
    deadline_s = time.monotonic() + timeout_s  # heartbeats come every HEARTBEAT_S: a read timeout never fires
    with httpx.Client(timeout=timeout_s) as client, client.stream("GET", url, headers=headers) as answer:
        assert answer.status_code == 200, answer.read()
        event = None
        for line in answer.iter_lines():
            assert time.monotonic() < deadline_s, f"still streaming after {timeout_s} s: {events[-3:]}"
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
                events.append(event)
            elif line.startswith(": "):
                events.append(line)
            elif line.startswith("data: ") and event == "error":
                return events, json.loads(line.removeprefix("data: "))
    raise AssertionError(f"the stream ended without an error event: {events}")


@pytest.mark.slow
def test_a_stream_is_closed_at_its_tokens_exp_with_the_reason_or_at_a_newer_tokens_it_sent(tmp_path):
    """Side by side on one server, each with a token of its own (each waits for its own token's `exp`): a
    WebSocket with its token in the query, one with it in the first message, and an SSE stream, each ended at
    its token's `exp`; and a WebSocket that sends a newer token halfway, which goes on to that token's `exp`."""
    app, _engine, keys = _app(tmp_path, TOKEN_TTL_S)
    with serving_port(app) as port:
        tokens = {how: _token(port, keys["wall"]) for how in ("query", "first message", "sse")}
        for how, token in tokens.items():
            assert token["expires_in"] <= TOKEN_TTL_S, how

        async def websocket(how: str) -> tuple[list[dict], int, str, float]:
            token = tokens[how]
            query = f"&token={token['access_token']}" if how == "query" else ""
            async with connect(f"ws://127.0.0.1:{port}/api/v1/ws/live?topics=alert{query}") as ws:
                if how == "first message":
                    await ws.send(json.dumps({"token": token["access_token"]}))
                messages, code, reason = await _ws_until_closed(ws, TOKEN_TTL_S + 5)
            return messages, code, reason, time.time()

        async def renewed() -> tuple[int, str, dict, float]:
            # its own token, taken as it connects: one taken with the others ages while they connect, and on a
            # loaded machine it had expired before the newer one was sent
            tokens["renewed"] = first = await asyncio.to_thread(_token, port, keys["wall"])
            async with connect(f"ws://127.0.0.1:{port}/api/v1/ws/live?topics=alert&token={first['access_token']}") \
                    as ws:
                assert json.loads(await ws.recv())["type"] == "subscribed"
                # the newer token is asked for as soon as its `exp` can be a whole second later than the first's
                await asyncio.sleep(max(0.0, _exp_s(first) - TOKEN_TTL_S + 1.05 - time.time()))
                newer = await asyncio.to_thread(_token, port, keys["wall"])
                await ws.send(json.dumps({"token": newer["access_token"]}))
                _messages, code, reason = await _ws_until_closed(ws, 2 * TOKEN_TTL_S + 5)
            return code, reason, newer, time.time()

        async def main():
            return await asyncio.gather(
                websocket("query"), websocket("first message"),
                asyncio.to_thread(_sse_until_error, port, f"token={tokens['sse']['access_token']}", {},
                                  TOKEN_TTL_S + 5),
                renewed())

        *closed, (events, error), (code, reason, newer, renewed_closed_s) = asyncio.run(main())
    for how, (messages, code_, reason_, closed_s) in zip(("query", "first message"), closed, strict=True):
        token = tokens[how]
        assert code_ == 1008, (how, code_, reason_)
        assert reason_.startswith("token expired"), (how, reason_)
        assert messages[0]["type"] == "subscribed", how
        assert any(m["type"] == "heartbeat" for m in messages), how  # served until then
        assert _exp_s(token) <= closed_s <= _exp_s(token) + 1.5, how  # at `exp`, not a heartbeat (or more) later
    # the SSE stream ends with an event saying why
    assert events[0] == "subscribed" and ": heartbeat" in events
    assert error["code"] == 1008 and error["reason"].startswith("token expired"), error
    # the renewed WebSocket: past the first token's `exp`, at the newer's
    assert code == 1008 and reason.startswith("token expired"), ("renewed", code, reason)
    assert _exp_s(newer) >= _exp_s(tokens["renewed"]) + 1
    assert _exp_s(newer) <= renewed_closed_s <= _exp_s(newer) + 1.5, "renewed"


def test_a_websocket_stream_is_closed_soon_after_its_key_is_revoked(tmp_path):
    """Both credentials side by side on one server: a token of the key in the query, and the key itself in
    X-API-Key; one revocation of the key ends both."""
    app, _engine, keys = _app(tmp_path)
    with serving_port(app) as port:
        url = f"ws://127.0.0.1:{port}/api/v1/ws/live?topics=alert"
        token = _token(port, keys["wall"])["access_token"]

        async def main():
            async with connect(f"{url}&token={token}") as by_token, \
                    connect(url, additional_headers={"X-API-Key": keys["wall"]}) as by_key:
                streams = {"token": by_token, "X-API-Key": by_key}
                for credential, ws in streams.items():
                    assert json.loads(await ws.recv())["type"] == "subscribed", credential
                await asyncio.sleep(3 * HEARTBEAT_S)  # checked at heartbeats, and not closed while active
                for credential, ws in streams.items():
                    assert ws.close_code is None, credential
                answer = await asyncio.to_thread(
                    httpx.delete, f"http://127.0.0.1:{port}/api/v1/keys/wall", headers={"X-API-Key": keys["boss"]})
                assert answer.status_code == 200, answer.text
                revoked_s = time.monotonic()

                async def closed(ws):
                    _messages, code, reason = await _ws_until_closed(ws, 10)
                    return code, reason, time.monotonic() - revoked_s

                return dict(zip(streams, await asyncio.gather(*map(closed, streams.values())), strict=True))

        ends = asyncio.run(main())
    for credential, (code, reason, after_s) in ends.items():
        assert code == 1008 and "'wall'" in reason and "revoked" in reason, (credential, code, reason)
        assert after_s <= 2 * HEARTBEAT_S + 1, (credential, after_s)


def test_an_sse_stream_ends_soon_after_its_tokens_key_is_revoked(tmp_path):
    """Revoked with `signalwise keys revoke` (the store's revoke_key), not through this server: found by the
    check at a heartbeat."""
    app, engine, keys = _app(tmp_path)
    revoked_s: list[float] = []

    def revoke_later() -> None:
        time.sleep(3 * HEARTBEAT_S)  # checked at heartbeats, and not ended while the key is active
        revoke_key(engine, "wall")
        revoked_s.append(time.monotonic())

    with serving_port(app) as port:
        token = _token(port, keys["wall"])["access_token"]
        threading.Thread(target=revoke_later, daemon=True).start()
        events, error = _sse_until_error(port, f"token={token}", {}, 15)
        ended_s = time.monotonic()
    assert revoked_s, "the stream ended before the key was revoked"
    assert ended_s - revoked_s[0] <= 2 * HEARTBEAT_S + 1
    assert events[0] == "subscribed"
    assert error["code"] == 1008 and "'wall'" in error["reason"] and "revoked" in error["reason"], error
