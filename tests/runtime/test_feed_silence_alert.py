"""A feed that goes silent is stale whatever the signals' controllers read (feeds engineer's trial).

A `fixed` plan and an operator's hold ask for no data, so their shields never refuse a proposal on stale data
and never counted a dead feed: `stale_data` stayed quiet while the detectors (and the ATSPM data) were lost.
Here a real `--field none` run on the fixed plan: the signal whose detectors keep reporting stays off the list,
every other one is on it once its feed is older than `max_observation_age_s`, and the alert names them.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from signalwise.api.routers.system import loop_health
from signalwise.runtime.config import RunConfig
from signalwise.store import Settings


@pytest.mark.slow
def test_a_silent_feed_is_stale_under_the_fixed_plan_and_a_reporting_one_is_not(tmp_path):
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    rt = LiveRuntime(RunConfig(scenario="corridor", controller="fixed"),
                     LiveOptions(speed=4.0, duration_s=3600.0, field="none", sink="shadow"), tmp_path / "run")
    rt.open()
    max_age_s = rt.cfg.shield.max_observation_age_s
    watched = [i for i in rt.field.intersections if i.detectors]
    reporting = watched[0]
    channel = next(d.channel for d in reporting.detectors if d.kind == "stopbar")
    begin_s = rt.stepper.t
    loop = threading.Thread(target=rt.run, daemon=True)
    loop.start()
    try:
        sent, state = -1.0, "off"
        deadline = time.monotonic() + 60
        while rt.stepper.t < begin_s + max_age_s + 6 and time.monotonic() < deadline:
            now_s = rt.stepper.t
            if now_s >= sent + 1:  # a vehicle on or off every simulated second: that feed never ages
                state = "on" if state == "off" else "off"
                result = rt.feed.accept([{"device_id": reporting.id, "channel": channel, "event": state,
                                          "sim_time_s": now_s}])
                assert result.accepted == 1, result
                sent = now_s
            time.sleep(0.01)
        assert rt.stepper.t >= begin_s + max_age_s + 6
        stale = rt._figure_subjects()["stale_sources"]
        figures = rt.metrics()
        probe = loop_health(SimpleNamespace(state=SimpleNamespace(live=rt, settings=Settings())))
    finally:
        rt.stop()
        loop.join(60)
    assert not loop.is_alive()
    assert reporting.id not in stale
    assert set(stale) == {i.id for i in watched[1:]}, stale
    assert figures["stale_sources"] == len(watched) - 1
    assert probe["stale_sources"] == len(watched) - 1  # the health probe counts what the alert counts
    assert all("feed" in why or "message" in why for why in stale.values()), stale
