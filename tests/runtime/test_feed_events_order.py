"""A feed run's hi-res log stays in time order when a detector event arrives late.

Found in review: `events.csv` was appended as events arrived, so an event a feed delivered a few seconds late
(network, a broker's queue) was written after later ones, and readers of the Indiana log expect time order.
Here a real run without a simulator (`--field none`) is fed an event, then one stamped 3 s before it (late,
within the shield's `max_observation_age_s`), then one just before it is stopped; its log must hold them
all, in time order, and so must `live_events.csv`.
"""

from __future__ import annotations

import csv
import threading

from support.waiting import until

from signalwise.runtime.config import RunConfig


def _times(path, column: str) -> list[str]:
    with open(path, newline="") as fh:
        return [row[column] for row in csv.DictReader(fh)]


def test_a_late_feed_event_is_logged_in_time_order(tmp_path):
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    run_dir = tmp_path / "run"
    rt = LiveRuntime(RunConfig(scenario="corridor", interval_s=20.0),
                     LiveOptions(speed=10.0, duration_s=3600.0, field="none", sink="shadow"), run_dir)
    rt.open()
    inter = rt.field.intersections[0]
    first, second = [d for d in inter.detectors if d.kind == "stopbar"][:2]
    begin_s = rt.stepper.t
    loop = threading.Thread(target=rt.run, daemon=True)
    loop.start()
    try:
        assert until(lambda: rt.stepper.t >= begin_s + 20.0, 30, every_s=0.01)
        on_s = round(rt.stepper.t, 1)
        assert rt.feed.accept([{"device_id": inter.id, "channel": first.channel, "event": "on",
                                "sim_time_s": on_s}]).accepted == 1
        # the loop logs the event (and its own later ones) before the late one arrives
        assert until(lambda: rt.stepper.t >= on_s + 2.0, 30, every_s=0.01)
        late_s = round(on_s - 3.0, 1)
        assert rt.feed.accept([{"device_id": inter.id, "channel": second.channel, "event": "on",
                                "sim_time_s": late_s}]).accepted == 1
        # one fed just before the run is stopped: still held (its clock is not 10 s past it), written at the end
        last_s = round(rt.stepper.t, 1)
        assert rt.feed.accept([{"device_id": inter.id, "channel": first.channel, "event": "off",
                                "sim_time_s": last_s}]).accepted == 1
    finally:
        rt.stop()
        loop.join(60)
    assert not loop.is_alive()

    with open(run_dir / "events.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ons = {(int(r["Parameter"]), r["TimeStamp"]) for r in rows if r["DeviceId"] == inter.id and r["EventId"] == "82"}
    from signalwise.core.eventlog import format_timestamp

    assert {(first.channel, format_timestamp(on_s)), (second.channel, format_timestamp(late_s))} <= ons
    assert (inter.id, "81", str(first.channel), format_timestamp(last_s)) in {
        (r["DeviceId"], r["EventId"], r["Parameter"], r["TimeStamp"]) for r in rows}
    stamps = [r["TimeStamp"] for r in rows]
    assert stamps == sorted(stamps), "events.csv is out of time order"
    live = [float(t) for t in _times(run_dir / "live_events.csv", "sim_time_s")]
    assert live == sorted(live), "live_events.csv is out of time order"
    assert len(live) == len(stamps)
