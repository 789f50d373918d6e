"""The Mosquitto the MQTT tests use, on 127.0.0.1:1883: the reason to skip when it does not answer."""

from __future__ import annotations

import contextlib
import json
import socket
import uuid

BROKER = ("127.0.0.1", 1883)


def broker_unavailable_reason() -> str | None:
    """None when the broker accepts a connection, else why the MQTT tests skip."""
    try:
        with socket.create_connection(BROKER, timeout=1.0):
            return None
    except OSError as exc:
        return f"no MQTT broker on {BROKER[0]}:{BROKER[1]} ({exc}); start Mosquitto to run the MQTT tests"


@contextlib.contextmanager
def subscribed_feed(feed):
    """An `MqttFeed` into `feed`, subscribed under a topic tree of its own (the broker is shared), and a
    `publish(device, payload)` that waits for the broker to take each message (QoS 1). Skips without a broker."""
    import paho.mqtt.client as mqtt
    import pytest
    from paho.mqtt.enums import CallbackAPIVersion

    from signalwise.runtime.live.mqtt import MqttFeed

    reason = broker_unavailable_reason()
    if reason:
        pytest.skip(reason)
    prefix = f"signalwise-test-{uuid.uuid4().hex[:8]}"
    sub = MqttFeed(feed, *BROKER, prefix=prefix)  # as `signalwise live --field none --mqtt` builds it
    sub.start()
    assert sub.wait_subscribed(5.0), f"no subscription within 5 s: {sub.stats()}"
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect(*BROKER)
    pub.loop_start()

    def publish(device, payload):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        pub.publish(f"{prefix}/{device}/detectors", data, qos=1).wait_for_publish(2.0)

    try:
        yield sub, publish
    finally:
        pub.loop_stop()
        pub.disconnect()
        sub.stop()
