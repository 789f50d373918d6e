"""A detector pulse on and off inside one tenth of a second is logged on, then off.

Found in a trial: an on at .01 s and an off at .04 s (both logged in the same tenth) came out of the feed sorted by
event code, the off (81) before the on (82), so `events.csv` said the detector went off and then on: occupied until
its next off. Here a real run without a simulator (`--field none`) is fed such a pulse, and an off then an on of
another detector inside one tenth (which must stay off, then on); `events.csv` and `live_events.csv` keep each
detector's events in the order of their own times.
"""

from __future__ import annotations

import csv
import threading

from support.waiting import until

from signalwise.core.eventlog import format_timestamp
from signalwise.runtime.config import RunConfig


def _rows(path, time_column: str, device: str, channel: int) -> list[tuple[str, str]]:
    with open(path, newline="") as fh:
        return [(r[time_column], r["EventId"]) for r in csv.DictReader(fh)
                if r["DeviceId"] == device and r["Parameter"] == str(channel) and r["EventId"] in ("81", "82")]


def test_a_pulse_inside_one_tenth_is_logged_on_then_off(tmp_path):
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    run_dir = tmp_path / "run"
    rt = LiveRuntime(RunConfig(scenario="corridor", interval_s=20.0),
                     LiveOptions(speed=10.0, duration_s=3600.0, field="none", sink="shadow"), run_dir)
    rt.open()
    inter = rt.field.intersections[0]
    pulse, gap = [d for d in inter.detectors if d.kind == "stopbar"][:2]
    loop = threading.Thread(target=rt.run, daemon=True)
    loop.start()
    try:
        assert until(lambda: rt.stepper.t >= 10.0, 30, every_s=0.01)
        t = float(int(rt.stepper.t))
        dev = inter.id
        # the gap detector is on first; inside one tenth it goes off and on again (a gap between two vehicles)
        assert rt.feed.accept([{"device_id": dev, "channel": gap.channel, "event": "on", "sim_time_s": t - 1.0}]
                              ).accepted == 1
        # delivered in one batch each, in their own order
        assert rt.feed.accept([
            {"device_id": dev, "channel": pulse.channel, "event": "on", "sim_time_s": t + 0.01},
            {"device_id": dev, "channel": pulse.channel, "event": "off", "sim_time_s": t + 0.04},
            {"device_id": dev, "channel": gap.channel, "event": "off", "sim_time_s": t + 0.01},
            {"device_id": dev, "channel": gap.channel, "event": "on", "sim_time_s": t + 0.04},
        ]).accepted == 4
        assert until(lambda: rt.stepper.t >= t + 2.0, 30, every_s=0.01)
    finally:
        rt.stop()
        loop.join(60)
    assert not loop.is_alive()
    stamp = format_timestamp(t)
    assert _rows(run_dir / "events.csv", "TimeStamp", inter.id, pulse.channel) == [(stamp, "82"), (stamp, "81")]
    gap_rows = _rows(run_dir / "events.csv", "TimeStamp", inter.id, gap.channel)
    assert gap_rows == [(format_timestamp(t - 1.0), "82"), (stamp, "81"), (stamp, "82")], gap_rows
    live = [code for _t, code in _rows(run_dir / "live_events.csv", "sim_time_s", inter.id, pulse.channel)]
    assert live == ["82", "81"]
