"""A running `--field none` live run, attached to the API as `signalwise live` attaches it, told what its feed took
(feeds engineer's trial): repeats, count corrections and late messages are in `/api/v1/live/status` and on
`/metrics`, and "late" is the shield's `max_observation_age_s` (here 30 s, not the feed's default 10 s), the
limit in force after a shield change too.
"""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from signalwise.api import create_app
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.changes import ShieldChange
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key

URL = "/api/v1/live/feeds/detectors"


@pytest.fixture
def running(tmp_path):
    """An app with an `ingest` key and a `--field none` run of the corridor looping at 10x, its shield allowing
    data 30 s old, attached. The run goes on while a request travels: at 10x a loaded machine's second of delay
    makes a message 10 s older, which the ages below leave room for."""
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    app = create_app(Settings(database_url=db))
    _info, key = create_key(get_engine(db), "feeder", ["read", "ingest"])
    rt = LiveRuntime(RunConfig(scenario="corridor", controller="fixed", shield={"max_observation_age_s": 30.0}),
                     LiveOptions(speed=10.0, duration_s=3600.0, field="none", sink="shadow"), tmp_path / "live")
    rt.open()
    app.state.live = rt
    app.state.live_feed = rt.feed
    loop = threading.Thread(target=rt.run, daemon=True)
    loop.start()
    try:
        with TestClient(app, headers={"X-API-Key": key}) as client:
            yield client, rt
    finally:
        rt.stop()
        loop.join(60)


def _wait_until_sim(rt, t: float) -> None:
    deadline = time.monotonic() + 30
    while rt.stepper.t < t and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rt.stepper.t >= t


def _channel(rt, device="J1") -> int:
    inter = next(i for i in rt.stepper.intersections if i.id == device)
    return next(d.channel for d in inter.detectors if d.kind == "stopbar")


def _event(ch, event, t):
    return {"device_id": "J1", "channel": ch, "event": event, "sim_time_s": t}


def _count(ch, n, t):
    return {"device_id": "J1", "channel": ch, "count_veh": n, "occupancy": 0.1, "interval_s": 60.0, "sim_time_s": t}


@pytest.mark.slow
def test_repeats_corrections_and_late_messages_are_in_the_status_and_on_metrics(running):
    client, rt = running
    ch = _channel(rt)
    begin_s = rt.stepper.t
    _wait_until_sim(rt, begin_s + 60)
    assert rt.feed.late_after_s == 30.0  # the shield's limit, not the feed's 10 s
    now = rt.stepper.t
    # 12 s behind: late for the feed's default, not for this run's shield; 45 s behind: late
    r = client.post(URL, json=[_event(ch, "on", now - 12), _event(ch, "off", now - 45)])
    assert r.status_code == 200, r.text
    assert [(x["index"], x["behind_s"] > 30) for x in r.json()["late"]] == [(1, True)], r.json()
    # an exact repeat of an event; a count corrected before the loop took it (one batch), then after it had
    end_s = now
    assert client.post(URL, json=_event(ch, "off", now - 45)).status_code == 200
    assert client.post(URL, json=[_count(ch, 6, end_s), _count(ch, 7, end_s)]).json() == {"accepted": 2}
    _wait_until_sim(rt, rt.stepper.t + 3)  # ticks: the loop has drained the 7 into its records
    assert client.post(URL, json=_count(ch, 8, end_s)).status_code == 200
    assert client.post(URL, json=_count(ch, 8, end_s)).status_code == 200  # repeated
    assert client.post(URL, json=_event(ch, "on", 1.0e6)).status_code == 422  # the run's future: refused, time
    assert client.post(URL, json={**_event(ch, "on", now), "device_id": "J42"}).status_code == 404

    detectors = client.get("/api/v1/live/status").json()["feeds"]["detectors"]
    # the second late message is the repeat of the first: taken (and late) again, not logged again
    assert {k: detectors[k] for k in ("accepted", "repeated_events", "repeated_counts", "corrected_counts",
                                      "late_corrections", "late_messages", "rejected_by_code")} == \
        {"accepted": 7, "repeated_events": 1, "repeated_counts": 1, "corrected_counts": 2, "late_corrections": 1,
         "late_messages": 2, "rejected_by_code": {"time": 1, "unknown_device": 1}}, detectors

    text = client.get("/metrics").text
    for line in ('signalwise_feed_messages_repeated_total{kind="event"} 1.0',
                 'signalwise_feed_messages_repeated_total{kind="count"} 1.0',
                 'signalwise_feed_counts_corrected_total{late="false"} 1.0',
                 'signalwise_feed_counts_corrected_total{late="true"} 1.0',
                 "signalwise_feed_messages_late_total 2.0",
                 "# TYPE signalwise_feed_messages_late_total counter"):
        assert line in text, line


@pytest.mark.slow
def test_late_follows_a_shield_change_made_while_the_run_goes(running):
    client, rt = running
    ch = _channel(rt)
    _wait_until_sim(rt, rt.stepper.t + 60)
    rt.submit(ShieldChange(shield={"max_observation_age_s": 60.0}))
    assert rt.feed.late_after_s == 60.0
    now = rt.stepper.t
    r = client.post(URL, json=[_event(ch, "on", now - 35)])  # late under the 30 s limit, not under 60 s
    assert r.status_code == 200 and r.json() == {"accepted": 1}, r.json()
