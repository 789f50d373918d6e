"""The live streams' Redis channel takes no replays and is one per store however its URL is written.

- A signed message read from the channel and published again (a captured alert; a snapshot of a past run saying
  `running: true`) reaches no client: a message older than `MESSAGE_MAX_AGE_S` (10 s) by its `published_at`, or not after
  the last one delivered from its publishing process (`seq`), is dropped and counted (`replayed_from_redis`).
- `postgresql://u@h/db` and `postgresql://u@h:5432/db?connect_timeout=3` name one store, so one channel; a schema
  of its own (`options=-csearch_path=...`) is another store. `/health` shows the channel.

Real uvicorn servers on 127.0.0.1 and the Redis at 127.0.0.1:6379 (skipped, with the reason, when it does not
answer)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time

import httpx
import pytest
from support.loopback import serving_port
from support.migrated_databases import migrated_sqlite
from websockets.asyncio.client import connect

from signalwise.api import create_app
from signalwise.api.streams import channel_name, redis_unavailable_reason, signing_key
from signalwise.store import Settings


def _redis(db: int) -> str:
    url = f"redis://127.0.0.1:6379/{db}"
    reason = redis_unavailable_reason(url)
    if reason:
        pytest.skip(reason)
    return url


async def _recv(ws, timeout: float = 5.0) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message.get("type") != "heartbeat":
            return message


def test_one_store_is_one_channel_however_its_url_is_written():
    def name(url: str) -> str:
        return channel_name(Settings(database_url=url, redis_url="redis://127.0.0.1:6379/0"))

    plain = name("postgresql://signalwise@pg/city")
    assert plain == name("postgresql://signalwise@pg:5432/city")
    assert plain == name("postgresql+psycopg://signalwise:pw@PG:5432/city?connect_timeout=3&sslmode=require"
                         "&application_name=worker-2")
    # a statement_timeout in `options` changes how the connection works, not which store it names
    schema = name("postgresql://signalwise@pg/city?options=-csearch_path%3Dtenant_a")
    assert schema == name("postgresql://signalwise@pg:5432/city?options=-c%20search_path%3Dtenant_a%20"
                          "-c%20statement_timeout%3D5000")
    assert len({plain, schema, name("postgresql://signalwise@pg/city?options=-csearch_path%3Dtenant_b"),
                name("postgresql://signalwise@pg:5433/city"), name("postgresql://signalwise@pg/town")}) == 5


@pytest.mark.redis
def test_health_shows_the_channel(tmp_path):
    url = _redis(5)
    app = create_app(Settings(database_url=migrated_sqlite(tmp_path / "a.db"), redis_url=url))
    with serving_port(app) as port:
        answer = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
    assert answer["checks"]["streams"]["channel"] == app.state.streams.channel
    assert answer["checks"]["streams"]["channel"].startswith("signalwise:live:5:")


@pytest.mark.redis
def test_a_replayed_signed_message_reaches_no_client(tmp_path):
    url = _redis(5)
    secret = secrets.token_hex(32)
    store = migrated_sqlite(tmp_path / "a.db")
    worker_1 = create_app(Settings(database_url=store, redis_url=url, jwt_secret=secret))
    worker_2 = create_app(Settings(database_url=store, redis_url=url, jwt_secret=secret))  # the runtime's process
    channel = worker_1.state.streams.channel
    import redis

    raw = redis.Redis.from_url(url)
    listener = raw.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(channel)  # what someone reading the channel captures
    with serving_port(worker_1) as p1, serving_port(worker_2):
        async def main():
            async with connect(f"ws://127.0.0.1:{p1}/api/v1/ws/live?topics=alert") as ws:
                assert (await _recv(ws))["type"] == "subscribed"
                deadline = time.monotonic() + 5
                while not worker_1.state.streams.redis_subscribed:
                    assert time.monotonic() < deadline, "the hub did not subscribe to Redis"
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(worker_2.state.streams.publish, "alert",
                                        {"rule": "fallback", "metric": "fallback_share", "value": 0.5})
                assert (await _recv(ws))["data"]["rule"] == "fallback"
                captured = None
                for _ in range(50):
                    item = listener.get_message(timeout=0.1)
                    if item is not None:
                        captured = item["data"]
                        break
                assert captured is not None
                raw.publish(channel, captured)  # the same signed message again
                # an old one, signed with the deployment's key (captured long ago), under a new process's id
                key = signing_key(secret)
                old = json.dumps({"topic": "alert", "seq": 1, "published_at": time.time() - 120,
                                  "origin": "a-past-run", "data": {"rule": "stale_data", "level": "critical"}},
                                 separators=(",", ":"))
                raw.publish(channel, hmac.new(key, old.encode(), hashlib.sha256).hexdigest() + old)
                with pytest.raises(TimeoutError):
                    await _recv(ws, 1.0)
                assert worker_1.state.streams.counts["replayed_from_redis"] == 2
                # the deployment's own next message still comes
                await asyncio.to_thread(worker_2.state.streams.publish, "alert",
                                        {"rule": "queue", "metric": "queue_veh", "value": 12})
                assert (await _recv(ws))["data"]["rule"] == "queue"

        asyncio.run(main())
    listener.close()
    raw.close()
