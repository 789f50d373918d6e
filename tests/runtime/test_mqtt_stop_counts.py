"""The MQTT client's stop is bounded, and every payload received is counted once.

Found in a review: a live run's end left the payloads still in the client's intake queue to a thread `stop` waited
30 s for, and those handled after the run's last drain were taken by the feed but never reached events.csv, nor
did any count say so. Here the Mosquitto on 127.0.0.1:1883 (skipped when it does not answer):

- an `MqttFeed` into a feed that takes 20 ms a payload (a feed far slower than the intake's 3,700 payloads/s)
  holds 300 payloads when it is stopped: `stop` returns within STOP_WAIT_S (and a margin for a loaded machine),
  and received = handled + discarded_at_stop, with the feed's accepted messages those handled;
- a real `signalwise live --field none --mqtt` stopped with SIGINT while a burst arrives: its run.json says, under
  `feeds.mqtt`, how every payload received was counted, and every message the feed accepted is in events.csv.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
import uuid

import pytest
import yaml
from support.mqtt import BROKER, broker_unavailable_reason, live_status, start_feed_live
from support.waiting import until

from signalwise.runtime.live.feeds import DetectorFeed
from signalwise.runtime.live.mqtt import STOP_WAIT_S, MqttFeed

#: publishes argv[4] on/off events of J1's channel 1, one a payload at QoS 1, from simulation second argv[3] on
SENDER = """
import json, sys
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, topic, t0, n = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
pub.max_queued_messages_set(0)
pub.connect("127.0.0.1", port)
pub.loop_start()
infos = [pub.publish(topic, json.dumps({"device_id": "J1", "channel": 1, "event": "on" if k % 2 == 0 else "off",
                                        "sim_time_s": round(t0 + k * 0.001, 3)}), qos=1) for k in range(n)]
for info in infos:
    info.wait_for_publish(60)
pub.loop_stop()
pub.disconnect()
"""


def _skip_without_broker() -> None:
    reason = broker_unavailable_reason()
    if reason:
        pytest.skip(reason)


class _SlowFeed(DetectorFeed):
    """A feed that takes 20 ms a payload: the intake cannot empty its queue within the stop's bound."""

    def accept(self, *args, **kwargs):
        time.sleep(0.02)
        return super().accept(*args, **kwargs)


@pytest.mark.slow
def test_stop_is_bounded_and_counts_what_it_did_not_hand_over(corridor):
    _skip_without_broker()
    feed = _SlowFeed(corridor, now=lambda: 100.0)
    prefix = f"signalwise-test-{uuid.uuid4().hex[:8]}"
    sub = MqttFeed(feed, *BROKER, prefix=prefix)
    sub.start()
    try:
        assert sub.wait_subscribed(5.0), sub.stats()
        n = 300
        subprocess.run([sys.executable, "-c", SENDER, str(BROKER[1]), f"{prefix}/J1/detectors", "50", str(n)],
                       check=True, timeout=60)
        assert until(lambda: sub.stats()["received"] == n, 20.0), sub.stats()
    finally:
        began = time.monotonic()
        sub.stop()
        took_s = time.monotonic() - began
    assert took_s < STOP_WAIT_S + 0.5, f"stop took {took_s:.2f} s"
    s = sub.stats()
    assert s["queued"] == 0 and s["retained"] == 0 and s["dropped"] == 0, s
    assert s["handled"] + s["discarded_at_stop"] == s["received"] == n, s
    assert 0 < s["handled"] < n, s  # some handed over, the rest (≈ 10 s of this feed's work) discarded
    assert feed.stats()["accepted"] == s["accepted"] == s["handled"], (feed.stats(), s)
    time.sleep(0.3)  # nothing is handed over after `stop` returned
    assert sub.stats()["handled"] == s["handled"] and feed.stats()["accepted"] == s["handled"]
    sub.stop()  # a second stop (the command's, after the run's end) does nothing
    assert sub.stats() == s




@pytest.mark.slow
def test_a_live_run_stopped_during_a_burst_counts_every_payload(tmp_path):
    _skip_without_broker()
    prefix = f"signalwise-test-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "live.yaml"
    config.write_text(yaml.safe_dump({"mqtt_topic_prefix": prefix}))
    proc, base = start_feed_live(tmp_path, BROKER[1], "--config", str(config))
    sender = None
    try:
        assert until(lambda: (s := live_status(base)) is not None and s["feeds"]["mqtt"]["connected"], 90), \
            proc.stderr.read() if proc.poll() is not None else "no status"
        assert until(lambda: live_status(base)["sim_time_s"] > 2, 30)
        t0 = live_status(base)["sim_time_s"] + 0.5
        n = 4000  # about a second of the intake's rate: still arriving when the run stops
        sender = subprocess.Popen([sys.executable, "-c", SENDER, str(BROKER[1]), f"{prefix}/J1/detectors", str(t0),
                                   str(n)])
        assert until(lambda: live_status(base)["feeds"]["mqtt"]["received"] >= 200, 30), live_status(base)["feeds"]
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if sender is not None:
            sender.wait(timeout=60)
    (run_dir,) = (tmp_path / "runs").iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "stopped", run
    m = run["feeds"]["mqtt"]
    assert m["received"] >= 200 and m["queued"] == 0, m
    assert m["received"] == m["handled"] + m["retained"] + m["dropped"] + m["discarded_at_stop"], m
    assert m["messages_received"] == m["accepted"] + m["rejected"], m
    with open(run_dir / "events.csv") as fh:
        logged = sum(1 for row in csv.DictReader(fh) if row["DeviceId"] == "J1" and row["EventId"] in ("81", "82"))
    # every message taken reached the log (none taken after its last drain): on/off in turn, none a repeat
    assert logged == m["accepted"] == run["feeds"]["detectors"]["accepted"], (logged, m)
