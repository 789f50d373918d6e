"""An SSE stream ended because its credential ended (its token expired, its key revoked) does not invite an
EventSource to come back with it: its last `event: error` carries `retry: 86400000` (a day), where the stream's
first event set 3000 ms; the client is to close it and open another with a new token. On a real uvicorn on
127.0.0.1, real keys and tokens signed with the server's secret."""

from __future__ import annotations

import json
import threading
import time

import httpx
from support.loopback import serving_port
from support.migrated_databases import migrated_sqlite
from test_streams import _FakeRuntime  # the stand-in runtime of the other stream tests

from signalwise.api import create_app
from signalwise.api.auth import issue_token
from signalwise.api.streams import StreamHub
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key, revoke_key

SECRET = "s" * 40
HEARTBEAT_S = 0.5


def _app(tmp_path):
    url = migrated_sqlite(tmp_path / "db.sqlite")
    app = create_app(Settings(database_url=url, jwt_secret=SECRET, bind_host="0.0.0.0"))
    app.state.streams = StreamHub(heartbeat_s=HEARTBEAT_S)
    app.state.live = _FakeRuntime()
    return app, get_engine(url)


def _events(port: int, query: str, headers: dict, timeout_s: float, *, expired_ok: bool = False) -> list[dict] | None:
    """Every event of an SSE stream until the server ends it: its fields (`event`, `data`, `retry`, ...). With
    `expired_ok`, None when the server refused to open it because its token had expired already."""
    events: list[dict] = []
    url = f"http://127.0.0.1:{port}/api/v1/sse/live?topics=alert" + (f"&{query}" if query else "")
    deadline_s = time.monotonic() + timeout_s
    with httpx.Client(timeout=timeout_s) as client, client.stream("GET", url, headers=headers) as answer:
        if expired_ok and answer.status_code == 401 and b"token expired" in answer.read():
            return None
        assert answer.status_code == 200, answer.read()
        fields: dict = {}
        for line in answer.iter_lines():
            assert time.monotonic() < deadline_s, f"still streaming after {timeout_s} s: {events[-3:]}"
            if not line:
                if fields:
                    events.append(fields)
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
    return events


def _ended_for_its_credential(events: list[dict], reason: str) -> None:
    assert events[0]["event"] == "subscribed" and events[0]["retry"] == "3000", events[0]
    last = events[-1]
    assert last["event"] == "error", events
    error = json.loads(last["data"])
    assert error["code"] == 1008 and reason in error["reason"], error
    assert last.get("retry") == "86400000", last


def _stream_outliving_its_token(port: int, info) -> list[dict]:  # noqa: ANN001
    """The events of a stream opened with a short-lived token that expires while it streams. A token expires on a
    whole second (JWT's `exp`): one of 2 s lives 1 to 2 s, and a loaded machine may take longer than that to open
    the stream, which the server then rightly refuses (401 token expired) before streaming: that stream never
    opened with a valid token, so a token of twice the life is tried."""
    for ttl_s in (2, 4, 8, 16):
        token, _exp = issue_token(info, SECRET, ttl_s)
        events = _events(port, f"token={token}", {}, ttl_s + 13, expired_ok=True)
        if events is not None:
            return events
    raise AssertionError("every token expired before its stream opened")


def test_an_sse_stream_whose_token_expires_ends_without_inviting_a_retry(tmp_path):
    app, engine = _app(tmp_path)
    info, _key = create_key(engine, "wall", ["read"])
    with serving_port(app) as port:
        events = _stream_outliving_its_token(port, info)
    _ended_for_its_credential(events, "token expired")
    assert "POST /api/v1/auth/token" in json.loads(events[-1]["data"])["reason"]  # where a new one comes from


def test_an_sse_stream_whose_key_is_revoked_ends_without_inviting_a_retry(tmp_path):
    app, engine = _app(tmp_path)
    _info, key = create_key(engine, "wall", ["read"])

    def revoke_later() -> None:
        time.sleep(3 * HEARTBEAT_S)
        revoke_key(engine, "wall")

    with serving_port(app) as port:
        threading.Thread(target=revoke_later, daemon=True).start()
        events = _events(port, "", {"X-API-Key": key}, 15)
    _ended_for_its_credential(events, "revoked")
