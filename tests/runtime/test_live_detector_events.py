"""A live run on SUMO logs each detector's on (82) and off (81) in time order, alternating, and a recovery from a
simulator crash replays them as the run that never crashed logged them (real in-process runs of the corridor).

Found in a trial: SUMO reports a vehicle that left a presence loop at a step's very end again in the next step's
data, and the loop read it as a new passage: "off at t, on at an earlier time, off at t" on J3's stop bars (an
exact duplicate and rows out of order for `signalwise atspm --run`). And the vehicles over the detectors were
kept from the crash time through a recovery: a loop occupied then logged no on in the replay until that vehicle
passed again, and an off with no on before it."""

from __future__ import annotations

import pytest
from support.crashes import crash_at

from signalwise.core import EventCode, read_events
from signalwise.runtime.config import RunConfig
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

DETECTOR = (int(EventCode.DETECTOR_ON), int(EventCode.DETECTOR_OFF))


def _run(run_dir, duration_s: float, crash_at_s: float | None = None) -> LiveRuntime:
    rt = LiveRuntime(RunConfig(scenario="corridor", controller="max-pressure", seed=3),
                     LiveOptions(speed=None, duration_s=duration_s, in_process=True, state_every_s=30), run_dir)
    rt.open()
    if crash_at_s is not None:
        crash_at(rt, [crash_at_s])
    rt.run()
    return rt


def _detector_rows(events) -> list[tuple[float, str, int, int]]:
    return [(e.time_s, e.device_id, int(e.event_code), int(e.parameter)) for e in events
            if int(e.event_code) in DETECTOR]


def test_each_detectors_on_and_off_alternate_in_time_order_with_no_duplicate(tmp_path):
    rt = _run(tmp_path / "calm", 300.0)
    rows = _detector_rows(read_events(rt.run_dir / "events.csv"))
    assert len(rows) > 200  # the corridor's stop bars and advance loops are busy
    assert len(rows) == len(set(rows)), "an exact duplicate detector row"
    last: dict[tuple[str, int], tuple[float, int]] = {}
    for t, device, code, channel in rows:
        before = last.get((device, channel))
        assert before is None or (t >= before[0] and code != before[1]), (device, channel, before, (t, code))
        last[device, channel] = (t, code)
    assert rt._alternation.repeated_state == 0  # nothing was left for the writer to drop


#: how far the replay's traffic follows the calm run's: SUMO's restored state then drives it apart (a vehicle
#: over an advance loop 0.6 s earlier at 492.3 s after a restore at 480 s; 2.5 s earlier at 95.9 s after one at
#: 90 s, whatever the crash time), which no detector bookkeeping changes
SAME_TRAFFIC_S = 10.0


@pytest.mark.slow
def test_a_recovery_replays_the_detector_events_of_a_run_that_never_crashed(tmp_path):
    """Restored at 480 s: vehicle W_J1.w0.89 is over J1's channel 9 (the stop bar's zone), moving; the restored
    SUMO does not know it is over the loop, so its leaving (480.2 s in the calm run) is logged at the first
    step's end (481.0 s), not never (a detector on for the rest of the run)."""
    calm = _run(tmp_path / "calm", 500.0)
    crashed = _run(tmp_path / "crashed", 500.0, crash_at_s=485.0)
    (recovery,) = crashed.recoveries
    resumed_s = recovery["resumed_at_s"]
    assert (resumed_s, recovery["crashed_at_s"]) == (480.0, 485.0)
    events = list(read_events(crashed.run_dir / "events.csv"))
    marker = next(i for i, e in enumerate(events) if e.event_code == EventCode.RUNTIME_RECOVERY)
    replay = _detector_rows(events[marker:])
    calm_rows = _detector_rows(read_events(calm.run_dir / "events.csv"))

    def span(rows):
        return {r for r in rows if resumed_s < r[0] <= resumed_s + SAME_TRAFFIC_S}
    assert len(span(calm_rows)) > 40
    first_step_s = resumed_s + 1.0
    only_calm, only_replay = span(calm_rows) - span(replay), span(replay) - span(calm_rows)
    assert only_calm == {(480.2, "J1", int(EventCode.DETECTOR_OFF), 9)}
    assert only_replay == {(first_step_s, d, code, c) for _t, d, code, c in only_calm}
    # at the resume time itself, only what the calm run logged too (a leave at 480.01 s is logged at 480.0 after
    # the marker): no vehicle standing over a loop since before it is logged entering again
    assert {r for r in replay if r[0] == resumed_s} <= {r for r in calm_rows if r[0] == resumed_s}
    # all through the replay, each channel's events alternate in time order
    last: dict[tuple[str, int], tuple[float, int]] = {}
    for t, device, code, channel in replay:
        before = last.get((device, channel))
        assert before is None or (t >= before[0] and code != before[1]), (device, channel, before, (t, code))
        last[device, channel] = (t, code)
