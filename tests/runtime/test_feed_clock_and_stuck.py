"""A sender whose clock is behind is named as such; a stuck detector is named with its reason.

Found in a trial: (1) a device whose clock ran 15 s slow kept sending, every message accepted, and its signal was
only ever "stale: 16 s old"; the feed has what it needs to say the sender's clock may be behind. (2) A detector
stuck on was only a number in /metrics (`signalwise_feed_detectors_faulty 1`): no route named it, no log line.
"""

from __future__ import annotations

import logging

from signalwise.core.types import ObservationNeed
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.feeds import DetectorFeed


def _count(dev: str, channel: int, t: float) -> dict:
    return {"device_id": dev, "channel": channel, "count_veh": 2, "occupancy": 0.1, "interval_s": 1.0,
            "sim_time_s": t}


def test_a_sender_clock_steadily_behind_is_named(corridor):
    clock = {"t": 100.0}
    feed = DetectorFeed(corridor, now=lambda: clock["t"])
    j1, j2, j3 = corridor[0], corridor[1], corridor[2]
    ch1, ch2, ch3 = j1.detectors[0].channel, j2.detectors[0].channel, j3.detectors[0].channel
    for k in range(8):  # every half second, J1 stamped 15 s slow, J2 right, J3 a gateway flushing a backlog
        clock["t"] = 100.0 + 0.5 * k
        assert feed.accept([_count(j1.id, ch1, clock["t"] - 15.0), _count(j2.id, ch2, clock["t"]),
                            _count(j3.id, ch3, clock["t"] - 12.0 - 3.0 * k)]).accepted == 3
    now = clock["t"] + 0.5
    slow = feed.source_health(j1.id, now)
    assert not slow.healthy and "the sender's clock may be behind by ~15 s" in slow.reason, slow
    assert feed.source_health(j2.id, now).healthy
    buffered = feed.source_health(j3.id, now)  # old, but its lags spread: no clock is blamed
    assert "clock" not in buffered.reason and buffered.age_s > 10, buffered


def test_a_stuck_detector_is_named_in_the_log_and_the_status(tmp_path, caplog):
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    rt = LiveRuntime(RunConfig(scenario="corridor"),
                     LiveOptions(speed=None, duration_s=400.0, field="none", sink="shadow"), tmp_path / "run")
    rt.open()
    inter = rt.field.intersections[0]
    det = next(d for d in inter.detectors if d.kind == "stopbar")
    assert rt.feed.accept([{"device_id": inter.id, "channel": det.channel, "event": "on",
                            "sim_time_s": rt.stepper.t}]).accepted == 1  # and never an off
    with caplog.at_level(logging.WARNING, logger="signalwise.live.feeds"):
        rt.run()
    faulty = rt.status()["feeds"]["detectors"]["faulty_detectors"]
    assert [(f["device_id"], f["channel"]) for f in faulty] == [(inter.id, det.channel)], faulty
    assert faulty[0]["reason"].startswith("stuck on: on for"), faulty
    said = [r.getMessage() for r in caplog.records if "left out of observations" in r.getMessage()]
    assert len(said) == 1 and f"{inter.id} channel {det.channel} left out of observations: stuck on" in said[0], said
    # the controller goes on without it: the detector's idle time is left out of what it is given
    need = ObservationNeed(detector_idle_ids=(det.id,))
    assert rt.feed.observe(inter, rt.stepper.t, need).detector_idle_s == {}
