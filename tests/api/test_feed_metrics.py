"""The detector feeds on `/metrics`: a real `signalwise live --field none` runtime (no simulator) attached to the
API as the command attaches it, real messages over HTTP and over the Mosquitto on 127.0.0.1:1883, and the exact
counts in the Prometheus text. HTTP and MQTT feed one `DetectorFeed`: each message is counted once, under the
transport that brought it.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from support.mqtt import subscribed_feed
from support.waiting import until

from signalwise.api import create_app
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

URL = "/api/v1/live/feeds/detectors"


def _event(dev, ch, event, t):
    return {"device_id": dev, "channel": ch, "event": event, "sim_time_s": t}


def _count(dev, ch, n, occ, t, interval=60.0):
    return {"device_id": dev, "channel": ch, "count_veh": n, "occupancy": occ, "interval_s": interval,
            "sim_time_s": t}


def _until(condition, timeout_s=5.0) -> bool:
    return until(condition, timeout_s)


@pytest.fixture
def live(tmp_path):
    """An app, a key with `ingest`, and an opened `--field none` run of the corridor (not yet attached)."""
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    app = create_app(Settings(database_url=db))
    _info, key = create_key(get_engine(db), "feeder", ["read", "ingest"])
    rt = LiveRuntime(RunConfig(scenario="corridor"), LiveOptions(speed=None, duration_s=600, field="none",
                                                                 sink="shadow"), tmp_path / "live")
    rt.open()
    try:
        with TestClient(app, headers={"X-API-Key": key}) as client:
            yield client, app, rt
    finally:
        rt.stop()
        rt.run()  # ends at once: writes run.json and closes the run's files


def _attach(app, rt) -> None:
    app.state.live = rt  # as `signalwise live` (api/live_command.py `_serve`) attaches a run
    app.state.live_feed = rt.feed


def _channel(rt, device="J1") -> int:
    inter = next(i for i in rt.stepper.intersections if i.id == device)
    return next(d.channel for d in inter.detectors if d.kind == "stopbar")


def test_http_messages_accepted_and_rejected_by_code_are_counted_on_metrics(live):
    client, app, rt = live
    assert "signalwise_feed_" not in client.get("/metrics").text  # no live run attached: no feed figures
    _attach(app, rt)
    ch, t = _channel(rt), rt.scenario.begin_s + 1.0
    assert client.post(URL, json=[_event("J1", ch, "on", t), _count("J1", ch, 3, 0.1, t)]).json() == {"accepted": 2}
    assert client.post(URL, json=_event("J1", ch, "off", t + 1)).status_code == 200
    # a batch with one unknown device: nothing of it is applied, only the faulty message is counted
    assert client.post(URL, json=[_event("J1", ch, "on", t), _event("J42", 1, "on", t)]).status_code == 404
    assert client.post(URL, json=_event("J1", 999, "on", t)).status_code == 404
    assert client.post(URL, json=_count("J1", ch, 400, 0.2, t)).status_code == 422  # implausible
    assert client.post(URL, json=_event("J1", ch, "on", t + 3600)).status_code == 422  # the run's future
    # malformed by the schema, and a body that is not JSON: counted as the MQTT feed counts them
    assert client.post(URL, json=_count("J1", ch, 3, 3.0, t)).status_code == 422
    assert client.post(URL, content=b"{oops", headers={"content-type": "application/json"}).status_code == 422

    text = client.get("/metrics").text
    assert 'signalwise_feed_messages_accepted_total{feed="http"} 3.0' in text
    for code, n in {"unknown_device": 1, "unknown_channel": 1, "implausible": 1, "time": 1, "invalid": 2,
                    "wrong_topic": 0}.items():
        assert f'signalwise_feed_messages_rejected_total{{code="{code}",feed="http"}} {n:.1f}' in text, code
    assert "# TYPE signalwise_feed_messages_accepted_total counter" in text
    assert 'feed="mqtt"' not in text and "signalwise_feed_mqtt_" not in text  # no MQTT client on this run
    assert "signalwise_feed_detectors_faulty 0.0" in text  # nothing stuck: the gauge is there, at 0


@pytest.fixture
def mqtt_client(live):
    _client, _app, rt = live
    with subscribed_feed(rt.feed) as (sub, publish):
        yield sub, publish


def test_mqtt_and_http_into_one_feed_are_counted_once_each_under_their_transport(live, mqtt_client):
    client, app, rt = live
    sub, publish = mqtt_client
    _attach(app, rt)
    ch, t = _channel(rt), rt.scenario.begin_s + 1.0
    ch2 = _channel(rt, "J2")
    publish("J1", _event("J1", ch, "on", t))
    publish("J1", [_event("J1", ch, "off", t + 1), _count("J1", ch, 4, 0.2, t + 1)])
    publish("J1", b"{not json")  # invalid
    publish("J1", _event("J2", ch2, "on", t))  # wrong_topic
    publish("J99", _event("J99", 1, "on", t))  # unknown_device
    publish("J1", [_event("J1", ch, "on", t + 2), _event("J1", 999, "on", t + 2)])  # 1 taken, 1 unknown_channel
    assert client.post(URL, json=_event("J2", ch2, "on", t)).status_code == 200
    assert client.post(URL, json=_event("J42", 1, "on", t)).status_code == 404
    assert _until(lambda: sub.stats()["received"] == 6 and sub.stats()["rejected"] == 4), sub.stats()

    text = client.get("/metrics").text
    assert 'signalwise_feed_messages_accepted_total{feed="mqtt"} 4.0' in text
    assert 'signalwise_feed_messages_accepted_total{feed="http"} 1.0' in text
    mqtt_codes = {"invalid": 1, "wrong_topic": 1, "unknown_device": 1, "unknown_channel": 1, "implausible": 0}
    for code, n in mqtt_codes.items():
        assert f'signalwise_feed_messages_rejected_total{{code="{code}",feed="mqtt"}} {n:.1f}' in text, code
    assert 'signalwise_feed_messages_rejected_total{code="unknown_device",feed="http"} 1.0' in text
    assert 'signalwise_feed_messages_rejected_total{code="invalid",feed="http"} 0.0' in text
    assert "signalwise_feed_mqtt_payloads_received_total 6.0" in text
    assert "signalwise_feed_mqtt_connected 1.0" in text

    sub.stop()  # the broker connection ends: the gauge says so, the counters keep their values
    text = client.get("/metrics").text
    assert "signalwise_feed_mqtt_connected 0.0" in text
    assert "signalwise_feed_mqtt_payloads_received_total 6.0" in text
