"""The MQTT feed's session across a restart, two clients with one id, and its refusal logs per kind.

A run restarted after a crash connects with the same client id and resumes the session the broker kept, so the
QoS 1 messages published while no run was subscribed arrive; a second client with the id takes the session and
the first is told and stops. Against the Mosquitto on 127.0.0.1:1883 (skipped when it does not answer). The
refusal logs are throttled per refusal code, with real payloads handed to the client's message handler.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

import pytest
from support.mqtt import BROKER, broker_unavailable_reason

from signalwise.core.types import ObservationNeed
from signalwise.runtime.live.feeds import DetectorFeed
from signalwise.runtime.live.mqtt import MqttFeed


def _until(check, timeout_s=10.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture
def broker():
    reason = broker_unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def publisher(broker):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect(*BROKER)
    pub.loop_start()
    yield pub
    pub.loop_stop()
    pub.disconnect()


def _crash(sub: MqttFeed) -> None:
    """The process dies: its connection drops without a DISCONNECT, so the broker keeps the session."""
    sub.client.loop_stop()
    sub.client.socket().close()


def test_a_restarted_run_resumes_the_session_and_gets_what_was_published_meanwhile(corridor, publisher):
    prefix = f"signalwise-test-{uuid.uuid4().hex[:8]}"
    inter = next(i for i in corridor if i.id == "J1")
    bar = next(d for d in inter.detectors if d.kind == "stopbar")
    first = MqttFeed(DetectorFeed(corridor), *BROKER, prefix=prefix)
    first.start()
    assert first.wait_subscribed(5.0), first.stats()
    _crash(first)
    for n, t in ((3, 60.0), (5, 120.0)):  # no run is subscribed: the broker queues them for the session
        message = {"device_id": "J1", "channel": bar.channel, "count_veh": n, "occupancy": 0.1, "interval_s": 60,
                   "sim_time_s": t}
        publisher.publish(f"{prefix}/J1/detectors", json.dumps(message), qos=1).wait_for_publish(2.0)
    feed = DetectorFeed(corridor)
    second = MqttFeed(feed, *BROKER, prefix=prefix)  # the restarted run: the same corridor, host and prefix
    assert second.client_id == first.client_id
    second.start()
    try:
        assert _until(lambda: feed.stats()["accepted"] == 2), (feed.stats(), second.stats())
        need = ObservationNeed(detector_count_ids=(bar.id,))
        assert feed.observe(inter, 121.0, need).detector_counts_veh == {bar.id: 5}
    finally:
        second.stop()  # a clean stop ends the session


@pytest.mark.slow
def test_two_clients_with_one_id_are_told_apart_and_slowed_not_stopped(corridor, broker):
    """Each connection of one takes the session from the other (Mosquitto 2.0 just closes the other's connection,
    with no `Session taken over`): after a few such drops in a row a client says what it may be and reconnects at
    its longest delay only. It does not give up for good: a broker that ends connections for another reason looks
    the same, and a corridor must not lose its detectors until someone restarts the run."""
    prefix = f"signalwise-test-{uuid.uuid4().hex[:8]}"
    clients = [MqttFeed(DetectorFeed(corridor), *BROKER, prefix=prefix, reconnect_min_s=1, reconnect_max_s=2)
               for _ in range(2)]
    clients[0].start()
    try:
        assert clients[0].wait_subscribed(5.0), clients[0].stats()

        def suspicious():
            return [c for c in clients if "possibly another client with the same id" in
                    (c.stats()["connection_error"] or "")]

        clients[1].start()
        assert _until(lambda: suspicious(), 30.0), [c.stats() for c in clients]
        told = suspicious()[0]
        assert f"({told.client_id}) takes its session, or the broker refuses this client; reconnecting every 2 s" \
            in told.stats()["connection_error"]
        clients[1].stop()  # the other run goes: the session is the first's again
        assert _until(lambda: clients[0].stats()["connected"], 15.0), clients[0].stats()
    finally:
        for c in clients:
            c.stop()


def test_refusals_are_logged_per_code_each_with_its_own_count(corridor, caplog, monkeypatch):
    clock = [1000.0]  # the log window's clock, moved by the test alone: a loaded machine cannot end a window early
    monkeypatch.setattr("signalwise.runtime.live.mqtt._monotonic", lambda: clock[0])
    sub = MqttFeed(DetectorFeed(corridor), prefix="p", log_every_s=0.5)  # not started: the handler alone
    bad_event = {"device_id": "J1", "channel": 1, "event": "blink", "sim_time_s": 1}
    wrong_topic = {"device_id": "J2", "channel": 1, "event": "on", "sim_time_s": 1}
    no_channel = {"device_id": "J1", "channel": 99, "event": "on", "sim_time_s": 1}
    with caplog.at_level(logging.WARNING, logger="signalwise.live.mqtt"):
        sub._handle("p/J1/detectors", b"not json")
        sub._handle("p/J1/detectors", json.dumps([bad_event, wrong_topic, wrong_topic]).encode())
        sub._handle("p/J1/detectors", json.dumps(no_channel).encode())
        first = [r.getMessage() for r in caplog.records]
        caplog.clear()
        for _ in range(3):  # within the window: not logged, counted per code
            sub._handle("p/J1/detectors", json.dumps([bad_event, wrong_topic]).encode())
        sub._handle("p/J1/detectors", json.dumps(no_channel).encode())
        assert caplog.records == []
        clock[0] += 0.6
        sub._handle("p/J1/detectors", json.dumps(bad_event).encode())
        sub._handle("p/J1/detectors", json.dumps(wrong_topic).encode())
    # one line per code: the bad event is 'invalid' as the payload that is not JSON, so it waits for its window
    assert len(first) == 3, first
    assert first[0].startswith("detector feed over MQTT: p/J1/detectors: payload is not JSON")
    assert first[1] == ("detector feed over MQTT: p/J1/detectors: message 1: the message is for device 'J2' but was "
                        "sent on the topic of device 'J1' (and 1 more in the payload)")
    assert first[2] == ("detector feed over MQTT: p/J1/detectors: message 0: device 'J1' has no detector channel 99 "
                        f"(its channels: {sub.feed.channels('J1')[0]}-{sub.feed.channels('J1')[-1]})")
    # after the window, each code's next line counts that code's refusals left unlogged, no other code's
    later = [r.getMessage() for r in caplog.records]
    assert later == [
        "detector feed over MQTT: p/J1/detectors: message 0: event: Input should be 'on' or 'off' "
        "(4 more refused with code invalid since the last)",
        "detector feed over MQTT: p/J1/detectors: message 0: the message is for device 'J2' but was sent on the "
        "topic of device 'J1' (3 more refused with code wrong_topic since the last)"]
