"""The MQTT feed takes a burst whole, and refuses a retained message.

- A burst faster than the feed handles it was partly lost at the broker, unseen: Mosquitto sends a client 20 QoS 1
  messages it has not acknowledged (`max_inflight_messages`) unless the client's MQTT 5 Receive Maximum says more,
  queues the rest, and drops what passes its per-client queue (`max_queued_messages`). Here a Mosquitto of the
  test's own with a queue of 100, a sender in a process of its own publishing 2,000 single-message payloads as fast
  as the broker takes them, and a feed that takes 0.5 ms a payload (a busy machine): every message arrives, and
  the client's counts say so.
- A retained message (the broker's stored copy, delivered on subscribing whenever it was published) is refused,
  counted and named, not taken as the detectors' news: in a trial a retained `sim_time_s` payload kept a
  controller off its fallback for 15 s with no device publishing. Against the Mosquitto on 127.0.0.1:1883.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

from support.mqtt import BROKER, broker_unavailable_reason, free_port, own_mosquitto
from support.waiting import until

from signalwise.core.types import ObservationNeed
from signalwise.runtime.live.feeds import DetectorFeed
from signalwise.runtime.live.mqtt import MqttFeed

SENDER = """
import json, sys
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, topic, device, channel, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
pub.max_queued_messages_set(0)
pub.connect("127.0.0.1", int(port))
pub.loop_start()
infos = [pub.publish(topic, json.dumps({"device_id": device, "channel": channel, "event": "on" if k % 2 == 0
                                        else "off", "sim_time_s": k * 0.01}), qos=1) for k in range(n)]
for info in infos:
    info.wait_for_publish(60)
pub.loop_stop()
pub.disconnect()
"""


class _BusyFeed(DetectorFeed):
    """The run's feed on a busy machine: each payload takes 0.5 ms more to take."""

    def accept(self, *args, **kwargs):
        time.sleep(0.0005)
        return super().accept(*args, **kwargs)


def test_a_burst_of_single_message_payloads_arrives_whole(corridor, tmp_path):
    port = free_port()
    with own_mosquitto(tmp_path, f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100\n"):
        feed = _BusyFeed(corridor)
        prefix = f"signalwise-test-{uuid.uuid4().hex[:8]}"
        sub = MqttFeed(feed, "127.0.0.1", port, prefix=prefix)
        sub.start()
        try:
            assert sub.wait_subscribed(10.0), sub.stats()
            inter = corridor[0]
            channel = inter.detectors[0].channel
            n = 2000
            subprocess.run([sys.executable, "-c", SENDER, str(port), f"{prefix}/{inter.id}/detectors", inter.id,
                            str(channel), str(n)], check=True, timeout=120)
            assert until(lambda: feed.stats()["accepted"] == n, 60.0), (sub.stats(), feed.stats())
            s = sub.stats()
            assert (s["received"], s["messages_received"], s["accepted"], s["dropped"]) == (n, n, n, 0), s
        finally:
            sub.stop()


def test_a_retained_message_is_refused_counted_and_named(corridor):
    reason = broker_unavailable_reason()
    if reason:
        import pytest

        pytest.skip(reason)
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    prefix = f"signalwise-test-{uuid.uuid4().hex[:8]}"
    inter = corridor[0]
    det = next(d for d in inter.detectors if d.kind == "stopbar")
    topic = f"{prefix}/{inter.id}/detectors"
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect(*BROKER)
    pub.loop_start()
    payload = [{"device_id": inter.id, "channel": det.channel, "event": "on", "sim_time_s": 4},
               {"device_id": inter.id, "channel": det.channel, "count_veh": 3, "occupancy": 0.1, "interval_s": 60,
                "sim_time_s": 5}]
    pub.publish(topic, json.dumps(payload), qos=1, retain=True).wait_for_publish(5)
    feed = DetectorFeed(corridor, now=lambda: 6.0)
    sub = MqttFeed(feed, *BROKER, prefix=prefix)
    sub.start()
    try:
        assert sub.wait_subscribed(5.0)
        assert until(lambda: sub.stats()["received"] == 1, 10.0), sub.stats()
        time.sleep(0.5)  # handled by now, if it were taken
        assert feed.stats()["accepted"] == 0, feed.stats()
        s = sub.stats()
        assert (s["received"], s["accepted"], s["retained"]) == (1, 0, 1), s
        assert "retained message" in s["last_error"] and topic in s["last_error"], s["last_error"]
        health = feed.source_health(inter.id, 6.0)
        assert not health.healthy and "no message yet" in health.reason, health
        need = ObservationNeed(detector_idle_ids=(det.id,))
        assert feed.observe(inter, 6.0, need).detector_idle_s == {}
        # the same message published live (no retain flag on delivery) is news
        pub.publish(topic, json.dumps(payload), qos=1).wait_for_publish(5)
        assert until(lambda: sub.stats()["accepted"] == 2, 10.0), sub.stats()
        assert sub.stats()["retained"] == 1
    finally:
        sub.stop()
        pub.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)  # the broker forgets the retained copy
        pub.loop_stop()
        pub.disconnect()
