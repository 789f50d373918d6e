"""live_events.csv, and the interval records, keep the wall clock a detector feed keeps: the loop's first tick.

Found in a trial: a device stamped an event 18:41:16.947 and live_events.csv logged it at 18:41:15.1. The feed
maps a message's `time` onto the run's clock from the loop's first tick, but the rows' wall clock started when
the run opened (before the API, the feeds and the first map were up), and lost the fraction of its second
besides: every feed event was 1.3-1.8 s early, and so were the records' timestamps. Here a real run waits
between opening and its first tick as `signalwise live` does while it starts its API.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import threading
import time

import pytest
from support.waiting import until

from signalwise.core.types import EventCode
from signalwise.runtime.config import RunConfig

#: what `signalwise live` spends between opening the run and its first tick, and then some (the API starts)
OPEN_TO_FIRST_TICK_S = 1.5


def _rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _local(stamp: str) -> dt.datetime:
    """A live_events.csv TimeStamp (naive local time) as an aware time."""
    return dt.datetime.fromisoformat(stamp).astimezone()


@pytest.mark.slow
def test_a_feed_event_sent_with_its_own_time_is_logged_at_that_time(tmp_path):
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    run_dir = tmp_path / "run"
    rt = LiveRuntime(RunConfig(scenario="corridor", interval_s=2.0),
                     LiveOptions(speed=1.0, duration_s=3600.0, field="none", sink="shadow"), run_dir)
    rt.open()
    inter = rt.field.intersections[0]
    channel = next(d.channel for d in inter.detectors if d.kind == "stopbar")
    begin_s = rt.stepper.t
    time.sleep(OPEN_TO_FIRST_TICK_S)
    loop = threading.Thread(target=rt.run, daemon=True)
    loop.start()
    try:
        assert until(lambda: rt.stepper.t >= begin_s + 3.0, 30, every_s=0.01)
        # a device's own stamp of a vehicle that arrived a moment ago, to the millisecond as devices send it
        sent = dt.datetime.now().astimezone() - dt.timedelta(seconds=0.5)
        result = rt.feed.accept([{"device_id": inter.id, "channel": channel, "event": "on",
                                  "time": sent.isoformat(timespec="milliseconds")}])
        assert result.accepted == 1, result
        assert until(lambda: (run_dir / "records.jsonl").stat().st_size > 0, 30, every_s=0.05)
    finally:
        rt.stop()
        loop.join(60)
    assert not loop.is_alive()
    sent = dt.datetime.fromisoformat(sent.isoformat(timespec="milliseconds"))
    feed_began = dt.datetime.fromtimestamp(rt.feed.clock.wall_s).astimezone()

    logged = [r for r in _rows(run_dir / "live_events.csv") if (r["DeviceId"], r["EventId"], r["Parameter"])
              == (inter.id, str(int(EventCode.DETECTOR_ON)), str(channel))]
    assert len(logged) == 1, logged
    # the log's resolution: the event's simulated second and the clock's origin are each kept to 0.1 s
    off_s = (_local(logged[0]["TimeStamp"]) - sent).total_seconds()
    assert abs(off_s) <= 0.1 + 1e-3, f"sent at {sent.isoformat()}, logged at {logged[0]['TimeStamp']} ({off_s:+.2f} s)"

    # the first interval's record begins where the feed's clock does (records carry whole seconds)
    first = json.loads((run_dir / "records.jsonl").read_text().splitlines()[0])
    record_began = dt.datetime.fromisoformat(first["timestamp"].replace("Z", "+00:00"))
    assert -0.05 - 1e-3 <= (feed_began - record_began).total_seconds() < 1.0, (first["timestamp"], feed_began)


@pytest.mark.slow
def test_the_signals_starting_states_are_logged_on_the_clock_of_the_first_tick(tmp_path):
    """With a simulator the starting rows are written when the run opens: they wait for the clock of the first
    tick, so every row of live_events.csv is on one clock (wall time = origin + sim_time_s)."""
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    run_dir = tmp_path / "run"
    rt = LiveRuntime(RunConfig(scenario="single"),
                     LiveOptions(speed=1.0, duration_s=3.0, in_process=True), run_dir)
    rt.open()
    time.sleep(OPEN_TO_FIRST_TICK_S)
    before = dt.datetime.now().astimezone()
    rt.run()
    rows = _rows(run_dir / "live_events.csv")
    starting = [r for r in rows if float(r["sim_time_s"]) == min(float(r["sim_time_s"]) for r in rows)]
    assert starting and any(r["EventId"] == str(int(EventCode.PHASE_BEGIN_GREEN)) for r in starting), rows[:5]
    origins = {round((_local(r["TimeStamp"]) - dt.timedelta(seconds=float(r["sim_time_s"]))).timestamp(), 1)
               for r in rows}
    assert len(origins) == 1, origins
    # the first tick's clock (taken inside run(), after `before`, to the tenth), not open()'s 1.5 s earlier
    first_s = (_local(starting[0]["TimeStamp"]) - before).total_seconds()
    assert -0.1 <= first_s < OPEN_TO_FIRST_TICK_S - 0.5, f"the starting rows are stamped {first_s:+.2f} s from run()"
