"""The external detector feed (issue 13): messages in, observations with age and health out.

Intersections come from the built-in corridor (SUMO loads the network alone,
about a second) with the detectors a run places on it, so channels and
devices are those a run's `detectors.csv` lists. MQTT runs against the
Mosquitto on 127.0.0.1:1883 when it answers; HTTP through FastAPI's
TestClient on an app holding only this router.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import socket
import threading
import time
import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from support.mqtt import subscribed_feed
from support.waiting import until

from signalwise.api import errors
from signalwise.api.routers.live_feeds import router
from signalwise.core.types import EventCode, ObservationNeed, SignalEvent
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.feeds import SOURCE, DetectorFeed, DetectorMessage, wall_clock
from signalwise.runtime.loop import ObservationSource, checked


def _inter(corridor, tls="J1"):
    return next(i for i in corridor if i.id == tls)


def _det(inter, kind="stopbar", k=0):
    return [d for d in inter.detectors if d.kind == kind][k]


def _event(dev, ch, event, t):
    return {"device_id": dev, "channel": ch, "event": event, "sim_time_s": t}


def _count(dev, ch, n, occ, t, interval=60.0):
    return {"device_id": dev, "channel": ch, "count_veh": n, "occupancy": occ, "interval_s": interval,
            "sim_time_s": t}


def _health(obs):
    return next(s for s in obs.sources if s.source == SOURCE)


# ---------------------------------------------------------------------------
# The message model
# ---------------------------------------------------------------------------


def test_a_message_is_either_an_event_or_a_count_with_its_time_once():
    assert DetectorMessage(device_id="J1", channel=1, event="on", sim_time_s=3).kind == "event"
    assert DetectorMessage(device_id="J1", channel=1, count_veh=4, occupancy=0.2, interval_s=60,
                           time="2025-06-01T08:00:00+02:00").kind == "count"
    bad = [
        ({"event": "on", "count_veh": 3, "sim_time_s": 1}, "not both"),
        ({"sim_time_s": 1}, "neither"),
        ({"count_veh": 3, "sim_time_s": 1}, "missing occupancy, interval_s"),
        ({"event": "on"}, "exactly once"),
        ({"event": "on", "sim_time_s": 1, "time": "2025-06-01T08:00:00Z"}, "exactly once"),
        ({"event": "on", "time": "2025-06-01T08:00:00"}, "timezone"),
        ({"event": "on", "time": 35.0}, "sim_time_s"),
        # a number in text is no time either (pydantic would read it as epoch seconds)
        ({"event": "on", "time": "1700000000"}, "'1700000000' is a number, not a time: time must be ISO 8601"),
        ({"event": "on", "time": "1700000000.25"}, "is a number, not a time.*use sim_time_s"),
        ({"event": "blink", "sim_time_s": 1}, "'on' or 'off'"),
        ({"event": "on", "sim_time_s": 1, "speed_mps": 3}, "Extra inputs"),
        ({"count_veh": 3, "occupancy": 0.1, "interval_s": 0, "sim_time_s": 1}, "greater than 0"),
    ]
    for extra, words in bad:
        with pytest.raises(ValueError, match=words):
            DetectorMessage.model_validate({"device_id": "J1", "channel": 1, **extra})
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        DetectorMessage(device_id="J1", channel=0, event="on", sim_time_s=1)


def test_an_occupancy_that_looks_like_a_percentage_is_refused_with_the_share_to_send():
    def refusal(occupancy):
        with pytest.raises(ValueError) as exc:
            DetectorMessage.model_validate({"device_id": "J1", "channel": 1, "count_veh": 3, "occupancy": occupancy,
                                            "interval_s": 60, "sim_time_s": 1})
        err = exc.value.errors(include_url=False)[0]
        return err["loc"], err["type"], err["msg"]

    assert refusal(18) == (("occupancy",), "less_than_equal", "Input should be less than or equal to 1 (occupancy "
                                                               "is a share of the interval: send 0.18 for 18 %)")
    assert "send 0.375 for 37.5 %" in refusal(37.5)[2] and "send 1 for 100 %" in refusal(100)[2]
    # above 100 it is no percentage, and below 0 no share: the plain reason
    assert refusal(250)[2] == "Input should be less than or equal to 1"
    assert refusal(-0.2)[2] == "Input should be greater than or equal to 0"


def test_the_feed_is_an_observation_source(feed):
    source: ObservationSource = feed  # what the loop takes (LoopStepper(source=...))
    assert callable(source.observe)
    assert feed.emergency_active is False
    assert feed.emergency_approaches({}, 200.0) == {}


# ---------------------------------------------------------------------------
# Observations
# ---------------------------------------------------------------------------


def test_on_off_events_give_idle_times(feed, corridor):
    inter = _inter(corridor)
    a, b = _det(inter, k=0), _det(inter, k=1)
    res = feed.accept([_event("J1", a.channel, "on", 100.0), _event("J1", b.channel, "on", 100.0),
                       _event("J1", b.channel, "off", 101.5)])
    assert res.ok and res.accepted == 3
    need = ObservationNeed(detector_idle_ids=(a.id, b.id, _det(inter, k=2).id))
    obs = feed.observe(inter, 105.0, need)
    assert obs.detector_idle_s == {a.id: 0.0, b.id: 3.5}  # no event yet from the third: left out
    feed.accept(_event("J1", a.channel, "off", 106.0))
    assert feed.observe(inter, 110.0, need).detector_idle_s[a.id] == pytest.approx(4.0)
    # an event older than the detector's latest is logged but does not turn it back on
    feed.accept(_event("J1", a.channel, "on", 103.0))
    assert feed.observe(inter, 110.0, need).detector_idle_s[a.id] == pytest.approx(4.0)


def test_counts_give_detector_counts_and_lane_estimates(feed, corridor):
    inter = _inter(corridor)
    sb = _det(inter, "stopbar", 0)
    lane = sb.lane
    adv = next(d for d in inter.detectors if d.kind == "advance" and d.lane == lane)
    feed.accept([_count("J1", sb.channel, 12, 0.25, 60.0)])
    need = ObservationNeed(lane_ids=(lane, inter.out_lanes[0]), lane_detail="full", detector_count_ids=(sb.id,))
    obs = feed.observe(inter, 61.0, need)
    assert obs.detector_counts_veh == {sb.id: 12}
    assert set(obs.lanes) == {lane}  # the outgoing lane has no detector: no estimate
    est = obs.lanes[lane]
    assert (est.count_veh, est.occupancy, est.queue_veh, est.mean_speed_mps, est.wait_s) == (12, 0.25, 0, 0.0, 0.0)
    # a newer interval replaces it, an older one does not
    feed.accept([_count("J1", sb.channel, 5, 0.1, 120.0), _count("J1", sb.channel, 30, 0.5, 90.0)])
    assert feed.observe(inter, 121.0, need).lanes[lane].count_veh == 5
    # a vehicle standing on the advance loop (on for 3 s): the queue reaches back that far
    feed.accept([_event("J1", adv.channel, "on", 118.0)])
    est = feed.observe(inter, 121.0, need).lanes[lane]
    assert est.queue_veh == math.ceil(adv.distance_to_stopbar_m / 7.5) > 5
    assert est.count_veh == est.queue_veh  # never more halting than vehicles (core.health)
    assert feed.lane_queues([lane]) == {lane: est.queue_veh}
    # just arrived (on for 1 s): passing, not standing
    feed.accept([_event("J1", adv.channel, "off", 119.0), _event("J1", adv.channel, "on", 120.0)])
    assert feed.observe(inter, 121.0, need).lanes[lane].queue_veh == 0
    assert checked(feed.observe(inter, 121.0, need)).healthy


def test_a_stuck_detector_and_a_channel_that_stopped_counting_are_left_out_and_named(feed, corridor):
    """A field controller's detector diagnostics: a loop on for more than MAX_PRESENCE_S (300 s) is stuck, a
    channel whose count is three of its intervals old stopped counting. Their data leave the observation (as
    if never sent) while the intersection's other detectors keep the source fresh, and `stats()` names them."""
    inter = _inter(corridor)
    sb = _det(inter, "stopbar", 0)
    adv = next(d for d in inter.detectors if d.kind == "advance" and d.lane == sb.lane)
    other = next(d for d in inter.detectors if d.lane != sb.lane)
    need = ObservationNeed(lane_ids=(sb.lane,), detector_idle_ids=(adv.id,), detector_count_ids=(sb.id,))
    feed.accept([_event("J1", adv.channel, "on", 10.0), _count("J1", sb.channel, 20, 0.95, 10.0, interval=60.0)])
    obs = feed.observe(inter, 100.0, need)
    assert obs.detector_idle_s == {adv.id: 0.0} and obs.detector_counts_veh == {sb.id: 20}
    assert obs.lanes[sb.lane].queue_veh == math.ceil(adv.distance_to_stopbar_m / 7.5)
    assert feed.stats()["faulty_detectors"] == []
    for t in range(130, 401, 30):  # another detector keeps talking: the source stays fresh
        feed.accept(_count("J1", other.channel, 0, 0.0, float(t), interval=30.0))
    obs = feed.observe(inter, 400.0, need)
    assert checked(obs).healthy and _health(obs).age_s == 0.0
    assert obs.detector_idle_s == {} and obs.detector_counts_veh == {}
    assert sb.lane not in obs.lanes  # nothing usable is left on that lane
    faulty = {(f["channel"], f["reason"].split(":")[0]) for f in feed.stats()["faulty_detectors"]}
    assert faulty == {(adv.channel, "stuck on"), (sb.channel, "stopped counting")}
    # the loop goes off and the channel counts again: both are back
    feed.accept([_event("J1", adv.channel, "off", 401.0), _count("J1", sb.channel, 3, 0.1, 402.0, interval=60.0)])
    obs = feed.observe(inter, 403.0, need)
    assert obs.detector_idle_s == {adv.id: pytest.approx(2.0)} and obs.detector_counts_veh == {sb.id: 3}
    assert feed.stats()["faulty_detectors"] == []


def test_a_loop_stuck_on_loses_its_counts_too_and_a_count_only_channel_read_full_for_long_is_stuck(corridor):
    """A stuck loop counts nothing and reads full: left out whole, its counts and occupancy with its events.
    A channel that sends only counts is stuck once its intervals read at least 95 % occupied one after another
    for more than 300 s (the advance loop's 14-vehicle queue otherwise stood for an hour)."""
    inter = _inter(corridor)
    sb = _det(inter, "stopbar", 0)
    adv = next(d for d in inter.detectors if d.kind == "advance" and d.lane == sb.lane)
    need = ObservationNeed(lane_ids=(sb.lane,), detector_count_ids=(sb.id, adv.id))
    events_and_counts = DetectorFeed(corridor)
    events_and_counts.accept(_event("J1", sb.channel, "on", 10.0))
    for t in range(70, 431, 60):
        events_and_counts.accept(_count("J1", sb.channel, 0, 1.0, float(t)))
    obs = events_and_counts.observe(inter, 430.0, need)
    assert sb.id not in obs.detector_counts_veh and sb.lane not in obs.lanes
    counts_only = DetectorFeed(corridor)
    for t in range(60, 301, 60):  # full for 300 s, from the first interval's start at 0: a long red, maybe
        counts_only.accept(_count("J1", adv.channel, 0, 0.97, float(t)))
    assert counts_only.observe(inter, 300.0, need).lanes[sb.lane].queue_veh > 1
    counts_only.accept(_count("J1", adv.channel, 0, 0.97, 360.0))  # 360 s: stuck
    obs = counts_only.observe(inter, 361.0, need)
    assert adv.id not in obs.detector_counts_veh and sb.lane not in obs.lanes
    assert [f["reason"] for f in counts_only.stats()["faulty_detectors"]] == ["stuck on: on for 360 s (more than 300 s)"]
    counts_only.accept(_count("J1", adv.channel, 3, 0.2, 420.0))  # cars pass again: back in service
    assert counts_only.observe(inter, 421.0, need).detector_counts_veh == {adv.id: 3}


def test_a_payload_delivered_again_logs_none_of_its_events_twice(feed, corridor):
    """MQTT QoS 1 may deliver a payload again, an on/off pair included: only the first delivery is logged."""
    ch = _det(_inter(corridor), k=0).channel
    pair = [_event("J1", ch, "on", 10.0), _event("J1", ch, "off", 10.6)]
    feed.accept(pair)
    feed.accept(pair)
    feed.accept(_event("J1", ch, "on", 10.0))
    feed.accept([_event("J1", ch, "on", 20.0), _event("J1", ch, "off", 20.6)])
    assert [(e.time_s, e.event_code) for e in feed.drain_events()] == [(10.0, 82), (10.6, 81), (20.0, 82), (20.6, 81)]
    assert feed.stats()["repeated_events"] == 3


def test_age_grows_while_silent_and_a_fresh_message_resets_it(feed, corridor):
    inter = _inter(corridor)
    sb = _det(inter)
    need = ObservationNeed(detector_idle_ids=(sb.id,))
    first = _health(feed.observe(inter, 10.0, need))
    assert not first.healthy and "no message yet" in first.reason
    feed.accept(_event("J1", sb.channel, "on", 12.0))
    h = _health(feed.observe(inter, 12.0, need))
    assert h.healthy and h.age_s == 0.0
    assert _health(feed.observe(inter, 20.0, need)).age_s == pytest.approx(8.0)
    assert _health(feed.observe(inter, 30.0, need)).age_s == pytest.approx(18.0)
    feed.accept(_count("J1", _det(inter, k=1).channel, 0, 0.0, 29.5))  # a zero count is news too
    assert _health(feed.observe(inter, 30.0, need)).age_s == pytest.approx(0.5)
    # another intersection's messages do not freshen this one
    j2 = _inter(corridor, "J2")
    feed.accept(_event("J2", _det(j2).channel, "on", 40.0))
    assert _health(feed.observe(inter, 40.0, need)).age_s == pytest.approx(10.5)


def test_a_silent_feed_is_stale_after_ten_seconds(feed, corridor):
    inter = _inter(corridor)
    sb = _det(inter)
    need = ObservationNeed(detector_idle_ids=(sb.id,))
    feed.accept(_event("J1", sb.channel, "off", 100.0))
    assert checked(feed.observe(inter, 109.0, need)).data_fault(10) is None
    fault = checked(feed.observe(inter, 111.0, need)).data_fault(10)
    assert fault == f"{SOURCE} stale: 11 s old (max 10 s)"
    feed.accept(_event("J1", sb.channel, "on", 111.0))
    assert checked(feed.observe(inter, 111.0, need)).data_fault(10) is None


def test_nothing_asked_reports_no_source(feed, corridor):
    obs = feed.observe(_inter(corridor), 5.0, ObservationNeed())
    assert obs.sources == () and obs.lanes == {} and obs.detector_idle_s == {}


# ---------------------------------------------------------------------------
# Garbage
# ---------------------------------------------------------------------------


def test_garbage_is_rejected_with_reasons_and_counted(feed, corridor):
    inter = _inter(corridor)
    ch = _det(inter).channel
    top = max(d.channel for d in inter.detectors)
    res = feed.accept([
        _count("J1", ch, 3, 3.0, 10.0),  # occupancy 3
        _count("J1", ch, -1, 0.1, 10.0),  # negative count
        _count("J1", ch, 500, 0.5, 10.0, interval=60.0),  # more than a lane can pass
        _event("J1", top + 1, "on", 10.0),  # unknown channel
        _event("J99", 1, "on", 10.0),  # unknown device
        "not an object",
        _event("J1", ch, "on", 10.0),  # the only good one
    ])
    assert res.accepted == 1
    by_index = {r.index: r for r in res.rejected}
    assert sorted(by_index) == [0, 1, 2, 3, 4, 5]
    assert by_index[0].code == "invalid" and by_index[0].field == "occupancy" and "less than or equal to 1" \
        in by_index[0].reason
    assert by_index[1].code == "invalid" and by_index[1].field == "count_veh"
    assert by_index[2].code == "implausible" and "500 vehicles in 60 s" in by_index[2].reason
    assert by_index[3].code == "unknown_channel" and f"no detector channel {top + 1}" in by_index[3].reason \
        and f"1-{top}" in by_index[3].reason
    assert by_index[4].code == "unknown_device" and "'J99'" in by_index[4].reason and "J1, J2" in by_index[4].reason
    stats = feed.stats()
    assert stats["accepted"] == 1 and stats["rejected"] == 6
    assert stats["rejected_by_code"] == {"invalid": 3, "implausible": 1, "unknown_channel": 1, "unknown_device": 1}


def test_health_does_not_hang_on_the_order_of_a_payload_nor_on_another_devices_topic(feed, corridor):
    """A field controller's payload of good channels then five this run lacks (pedestrian channels, say) used to
    leave J1 unhealthy, the same payload the other way round healthy; and messages naming J1 sent on another
    device's topic counted against J1."""
    inter = _inter(corridor)
    top = max(d.channel for d in inter.detectors)
    need = ObservationNeed(detector_count_ids=(_det(inter).id,))
    good = [_count("J1", d.channel, 1, 0.1, 10.0) for d in inter.detectors[:3]]
    extra = [_count("J1", top + k, 1, 0.1, 10.0) for k in range(1, 6)]
    for payload in (good + extra, extra + good):
        feed.accept(payload, expect_device="J1")
        assert checked(feed.observe(inter, 11.0, need)).healthy
    for _ in range(6):
        feed.accept(_event("J1", 1, "on", 12.0), expect_device="X9")
    assert checked(feed.observe(inter, 13.0, need)).healthy
    assert feed.stats()["last_rejection"]["reason"] == ("the message is for device 'J1' but was sent on the topic "
                                                          "of device 'X9'")


def test_a_message_on_another_devices_topic_is_refused(feed, corridor):
    ch = _det(_inter(corridor, "J2")).channel
    res = feed.accept([_event("J2", ch, "on", 1.0)], expect_device="J1")
    assert res.accepted == 0 and res.rejected[0].code == "wrong_topic"
    assert "device 'J2'" in res.rejected[0].reason and "'J1'" in res.rejected[0].reason


def test_all_or_none_applies_nothing_of_a_refused_batch(feed, corridor):
    inter = _inter(corridor)
    sb = _det(inter)
    res = feed.accept([_event("J1", sb.channel, "on", 5.0), _event("J9", 1, "on", 5.0)], all_or_none=True)
    assert res.accepted == 0 and [r.index for r in res.rejected] == [1]
    assert feed.observe(inter, 6.0, ObservationNeed(detector_idle_ids=(sb.id,))).detector_idle_s == {}
    assert feed.drain_events() == []


def test_a_run_of_rejections_marks_the_source_unhealthy_until_good_data_return(corridor):
    feed = DetectorFeed(corridor, unhealthy_after=3)
    inter = _inter(corridor)
    sb = _det(inter)
    need = ObservationNeed(detector_idle_ids=(sb.id,))
    feed.accept(_event("J1", sb.channel, "on", 1.0))
    for k in range(2):
        feed.accept(_count("J1", sb.channel, 2, 7.0, 2.0 + k))
    assert _health(feed.observe(inter, 3.0, need)).healthy  # two in a row: not yet a run
    feed.reject("payload is not JSON", "J1")  # a payload refused whole counts too
    h = _health(feed.observe(inter, 3.0, need))
    assert not h.healthy and "3 messages in a row rejected" in h.reason and "not JSON" in h.reason
    fault = checked(feed.observe(inter, 3.0, need)).data_fault(10)
    assert fault.startswith(f"{SOURCE} unhealthy: 3 messages in a row rejected")
    # another intersection's garbage does not count against this one, nor does an unknown device's
    feed.accept([_event("J7", 1, "on", 4.0)] * 5)
    assert _health(feed.observe(_inter(corridor, "J2"), 4.0, ObservationNeed(detector_idle_ids=("x",)))).reason \
        == "no message yet from this intersection's detectors"
    feed.accept(_event("J1", sb.channel, "off", 4.0))
    assert _health(feed.observe(inter, 4.0, need)).healthy


def test_a_message_from_the_future_is_refused_or_makes_the_source_unhealthy(corridor):
    loop_now = [100.0]
    feed = DetectorFeed(corridor, now=lambda: loop_now[0])
    inter = _inter(corridor)
    sb = _det(inter)
    res = feed.accept(_event("J1", sb.channel, "on", 500.0))
    assert res.rejected[0].code == "time" and "400 s ahead" in res.rejected[0].reason
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    res = feed.accept({"device_id": "J1", "channel": sb.channel, "event": "on", "time": soon.isoformat()})
    assert res.rejected[0].code == "time" and "in the future" in res.rejected[0].reason
    # without `now`, a far-ahead message is taken, but observing shows the clock mismatch
    blind = DetectorFeed(corridor)
    blind.accept(_event("J1", sb.channel, "on", 500.0))
    h = _health(blind.observe(inter, 100.0, ObservationNeed(detector_idle_ids=(sb.id,))))
    assert not h.healthy and "400 s ahead" in h.reason


def test_wall_clock_messages_go_through_the_runs_clock(corridor):
    inter = _inter(corridor)
    sb = _det(inter)
    wall0 = time.time() - 30.0
    msg = {"device_id": "J1", "channel": sb.channel, "event": "off",
           "time": dt.datetime.fromtimestamp(wall0 + 20.0, dt.UTC).isoformat()}
    no_clock = DetectorFeed(corridor)
    res = no_clock.accept(msg)
    assert res.rejected[0].code == "time" and "send sim_time_s" in res.rejected[0].reason
    feed = DetectorFeed(corridor, clock=wall_clock((1000.0, wall0)))  # sim 1000 s was at wall0
    assert feed.accept(msg).ok
    obs = feed.observe(inter, 1025.0, ObservationNeed(detector_idle_ids=(sb.id,)))
    assert obs.detector_idle_s[sb.id] == pytest.approx(5.0, abs=1e-3)
    assert _health(obs).age_s == pytest.approx(5.0, abs=1e-3)


def test_a_message_from_before_the_run_started_is_refused_on_any_clock(corridor):
    """A run that began at simulation second 1000, 30 s ago: a time or sim_time_s before that is refused with
    both times; a clock that is only a function refuses what it maps below simulation second 0."""
    sb = _det(_inter(corridor))
    wall0 = time.time() - 30.0
    feed = DetectorFeed(corridor, clock=wall_clock((1000.0, wall0)))
    before = dt.datetime.fromtimestamp(wall0 - 5.0, dt.UTC)
    res = feed.accept({"device_id": "J1", "channel": sb.channel, "event": "on", "time": before.isoformat()})
    began = dt.datetime.fromtimestamp(wall0, dt.UTC).isoformat(timespec="milliseconds")
    assert res.rejected[0].code == "time" and res.rejected[0].field == "time"
    assert res.rejected[0].reason == (f"time {before.isoformat(timespec='milliseconds')} is before the run "
                                      f"started ({began})")
    res = feed.accept(_event("J1", sb.channel, "on", 999.0))
    assert res.rejected[0].reason == "sim_time_s 999 is before the run started (simulation second 1000)"
    assert feed.accept(_event("J1", sb.channel, "on", 1000.0)).ok
    assert feed.drain_events() == [SignalEvent(1000.0, "J1", int(EventCode.DETECTOR_ON), sb.channel)]

    minus_an_hour = DetectorFeed(corridor, clock=lambda wall: wall - time.time() - 3600.0)
    res = minus_an_hour.accept({"device_id": "J1", "channel": sb.channel, "event": "on",
                                "time": dt.datetime.now(dt.UTC).isoformat()})
    assert res.rejected[0].code == "time" and "maps to simulation second -3600" in res.rejected[0].reason


def test_drained_events_are_hi_res_detector_events_in_time_order(feed, corridor):
    inter = _inter(corridor)
    a, b = _det(inter, k=0), _det(inter, k=1)
    feed.accept([_event("J1", b.channel, "on", 12.34), _event("J1", a.channel, "on", 10.0),
                 _event("J1", a.channel, "off", 11.0), _count("J1", a.channel, 1, 0.1, 12.0)])
    assert feed.drain_events() == [
        SignalEvent(10.0, "J1", int(EventCode.DETECTOR_ON), a.channel),
        SignalEvent(11.0, "J1", int(EventCode.DETECTOR_OFF), a.channel),
        SignalEvent(12.3, "J1", int(EventCode.DETECTOR_ON), b.channel),
    ]
    assert feed.drain_events() == []


def test_accepting_from_threads_while_observing(feed, corridor):
    inter = _inter(corridor)
    dets = inter.detectors
    need = ObservationNeed(detector_idle_ids=tuple(d.id for d in dets))
    stop = threading.Event()

    def sender(k):
        t = 0.0
        while not stop.is_set():
            t += 0.1
            feed.accept(_event("J1", dets[k % len(dets)].channel, "on" if int(t * 10) % 2 else "off", t))

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    try:
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            obs = checked(feed.observe(inter, 1e6, need))
            assert all(v >= 0 for v in obs.detector_idle_s.values())
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert feed.stats()["accepted"] > 0 and feed.stats()["rejected"] == 0


# ---------------------------------------------------------------------------
# MQTT, against the real Mosquitto
# ---------------------------------------------------------------------------



@pytest.fixture
def mqtt_feed(feed):
    with subscribed_feed(feed) as (sub, publish):
        yield sub, publish


def _until(condition, timeout_s=2.0) -> bool:
    return until(condition, timeout_s)


def test_mqtt_messages_reach_the_feed_within_two_seconds(mqtt_feed, feed, corridor):
    sub, publish = mqtt_feed
    inter = _inter(corridor)
    sb = _det(inter)
    need = ObservationNeed(detector_idle_ids=(sb.id,), detector_count_ids=(sb.id,))
    publish("J1", _event("J1", sb.channel, "on", 50.0))
    assert _until(lambda: feed.observe(inter, 51.0, need).detector_idle_s.get(sb.id) == 0.0)
    publish("J1", [_event("J1", sb.channel, "off", 52.0), _count("J1", sb.channel, 9, 0.3, 60.0)])
    assert _until(lambda: feed.observe(inter, 61.0, need).detector_counts_veh.get(sb.id) == 9)
    assert feed.observe(inter, 61.0, need).detector_idle_s[sb.id] == pytest.approx(9.0)
    s = sub.stats()
    assert (s["received"], s["accepted"], s["rejected"], s["connected"]) == (2, 3, 0, True)


def test_mqtt_garbage_is_counted_and_the_client_lives_on(mqtt_feed, feed, corridor):
    sub, publish = mqtt_feed
    inter = _inter(corridor)
    sb = _det(inter)
    publish("J1", b"{not json")
    publish("J1", b"42")
    publish("J1", _count("J1", sb.channel, 4, 3.0, 10.0))  # occupancy 3
    publish("J1", _event("J2", _det(_inter(corridor, "J2")).channel, "on", 10.0))  # wrong topic
    publish("J99", _event("J99", 1, "on", 10.0))  # unknown device
    assert _until(lambda: sub.stats()["rejected"] == 5), sub.stats()
    assert "unknown device 'J99'" in sub.stats()["last_error"]
    assert feed.stats()["rejected_by_code"] == {"invalid": 3, "wrong_topic": 1, "unknown_device": 1}
    # the client thread is alive: a good message still gets through
    publish("J1", _event("J1", sb.channel, "on", 11.0))
    need = ObservationNeed(detector_idle_ids=(sb.id,))
    assert _until(lambda: feed.observe(inter, 12.0, need).detector_idle_s.get(sb.id) == 0.0)
    assert sub.stats()["connected"] and sub.stats()["accepted"] == 1


def test_mqtt_an_empty_list_is_refused_and_counted_as_http_refuses_it(mqtt_feed, feed, corridor):
    """An empty list is a sender's bug (HTTP answers 422): counted and logged, against the topic's device."""
    sub, publish = mqtt_feed
    publish("J1", [])
    assert _until(lambda: sub.stats()["rejected"] == 1), sub.stats()
    s = sub.stats()
    assert (s["received"], s["accepted"]) == (1, 0)
    assert s["last_error"].endswith("/J1/detectors: payload is an empty list: send at least one message")
    stats = feed.stats()
    assert stats["rejected_by_code"] == {"invalid": 1} and stats["last_rejection"]["device_id"] == "J1"
    assert stats["by_transport"]["mqtt"]["rejected_by_code"] == {"invalid": 1}


def test_mqtt_feed_retries_a_broker_that_is_not_there(feed):
    from signalwise.runtime.live.mqtt import MqttFeed

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sub = MqttFeed(feed, "127.0.0.1", port)
    started = time.monotonic()
    sub.start()
    assert time.monotonic() - started < 0.5  # start never waits on the network
    time.sleep(0.3)
    assert sub.stats()["connected"] is False
    sub.stop()


class _Outage:
    """A TCP relay on loopback between the feed and the broker that can be cut (every connection closed, the
    port refusing) and restored on the same port: a broker outage as the client sees it."""

    def __init__(self, target):
        self.target = target
        self.port = None
        self._socks: list[socket.socket] = []
        self._listener = None
        self.restore()

    def restore(self) -> None:
        lst = socket.socket()
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind(("127.0.0.1", self.port or 0))
        lst.listen()
        self.port, self._listener = lst.getsockname()[1], lst
        threading.Thread(target=self._accept, args=(lst,), daemon=True).start()

    def cut(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it, which holds the port
        self._listener.close()
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._socks.clear()

    def _accept(self, lst) -> None:
        while True:
            try:
                client, _ = lst.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        with contextlib.suppress(OSError):
            b.shutdown(socket.SHUT_RDWR)


def test_mqtt_messages_published_during_a_broker_outage_arrive_when_it_is_back(feed, corridor):
    """The broker keeps the feed's session (MQTT 5 session expiry) while the connection is down and delivers
    the QoS 1 messages published meanwhile on reconnecting; a clean stop then ends the session."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from support.mqtt import BROKER, broker_unavailable_reason

    from signalwise.runtime.live.mqtt import MqttFeed

    reason = broker_unavailable_reason()
    if reason:
        pytest.skip(reason)
    inter = _inter(corridor)
    sb = _det(inter)
    need = ObservationNeed(detector_count_ids=(sb.id,))
    relay = _Outage(BROKER)
    prefix = f"signalwise-test-{uuid.uuid4().hex[:8]}"
    sub = MqttFeed(feed, "127.0.0.1", relay.port, prefix=prefix)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect(*BROKER)
    pub.loop_start()

    def publish(n, t):
        pub.publish(f"{prefix}/J1/detectors", json.dumps(_count("J1", sb.channel, n, 0.1, t)),
                    qos=1).wait_for_publish(2.0)

    try:
        sub.start()
        assert sub.wait_subscribed(5.0), sub.stats()
        publish(1, 10.0)
        assert _until(lambda: feed.observe(inter, 11.0, need).detector_counts_veh.get(sb.id) == 1)
        relay.cut()
        assert _until(lambda: not sub.stats()["connected"], 5.0)
        publish(7, 20.0)  # while the feed is away: the broker queues it for the session
        time.sleep(0.5)
        assert feed.observe(inter, 21.0, need).detector_counts_veh.get(sb.id) == 1
        relay.restore()
        assert _until(lambda: feed.observe(inter, 21.0, need).detector_counts_veh.get(sb.id) == 7, 15.0), \
            sub.stats()
    finally:
        sub.stop()
        relay.cut()
        pub.loop_stop()
        pub.disconnect()


@pytest.fixture
def private_broker(tmp_path):
    """A Mosquitto of this test's own on a free loopback port that admits only user `field`, password `s3cret`
    (skips without the mosquitto and mosquitto_passwd programs)."""
    import shutil
    import subprocess

    from support.mqtt import free_port, own_mosquitto

    if not shutil.which("mosquitto_passwd"):
        pytest.skip("mosquitto_passwd is not installed (Debian: apt-get install mosquitto mosquitto-clients)")
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "field", "s3cret"], check=True,
                   capture_output=True)
    with own_mosquitto(tmp_path, f"listener {free_port()} 127.0.0.1\nallow_anonymous false\n"
                                 f"password_file {passwords}\n") as port:
        yield port


def test_a_broker_that_wants_a_password_gets_the_one_given_and_refuses_without(feed, corridor, private_broker):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from signalwise.runtime.live.mqtt import MqttFeed

    anonymous = MqttFeed(feed, "127.0.0.1", private_broker)
    anonymous.start()
    try:
        assert _until(lambda: "refused the connection" in (anonymous.stats()["last_error"] or ""), 5.0)
        assert not anonymous.stats()["connected"]
    finally:
        anonymous.stop()
    sub = MqttFeed(feed, "127.0.0.1", private_broker, username="field", password="s3cret")
    sub.start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.username_pw_set("field", "s3cret")
    pub.connect("127.0.0.1", private_broker)
    pub.loop_start()
    try:
        assert sub.wait_subscribed(5.0), sub.stats()
        sb = _det(_inter(corridor))
        pub.publish("signalwise/J1/detectors", json.dumps(_count("J1", sb.channel, 4, 0.1, 5.0)),
                    qos=1).wait_for_publish(2.0)
        need = ObservationNeed(detector_count_ids=(sb.id,))
        assert _until(lambda: feed.observe(_inter(corridor), 6.0, need).detector_counts_veh.get(sb.id) == 4)
    finally:
        sub.stop()
        pub.loop_stop()
        pub.disconnect()


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


@pytest.fixture
def http(feed):
    app = FastAPI()
    errors.install(app)  # the API's error bodies: {"message": "<where>: <what>", "detail": [...]}
    app.include_router(router)
    app.state.live_feed = feed
    with TestClient(app) as client:
        yield client, app


URL = "/api/v1/live/feeds/detectors"


def test_http_takes_one_message_or_a_list(http, feed, corridor):
    client, _app = http
    inter = _inter(corridor)
    sb = _det(inter)
    r = client.post(URL, json=_event("J1", sb.channel, "on", 5.0))
    assert r.status_code == 200 and r.json() == {"accepted": 1}
    r = client.post(URL, json=[_event("J1", sb.channel, "off", 6.0), _count("J1", sb.channel, 3, 0.1, 7.0)])
    assert r.status_code == 200 and r.json() == {"accepted": 2}
    obs = feed.observe(inter, 8.0, ObservationNeed(detector_idle_ids=(sb.id,), detector_count_ids=(sb.id,)))
    assert obs.detector_idle_s == {sb.id: 2.0} and obs.detector_counts_veh == {sb.id: 3}


def test_http_malformed_message_gets_422_with_its_field_path(http, feed):
    client, _app = http
    r = client.post(URL, json=[_event("J1", 1, "on", 5.0), _count("J1", 1, 3, 3.0, 6.0)])
    assert r.status_code == 422
    body = r.json()
    assert body["message"].startswith("body[1].occupancy: Input should be less than or equal to 1")
    assert body["detail"][0]["loc"] == ["body", 1, "occupancy"]
    r = client.post(URL, json={"device_id": "J1", "channel": 1, "event": "on"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body"]
    assert "exactly once" in r.json()["message"]
    r = client.post(URL, content=b"{oops", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["message"].startswith("body: not JSON")
    assert client.post(URL, json=[]).status_code == 422
    # a percentage for a share, and epoch seconds in text for a time: refused with the field and what to send
    r = client.post(URL, json=[_count("J1", 1, 3, 0.1, 6.0), _count("J1", 1, 3, 18, 6.0)])
    assert r.status_code == 422 and r.json()["message"] == ("body[1].occupancy: Input should be less than or "
                                                            "equal to 1 (occupancy is a share of the interval: "
                                                            "send 0.18 for 18 %)")
    r = client.post(URL, json={"device_id": "J1", "channel": 1, "event": "on", "time": "1700000000"})
    assert r.status_code == 422 and r.json()["message"].startswith("body.time: Value error, '1700000000' is a "
                                                                   "number, not a time")
    assert feed.stats()["accepted"] == 0  # nothing of a refused batch was applied
    # each message the schema refused counts, worded as the feed words its own refusals; a body that is no
    # messages (not JSON, an empty list) counts once; the good message of the first batch counts neither way
    stats = feed.stats()
    assert stats["rejected"] == 6 and stats["rejected_by_code"] == {"invalid": 6}
    assert stats["last_rejection"]["reason"].startswith("time: Value error, '1700000000' is a number")


def test_http_malformed_messages_count_against_the_health_of_the_intersection_they_name(http, corridor):
    """A sender whose occupancy is in percent sends nothing the feed takes: over HTTP as over MQTT, a run of such
    messages marks its intersection's data unhealthy, so the shield stops trusting what it last knew."""
    client, _app = http
    feed = DetectorFeed(corridor, unhealthy_after=3)
    _app.state.live_feed = feed
    inter = _inter(corridor)
    sb = _det(inter)
    need = ObservationNeed(detector_idle_ids=(sb.id,))
    assert client.post(URL, json=_event("J1", sb.channel, "on", 1.0)).status_code == 200
    bad = [_count("J1", sb.channel, 3, 18.0, 2.0), _count("J1", sb.channel, 4, 21.0, 3.0)]
    assert client.post(URL, json=bad).status_code == 422
    assert _health(feed.observe(inter, 3.0, need)).healthy  # two in a row: not yet a run
    # another device's malformed message, and one naming no device, do not count against J1
    assert client.post(URL, json=[_count("J2", 1, 3, 18.0, 3.0), {"channel": 1, "event": "on"}]).status_code == 422
    assert _health(feed.observe(inter, 3.0, need)).healthy
    r = client.post(URL, json={**_count("J1", sb.channel, 3, 18.0, 4.0), "channel": "one"})
    assert r.status_code == 422
    h = _health(feed.observe(inter, 4.0, need))
    assert not h.healthy and "3 messages in a row rejected" in h.reason
    assert h.reason.endswith("channel: Input should be a valid integer, unable to parse string as an integer "
                             "(and 1 more)")
    assert client.post(URL, json=_event("J1", sb.channel, "off", 5.0)).status_code == 200
    assert _health(feed.observe(inter, 5.0, need)).healthy


def test_http_unknown_device_or_channel_is_named(http, feed, corridor):
    client, _app = http
    sb = _det(_inter(corridor))
    r = client.post(URL, json=[_event("J1", sb.channel, "on", 5.0), _event("J42", 1, "on", 5.0)])
    assert r.status_code == 404
    assert r.json()["message"].startswith("body[1].device_id: unknown device 'J42'")
    r = client.post(URL, json=_event("J1", 999, "on", 5.0))
    assert r.status_code == 404 and r.json()["message"].startswith("body.channel: device 'J1' has no detector "
                                                                    "channel 999")
    r = client.post(URL, json=_count("J1", sb.channel, 400, 0.2, 5.0))
    assert r.status_code == 422 and "more than one lane passes" in r.json()["message"]
    assert feed.stats()["accepted"] == 0 and feed.stats()["rejected"] == 3


def test_http_answers_503_without_a_live_run(http):
    client, app = http
    app.state.live_feed = None
    r = client.post(URL, json=_event("J1", 1, "on", 5.0))
    assert r.status_code == 503 and "signalwise live" in r.json()["message"]


def test_the_route_documents_both_message_kinds(http):
    client, _app = http
    spec = client.get("/openapi.json").json()
    schema = spec["paths"][URL]["post"]["requestBody"]["content"]["application/json"]["schema"]
    one, many = schema["oneOf"]
    assert {"device_id", "channel", "event", "count_veh", "occupancy", "interval_s", "time", "sim_time_s"} \
        <= set(one["properties"])
    assert many["type"] == "array" and one["additionalProperties"] is False
    assert "(hi-res codes 82 / 81)" in one["properties"]["event"]["description"]
    assert set(spec["paths"][URL]["post"]["responses"]) >= {"200", "404", "422", "503"}


# ---------------------------------------------------------------------------
# A live run: its clock starts with the run
# ---------------------------------------------------------------------------


DOCS_EXAMPLE = {"device_id": "J1", "channel": 3, "event": "on", "time": "2025-06-01T08:00:01.300+02:00"}


def test_a_live_run_refuses_a_wall_clock_message_from_before_it_started(tmp_path):
    """`signalwise live --field none` in-process (no simulator), its API served on 127.0.0.1 as the command
    serves it: docs/live-feeds.md's example, timed before the run began, is refused with both times and never
    logged; the same message timed now is taken and logged at the run's own (non-negative) time."""
    import csv

    import httpx

    from signalwise.api.live_command import _serve
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
    from signalwise.store import get_engine
    from signalwise.store.keys import create_key

    url = f"sqlite:///{tmp_path / 'api.db'}"
    ingest = {"X-API-Key": create_key(get_engine(url), "feeder", ["ingest"])[1]}
    run_dir = tmp_path / "run"
    rt = LiveRuntime(RunConfig(scenario="corridor"), LiveOptions(speed=10.0, duration_s=3600, field="none",
                                                                 sink="shadow"), run_dir)
    rt.open()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, server_thread = _serve(rt, "127.0.0.1", port, url)
    loop = threading.Thread(target=rt.run, daemon=True)
    loop.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/api/v1/live/status", timeout=2).json().get("running"):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        old = httpx.post(f"{base}/api/v1/live/feeds/detectors", json=DOCS_EXAMPLE, headers=ingest, timeout=5)
        assert old.status_code == 422, old.text
        body = old.json()
        assert body["detail"][0]["loc"] == ["body", "time"] and body["detail"][0]["type"] == "time"
        assert body["message"].startswith("body.time: time 2025-06-01T08:00:01.300+02:00 is before the run "
                                          "started ("), body["message"]
        started = body["message"].split("before the run started (")[1].split(")")[0]
        assert abs(dt.datetime.fromisoformat(started).timestamp() - time.time()) < 60  # the run began just now
        assert rt.feed.stats()["rejected_by_code"] == {"time": 1}

        now = {**DOCS_EXAMPLE, "time": dt.datetime.now().astimezone().isoformat()}
        taken = httpx.post(f"{base}/api/v1/live/feeds/detectors", json=now, headers=ingest, timeout=5)
        assert taken.status_code == 200 and taken.json() == {"accepted": 1}, taken.text
    finally:
        rt.stop()
        loop.join(20)
        server.should_exit = True
        server_thread.join(5)
    with open(run_dir / "live_events.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    detector = [r for r in rows if (r["DeviceId"], r["EventId"], r["Parameter"])
                == ("J1", str(int(EventCode.DETECTOR_ON)), "3")]
    assert len(detector) == 1 and float(detector[0]["sim_time_s"]) >= 0.0, detector
    assert min(float(r["sim_time_s"]) for r in rows) >= 0.0
