"""Every GET route answers HEAD with the GET's status and headers and no body: load balancers and uptime monitors
probe with HEAD, and FastAPI's routes answered it 405 (all but /health, which had a HEAD route of its own). A HEAD
is checked and counted as its GET (a key where reads need one; the rate limit of its kind), a streaming GET answers
its headers and ends, and the OpenAPI schema lists no HEAD operation. Against a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import re
import time
import warnings

import httpx
import pytest
from support.loopback import serving, serving_live
from support.migrated_databases import migrated_sqlite

from signalwise.api import create_app
from signalwise.api.auth import app_routes
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

#: answer headers that differ from one call to the next whatever the method
PER_CALL = {"date", "x-ratelimit-remaining", "x-ratelimit-reset"}


def _app(tmp_path, **settings):
    url = migrated_sqlite(tmp_path / "head.db")
    app = create_app(Settings(database_url=url, cache_ttl_s=0, **settings))
    _info, key = create_key(get_engine(url), "probe", ["read", "ingest", "operate", "admin"])
    return app, {"X-API-Key": key}


def _get_paths(app) -> list[str]:
    """Every GET route's path, its parameters filled in (a route with one answers 404 or 422 for them)."""
    paths = {re.sub(r"\{[^}]+\}", "x", p.replace("{path:path}", "dashboard.js")) for m, p in app_routes(app)
             if m == "GET"}
    return sorted(paths)


def _headers(r: httpx.Response, with_length: bool) -> dict:
    return {k: v for k, v in r.headers.items() if k not in PER_CALL and (with_length or k != "content-length")}


def test_every_get_route_answers_head_with_the_gets_status_and_headers_and_no_body(tmp_path):
    app, key = _app(tmp_path)
    paths = _get_paths(app)
    assert {"/health/live", "/health/ready", "/api/v1/keys", "/api/v1/analytics/simulations",
            "/api/v1/sse/live", "/openapi.json", "/"} <= set(paths)
    checked = []
    with serving(app) as base, httpx.Client(base_url=base, headers=key, timeout=10) as c:
        for path in paths:
            first = c.get(path)
            head = c.head(path)
            second = c.get(path)
            # a body that changes between the GETs either side of the HEAD (latencies, CPU, metrics) has no one
            # length to compare: its length may differ by a digit at the HEAD's moment
            same_length = first.content == second.content
            assert head.status_code == second.status_code, (path, head.status_code, second.status_code)
            assert head.content == b"", (path, head.content[:200])
            assert _headers(head, same_length) == _headers(second, same_length), path
            checked.append((path, head.status_code))
    assert ("/health/live", 200) in checked and ("/health/ready", 200) in checked
    assert ("/api/v1/keys", 200) in checked and ("/api/v1/analytics/simulations", 200) in checked
    assert sum(status == 200 for _p, status in checked) > 25, checked


def test_head_needs_the_key_and_counts_against_the_rate_limit_as_its_get(tmp_path):
    # not on loopback: every /api/v1 call needs a key, HEAD too
    app, key = _app(tmp_path, bind_host="0.0.0.0", rate_limits={"read": "3/hour", "admin": "2/hour"})
    with serving(app) as base, httpx.Client(base_url=base, timeout=10) as c:
        anonymous = [c.head("/api/v1/analytics/simulations"), c.get("/api/v1/analytics/simulations")]
        assert [r.status_code for r in anonymous] == [401, 401]
        assert anonymous[0].headers["content-length"] == anonymous[1].headers["content-length"]
        assert c.head("/api/v1/analytics/simulations", headers={"X-API-Key": "sw_0000000000_wrong"}).status_code \
            == 401
        calls = [c.head("/api/v1/analytics/simulations", headers=key),
                 c.get("/api/v1/analytics/simulations", headers=key),
                 c.head("/api/v1/analytics/simulations", headers=key),
                 c.head("/api/v1/analytics/simulations", headers=key),
                 c.get("/api/v1/analytics/simulations", headers=key)]
        assert [r.status_code for r in calls] == [200, 200, 200, 429, 429], [r.status_code for r in calls]
        assert [r.headers["X-RateLimit-Remaining"] for r in calls[:3]] == ["2", "1", "0"]
        assert calls[3].headers["X-RateLimit-Limit"] == "3" and int(calls[3].headers["Retry-After"]) >= 1
        assert calls[3].content == b""
        # an admin read (the keys) counts as admin, HEAD or GET
        keys = [c.head("/api/v1/keys", headers=key), c.get("/api/v1/keys", headers=key),
                c.head("/api/v1/keys", headers=key)]
        assert [r.status_code for r in keys] == [200, 200, 429]
        assert keys[0].headers["X-RateLimit-Limit"] == "2"
        # the open routes are never counted, nor need a key
        assert [c.head("/health/live").status_code for _ in range(5)] == [200] * 5


def test_head_on_a_route_without_get_is_still_refused(tmp_path):
    app, key = _app(tmp_path)
    with serving(app) as base, httpx.Client(base_url=base, headers=key, timeout=10) as c:
        r = c.head("/api/v1/ingest/batch")
        assert r.status_code == 405 and r.headers["allow"] == "POST", (r.status_code, r.headers)
        assert c.head("/api/v1/no-such-route").status_code == 404


def test_the_schema_lists_no_head_operation_and_no_operation_twice(tmp_path):
    app, _key = _app(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FastAPI warns of a duplicate operation id
        spec = app.openapi()
    methods = {m for ops in spec["paths"].values() for m in ops}
    assert "head" not in methods and "get" in methods
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values() if isinstance(op, dict)]
    assert len(ids) == len(set(ids))


@pytest.mark.slow
def test_head_on_the_live_stream_answers_its_headers_and_ends(tmp_path):
    from signalwise.api import create_app

    settings = Settings(database_url=migrated_sqlite(tmp_path / "live.db"))
    app = create_app(settings)
    with serving_live(settings, tmp_path / "run", timeout_s=10, app=app) as (client, _rt):
        get = client.get("/api/v1/live/status")
        assert get.status_code == 200
        started = time.monotonic()
        head = client.head("/api/v1/sse/live")
        assert head.status_code == 200 and head.content == b"", (head.status_code, head.content[:200])
        assert head.headers["content-type"].startswith("text/event-stream")
        assert time.monotonic() - started < 5
        # and the server ends the stream it began for it: no subscriber left behind, heartbeats and all
        deadline = time.monotonic() + 5
        while app.state.streams.stats()["clients"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.state.streams.stats()["clients"] == 0
        # the connection is free again: the next request on it is answered
        assert client.head("/api/v1/live/status").status_code == 200
        assert client.head("/health/live").status_code == 200


def test_head_ends_an_endless_stream_from_a_server_of_any_asgi_spec():
    """A server of ASGI spec 2.4 or later lets Starlette's streaming answer wait for a send to fail rather than
    listen for the client going; HEAD's sends never fail, so the middleware tells the GET the client has gone:
    the stream's generator is closed and the call returns, on either kind of server."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from signalwise.api.middleware import HeadAsGet

    closed = []

    async def endless(request):
        async def lines():
            try:
                while True:
                    yield b"data: tick\n\n"
                    await asyncio.sleep(0.01)
            finally:
                closed.append(True)

        return StreamingResponse(lines(), media_type="text/event-stream")

    app = HeadAsGet(Starlette(routes=[Route("/stream", endless)]))

    async def head(spec_version: str) -> list[dict]:
        sent: list[dict] = []
        never = asyncio.Event()
        asked = [False]

        async def receive():
            if not asked[0]:
                asked[0] = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await never.wait()  # the client stays connected

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": spec_version}, "http_version": "1.1",
                 "method": "HEAD", "scheme": "http", "path": "/stream", "raw_path": b"/stream", "query_string": b"",
                 "root_path": "", "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 1),
                 "server": ("127.0.0.1", 80)}
        await asyncio.wait_for(app(scope, receive, send), timeout=5)
        return sent

    for spec in ("2.3", "2.4"):
        closed.clear()
        sent = asyncio.run(head(spec))
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"], (spec, sent)
        assert sent[0]["status"] == 200 and sent[1]["body"] == b"" and not sent[1].get("more_body")
        assert closed == [True], spec
