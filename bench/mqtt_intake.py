"""How fast the MQTT detector feed takes single-message payloads, and how many a burst loses.

A private Mosquitto with its default limits (per-client queue of 1,000 messages, 20 in flight) on a free loopback
port, the live run's `MqttFeed` into a `DetectorFeed` of the built-in corridor, and a publisher that sends N
payloads of `--batch` event messages each at QoS 1 as fast as the broker takes them. Prints what the feed received
and accepted, and the intake rate (messages taken per second, from the first message received to the last).

    .venv/bin/python bench/mqtt_intake.py --messages 10000 --batch 1
    .venv/bin/python bench/mqtt_intake.py --messages 10000 --batch 100

Loopback only; needs the `mosquitto` program.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

#: the sender: N messages in payloads of BATCH, QoS 1, as fast as the broker takes them; prints the payloads and
#: the seconds it took (every payload acknowledged by the broker)
_SENDER = """
import json, sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, topic, device, channels, n, batch = sys.argv[1:]
port, n, batch, channels = int(port), int(n), int(batch), [int(c) for c in channels.split(",")]
pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
pub.max_queued_messages_set(0)
pub.connect("127.0.0.1", port)
pub.loop_start()
infos, buf = [], []
start = time.monotonic()
for k in range(n):  # distinct times: no message repeats another
    buf.append({"device_id": device, "channel": channels[k % len(channels)],
                "event": "on" if (k // len(channels)) % 2 == 0 else "off", "sim_time_s": k * 0.001})
    if len(buf) == batch or k == n - 1:
        infos.append(pub.publish(topic, json.dumps(buf if len(buf) > 1 else buf[0]), qos=1))
        buf = []
for info in infos:
    info.wait_for_publish(120)
print(len(infos), time.monotonic() - start)
pub.loop_stop()
pub.disconnect()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _corridor():
    from signalwise.envs.episode import probe_network
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.loop import resolve_scenario
    from signalwise.sim.detectors import plan_detectors

    cfg = RunConfig(scenario="corridor")
    scenario = resolve_scenario(cfg)
    inters, _lengths = probe_network(cfg, scenario)
    by_tls = plan_detectors(scenario.net_file)
    return [dataclasses.replace(i, detectors=by_tls.get(i.id, ())) for i in inters]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=10_000, help="detector messages in all (at most 100,000)")
    ap.add_argument("--batch", type=int, default=1, help="messages per payload (1: one message per payload)")
    args = ap.parse_args()
    n = min(args.messages, 100_000)

    from signalwise.runtime.live.feeds import DetectorFeed
    from signalwise.runtime.live.mqtt import MqttFeed

    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(("user root\n" if os.geteuid() == 0 else "") + f"listener {port} 127.0.0.1\n"
                        "allow_anonymous true\npersistence false\n")
        broker = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
                if time.monotonic() > deadline:
                    raise SystemExit("mosquitto did not start")
                time.sleep(0.05)
            inters = _corridor()
            device = inters[0].id
            channels = sorted(d.channel for d in inters[0].detectors)
            feed = DetectorFeed(inters)
            prefix = f"bench-{uuid.uuid4().hex[:8]}"
            sub = MqttFeed(feed, "127.0.0.1", port, prefix=prefix)
            sub.start()
            if not sub.wait_subscribed(10):
                raise SystemExit(f"no subscription: {sub.stats()}")
            # the sender in a process of its own, as a field gateway is: it does not share this one's interpreter
            sender = subprocess.Popen([sys.executable, "-c", _SENDER, str(port), f"{prefix}/{device}/detectors",
                                       device, ",".join(map(str, channels)), str(n), str(args.batch)],
                                      stdout=subprocess.PIPE, text=True)
            first_at = last_at = None
            last, still_since = 0, time.monotonic()
            while sender.poll() is None or time.monotonic() - still_since < 2.0:  # until 2 s without news
                time.sleep(0.01)
                got = feed.stats()["accepted"]
                if got != last:
                    now = time.monotonic()
                    first_at = first_at or now
                    last_at, last, still_since = now, got, now
            payloads, published_s = sender.stdout.read().split()
            stats, fs = sub.stats(), feed.stats()
            sub.stop()
        finally:
            broker.terminate()
            broker.wait(10)
    print(f"published {n:,} messages in {int(payloads):,} payloads of {args.batch} in {float(published_s):.2f} s "
          "(QoS 1, all acknowledged by the broker)")
    print(f"feed: payloads received {stats['received']:,}, messages accepted {fs['accepted']:,}, rejected "
          f"{fs['rejected']:,}; lost {n - fs['accepted'] - fs['rejected']:,} ({(n - fs['accepted']) / n:.1%})")
    print("mqtt stats: " + json.dumps({k: v for k, v in stats.items() if k not in ("broker",)}))
    if first_at is not None and last_at > first_at:
        print(f"intake: {fs['accepted'] / (last_at - first_at):,.0f} messages/s over {last_at - first_at:.2f} s "
              "(first to last message taken)")


if __name__ == "__main__":
    main()
