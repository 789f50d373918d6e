"""How old a message on the live streams' Redis channel may be is a setting: `stream_message_max_age_s`.

A hub takes a message older than the limit (by its `published_at`) for a replay and drops it: the limit was a
constant (10 s), too short for hosts whose clocks drift apart and too long for a deployment that wants the replay
window narrow. Here the setting reaches the hub of the app `create_app` makes: a message older than the configured
limit is dropped and counted, a younger one reaches a client, through the hub itself (always) and through the Redis
at 127.0.0.1:6379 between two real servers (skipped, with the reason, when it does not answer). A bad value is
refused with one line naming the variable.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from support.loopback import serving_port
from support.migrated_databases import migrated_sqlite
from support.mqtt import free_port
from websockets.asyncio.client import connect

from signalwise.api import create_app
from signalwise.api.streams import Message, redis_unavailable_reason, signing_key
from signalwise.store import Settings


def _alert(rule: str, age_s: float, seq: int, origin: str = "the-loop") -> Message:
    return Message(topic="alert", seq=seq, published_at=time.time() - age_s, data={"rule": rule}, origin=origin)


def _rules_queued(client) -> list[str]:
    return [json.loads(text)["data"]["rule"] for _topic, _seq, text in client._buf]


def test_the_setting_sets_the_age_beyond_which_a_message_from_the_channel_is_dropped(tmp_path):
    store = migrated_sqlite(tmp_path / "a.db")
    hub = create_app(Settings(database_url=store, stream_message_max_age_s=3)).state.streams
    assert hub.stats()["redis"]["message_max_age_s"] == 3
    client = hub.subscribe("ws", ["alert"], None)
    assert not hub.take_from_redis(_alert("four-s-old", 4.0, seq=1))
    assert hub.take_from_redis(_alert("two-s-old", 2.0, seq=2))
    assert not hub.take_from_redis(_alert("four-s-ahead", -4.0, seq=3))  # another host's clock, as far ahead
    assert _rules_queued(client) == ["two-s-old"]
    assert (hub.counts["from_redis"], hub.counts["replayed_from_redis"]) == (1, 2)
    # by default (10 s) the same four-second-old message is delivered
    default = create_app(Settings(database_url=store)).state.streams
    listener = default.subscribe("ws", ["alert"], None)
    assert default.message_max_age_s == 10 and default.take_from_redis(_alert("four-s-old", 4.0, seq=1))
    assert _rules_queued(listener) == ["four-s-old"]


@pytest.mark.parametrize(("value", "says"), [("0", "greater than 0"), ("-5", "greater than 0"),
                                             ("7200", "less than or equal to 3600"), ("nan", "finite number"),
                                             ("ten", "valid number")])
def test_a_bad_value_is_refused(monkeypatch, value, says):
    monkeypatch.setenv("SIGNALWISE_STREAM_MESSAGE_MAX_AGE_S", value)
    with pytest.raises(ValidationError, match=says):
        Settings()


@pytest.mark.slow
def test_serve_refuses_a_bad_value_with_one_line(tmp_path):
    env = {**os.environ, "SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}",
           "SIGNALWISE_STREAM_MESSAGE_MAX_AGE_S": "0"}
    done = subprocess.run([str(Path(sys.executable).with_name("signalwise")), "serve", "--port", str(free_port())],
                          env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [
        "error: SIGNALWISE_STREAM_MESSAGE_MAX_AGE_S: Input should be greater than 0"], done.stderr[-2000:]


async def _next_alert(ws, timeout: float) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message.get("type") == "alert":
            return message


@pytest.mark.slow
@pytest.mark.redis
def test_over_redis_an_older_message_is_dropped_and_a_younger_one_delivered(tmp_path):
    url = "redis://127.0.0.1:6379/5"
    reason = redis_unavailable_reason(url)
    if reason:
        pytest.skip(reason)
    import redis

    secret = secrets.token_hex(32)
    app = create_app(Settings(database_url=migrated_sqlite(tmp_path / "a.db"), redis_url=url, jwt_secret=secret,
                              stream_message_max_age_s=3))
    hub = app.state.streams
    key = signing_key(secret)
    raw = redis.Redis.from_url(url)

    def send(rule: str, age_s: float, seq: int) -> None:
        text = json.dumps({"topic": "alert", "seq": seq, "published_at": time.time() - age_s, "origin": "the-loop",
                           "data": {"rule": rule}}, separators=(",", ":"))
        raw.publish(hub.channel, hmac.new(key, text.encode(), hashlib.sha256).hexdigest() + text)

    with serving_port(app) as port:
        async def main():
            async with connect(f"ws://127.0.0.1:{port}/api/v1/ws/live?topics=alert") as ws:
                deadline = time.monotonic() + 5
                while not hub.redis_subscribed:
                    assert time.monotonic() < deadline, "the hub did not subscribe to Redis"
                    await asyncio.sleep(0.05)
                send("five-s-old", 5.0, seq=1)
                send("one-s-old", 1.0, seq=2)
                assert (await _next_alert(ws, 5.0))["data"]["rule"] == "one-s-old"

        asyncio.run(main())
    raw.close()
    assert (hub.counts["from_redis"], hub.counts["replayed_from_redis"]) == (1, 1)
