"""The live streams' Redis channel is the deployment's own and its messages are signed; a server holds a bounded
number of stream clients.

- Redis delivers pub/sub across its database numbers: two deployments on one Redis derive two channel names
  (the Redis database number and the store), so one never feeds the other's streams; the processes of one
  deployment (same store, same secret) share theirs.
- With SIGNALWISE_JWT_SECRET set, every message on the channel carries an HMAC under a key derived from it: a
  message PUBLISHed by anyone else (unsigned, or signed with another key), on the channel or on the old fixed
  `signalwise:live`, reaches no client.
- Past SIGNALWISE_STREAM_CLIENTS_MAX clients, a new one without a key is refused (WebSocket close 1013 with the
  reason, SSE 503 with Retry-After); one with a key still gets in, up to twice as many.

Real uvicorn servers on 127.0.0.1 and the Redis at 127.0.0.1:6379 (skipped, with the reason, when it does not
answer); no live run is attached: with Redis a server serves streams from the channel alone."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path

import httpx
import pytest
from support.loopback import serving_port
from support.migrated_databases import migrated_sqlite
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from signalwise.api import create_app
from signalwise.api.streams import channel_name, redis_unavailable_reason
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

pytestmark = pytest.mark.redis


def _redis(db: int) -> str:
    url = f"redis://127.0.0.1:6379/{db}"
    reason = redis_unavailable_reason(url)
    if reason:
        pytest.skip(reason)
    return url


def _ws(port: int, query: str = "topics=alert") -> str:
    return f"ws://127.0.0.1:{port}/api/v1/ws/live?{query}"


async def _recv(ws, timeout: float = 5.0) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message.get("type") != "heartbeat":
            return message


async def _subscribed(apps) -> None:
    deadline = time.monotonic() + 5
    while not all(a.state.streams.redis_subscribed for a in apps):
        assert time.monotonic() < deadline, "hubs did not subscribe to Redis"
        await asyncio.sleep(0.05)


def test_channel_names_keep_deployments_apart_and_share_one_deployments(tmp_path):
    a = Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}", redis_url="redis://127.0.0.1:6379/5")
    same = Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}", redis_url="redis://:pw@127.0.0.1:6379/5")
    other_db = Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}", redis_url="redis://127.0.0.1:6379/1")
    other_store = Settings(database_url=f"sqlite:///{tmp_path / 'b.db'}", redis_url="redis://127.0.0.1:6379/5")
    assert channel_name(a) == channel_name(same) and channel_name(a).startswith("signalwise:live:5:")
    assert len({channel_name(a), channel_name(other_db), channel_name(other_store)}) == 3
    assert channel_name(other_db).startswith("signalwise:live:1:")
    # the password of the database URL changes nothing (and is not what the name is made from)
    pg = "postgresql+psycopg://signalwise:{}@postgres:5432/signalwise"
    assert channel_name(Settings(database_url=pg.format("one"))) == channel_name(Settings(database_url=pg.format("two")))
    assert channel_name(Settings(stream_channel="city:prod:live")) == "city:prod:live"
    # one store, however its URL is written
    assert channel_name(Settings(database_url="postgresql://signalwise:x@pg:5432/city")) == \
        channel_name(Settings(database_url="postgresql+psycopg://signalwise@pg:5432/city"))
    relative = Settings(database_url="sqlite:///a.db")
    assert channel_name(relative) == channel_name(Settings(database_url=f"sqlite:///{Path('a.db').resolve()}"))
    schema = "postgresql+psycopg://signalwise@pg:5432/city?options=-csearch_path%3D"
    assert channel_name(Settings(database_url=schema + "staging")) != \
        channel_name(Settings(database_url=schema + "production"))


def test_another_deployment_and_an_unsigned_publisher_reach_no_client(tmp_path):
    url5, url6 = _redis(5), _redis(6)
    secret, other_secret = secrets.token_hex(32), secrets.token_hex(32)
    store_a = migrated_sqlite(tmp_path / "a.db")
    worker_1 = create_app(Settings(database_url=store_a, redis_url=url5, jwt_secret=secret))
    worker_2 = create_app(Settings(database_url=store_a, redis_url=url5, jwt_secret=secret))  # same deployment
    other = create_app(Settings(database_url=migrated_sqlite(tmp_path / "c.db"), redis_url=url6,
                                jwt_secret=other_secret))
    channel = worker_1.state.streams.channel
    assert channel == worker_2.state.streams.channel != other.state.streams.channel
    import redis

    raw = redis.Redis.from_url(url5)
    with serving_port(worker_1) as p1, serving_port(worker_2) as p2, serving_port(other) as p3:
        async def main():
            async with connect(_ws(p1)) as w1, connect(_ws(p2)) as w2, connect(_ws(p3)) as w3:
                for ws in (w1, w2, w3):
                    assert (await _recv(ws))["type"] == "subscribed"
                await _subscribed([worker_1, worker_2, other])
                # forged: the reviewer's message, unsigned, on the deployment's channel, on the old fixed name,
                # and one signed with another deployment's key
                forged = {"topic": "alert", "seq": 1, "published_at": time.time(), "origin": "evil",
                          "data": {"type": "alert", "name": "stale_data", "level": "critical",
                                   "message": "INJECTED: all signals dark"}}
                text = json.dumps(forged)
                assert raw.publish(channel, text) >= 2  # both workers of the deployment hear it
                raw.publish("signalwise:live", text)
                import hashlib
                import hmac

                from signalwise.api.streams import signing_key
                wrong = hmac.new(signing_key(other_secret), text.encode(), hashlib.sha256).hexdigest()
                raw.publish(channel, wrong + text)
                # the deployment's own process publishes: its other worker delivers it, the other deployment not
                await asyncio.to_thread(worker_2.state.streams.publish, "alert",
                                        {"rule": "fallback", "metric": "fallback_share", "value": 0.5})
                got = [await _recv(w1), await _recv(w2)]
                assert [m["data"].get("rule") for m in got] == ["fallback", "fallback"], got
                for ws in (w1, w2, w3):
                    with pytest.raises(TimeoutError):  # nothing forged came before or after it
                        await _recv(ws, 0.5)
                assert worker_1.state.streams.counts["refused_from_redis"] == 2
                assert worker_1.state.streams.stats()["redis"]["signed"] is True

        asyncio.run(main())
    raw.close()


def test_past_the_client_limit_an_anonymous_stream_is_refused_and_a_keyed_one_is_not(tmp_path):
    url = _redis(5)
    store = migrated_sqlite(tmp_path / "api.db")
    _info, key = create_key(get_engine(store), "dashboard", ["read"])
    app = create_app(Settings(database_url=store, redis_url=url, stream_clients_max=2))
    with serving_port(app) as port:
        async def main():
            async with connect(_ws(port)) as first, connect(_ws(port)) as second:
                for ws in (first, second):
                    assert (await _recv(ws))["type"] == "subscribed"
                async with connect(_ws(port)) as third:
                    with pytest.raises(ConnectionClosed) as closed:
                        await _recv(third)
                assert closed.value.rcvd.code == 1013
                assert "too many stream clients (2, SIGNALWISE_STREAM_CLIENTS_MAX=2)" in closed.value.rcvd.reason
                async with httpx.AsyncClient(timeout=5) as client:
                    sse = await client.get(f"http://127.0.0.1:{port}/api/v1/sse/live")
                assert sse.status_code == 503 and sse.headers["retry-after"] == "5"
                assert "too many stream clients" in sse.json()["message"]
                # a key still gets in (an anonymous flood does not shut the operators out)
                async with connect(_ws(port), additional_headers={"X-API-Key": key}) as keyed:
                    assert (await _recv(keyed))["type"] == "subscribed"
                    async with connect(_ws(port), additional_headers={"X-API-Key": key}) as keyed_2:
                        assert (await _recv(keyed_2))["type"] == "subscribed"
                        async with connect(_ws(port), additional_headers={"X-API-Key": key}) as keyed_3:
                            with pytest.raises(ConnectionClosed) as closed:
                                await _recv(keyed_3)
                        assert closed.value.rcvd.code == 1013
            # the clients gone, an anonymous one is taken again
            await asyncio.sleep(0.2)
            async with connect(_ws(port)) as again:
                assert (await _recv(again))["type"] == "subscribed"

        asyncio.run(main())
