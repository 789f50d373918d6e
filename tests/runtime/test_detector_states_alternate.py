"""A detector's on/off alternate in a feed run's hi-res log (a real run without a simulator, `--field none`).

Found in a trial: a flood of "on" events at one channel (times differing below the log's 0.1 s, or by seconds,
no "off" between) went into `live_events.csv` as identical rows (287 of them), since the feed's repeat rule only
caught the same event at the same time. A second "on" while on (or "off" while off) is counted, `repeated_state`,
and not logged; a pair that arrives shuffled alternates once in time order and is logged whole."""

from __future__ import annotations

import csv

from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime


def test_a_detector_on_while_on_or_off_while_off_is_counted_and_not_logged(tmp_path):
    run_dir = tmp_path / "run"
    rt = LiveRuntime(RunConfig(scenario="corridor"),
                     LiveOptions(speed=None, duration_s=30.0, field="none", sink="shadow"), run_dir)
    rt.open()
    inter = rt.field.intersections[0]
    flooded, shuffled = [d.channel for d in inter.detectors if d.kind == "stopbar"][:2]
    t0 = rt.stepper.t
    sent = [(flooded, "on", 0.51), (flooded, "on", 0.53),  # one tenth: identical rows in the log
            (flooded, "on", 1.2), (flooded, "off", 2.0), (flooded, "off", 2.44),  # a state again, seconds later
            (shuffled, "on", 1.0), (shuffled, "on", 3.0), (shuffled, "off", 2.0), (shuffled, "off", 4.0)]
    taken = rt.feed.accept([{"device_id": inter.id, "channel": channel, "event": event, "sim_time_s": t0 + s}
                            for channel, event, s in sent])
    assert taken.accepted == len(sent) and not taken.rejected
    rt.run()

    def logged(path, time_column):
        with open(path, newline="") as fh:
            return [(int(r["Parameter"]), int(r["EventId"]), round(float(r[time_column]) - t0, 1))
                    for r in csv.DictReader(fh) if r["DeviceId"] == inter.id and r["EventId"] in ("81", "82")]

    expected = [(flooded, 82, 0.5), (flooded, 81, 2.0)]
    expected_shuffled = [(shuffled, 82, 1.0), (shuffled, 81, 2.0), (shuffled, 82, 3.0), (shuffled, 81, 4.0)]
    rows = logged(run_dir / "live_events.csv", "sim_time_s")
    assert [r for r in rows if r[0] == flooded] == expected, rows
    assert [r for r in rows if r[0] == shuffled] == expected_shuffled, rows
    with open(run_dir / "events.csv", newline="") as fh:
        events = [r for r in csv.DictReader(fh) if r["DeviceId"] == inter.id and r["EventId"] in ("81", "82")]
    assert len(events) == len(rows) == 6
    detectors = rt.status()["feeds"]["detectors"]
    assert detectors["repeated_state"] == 3 and detectors["repeated_events"] == 0, detectors
