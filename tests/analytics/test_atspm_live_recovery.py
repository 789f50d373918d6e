"""ATSPM over a live run that recovered from a simulator crash reads one timeline (docs/atspm.md, "A live run's
recoveries").

The live runtime resumes from the state saved at R and replays; its events.csv holds the log up to the crash, one
event 240 per signal (R, whole seconds rewound), the events that opened the intervals in force at R at their
original times, then the replay. The span from R to the crash is logged twice: the copy logged before the marker
is superseded by the replay, which the run went on with.
"""

from __future__ import annotations

import csv
import datetime as dt

import pandas as pd
import pytest
from support.crashes import crash_at

from signalwise.analytics.atspm import compute_all, detectors_from_frame, read_detectors, read_event_log
from signalwise.core import DEFAULT_START, EventCode, format_timestamp

RESUMED_S, CRASHED_S = 90.0, 119.0
RUNTIME_RECOVERY = int(EventCode.RUNTIME_RECOVERY)


def phase_events(b):
    """Device J1, phases 2 and 4 on a 60 s cycle from b: phase 2 green b..b+26, yellow to b+29, red clearance to
    b+30; phase 4 green b+30..b+56, yellow to b+59, red clearance to b+60."""
    return ([(b, 11, 4)] if b else []) + [(b, 1, 2), (b + 26, 8, 2), (b + 29, 9, 2), (b + 29, 10, 2),
                                         (b + 30, 11, 2), (b + 30, 1, 4), (b + 56, 8, 4), (b + 59, 9, 4),
                                         (b + 59, 10, 4)]


def arrival(s, channel=5):
    return [(s, 82, channel), (s + 0.5, 81, channel)]


#: the timeline the run went on with: the log up to R, then the replay. Channel 5 is phase 2's advance loop,
#: channel 1 phase 2's stop bar (a vehicle on it from 85 to 92), channel 2 phase 4's (a vehicle from 90.0 to 91.3)
ONE_TIMELINE = sorted(
    [e for b in (0, 60, 120, 180) for e in phase_events(b)] + [(240, 11, 4), (240, 1, 2)]
    + [e for s in (5, 15, 35, 45, 65, 75, 95, 110, 125, 135, 155, 165, 185, 195, 215, 225) for e in arrival(s)]
    + [(20, 82, 1), (21, 81, 1), (85, 82, 1), (92, 81, 1), (140, 82, 1), (141, 81, 1), (90, 82, 2), (91.3, 81, 2)])
#: what the crashed simulator logged after R before it died at 119: phase 4 gapped out at 100 (phase 2 green at
#: 104), five arrivals on the advance loop, the stop bars' vehicles left at 93 and 91.0
SUPERSEDED = sorted([(100, 8, 4), (103, 9, 4), (103, 10, 4), (104, 11, 4), (104, 1, 2), (93, 81, 1), (91, 81, 2)]
                    + [e for s in (92, 97, 105, 112, 118) for e in arrival(s)])


def recovered_rows():
    """events.csv as `LiveRuntime._recover` writes it: the log up to the crash (up to R as the run went on, then
    the superseded span), the marker, the opening event re-stated (phase 4's begin green at 90), then the replay:
    the restored simulator reports the vehicles standing on loops at R as detector-ons at R (channel 1's since 85,
    channel 2's since 90.0), then the rest of the timeline."""
    before = sorted([e for e in ONE_TIMELINE if e[0] <= RESUMED_S] + SUPERSEDED)
    marker = [(RESUMED_S, RUNTIME_RECOVERY, round(CRASHED_S - RESUMED_S))]
    opening = [(90, 1, 4)]
    replay = [(90, 82, 1), (90, 82, 2)] + [e for e in ONE_TIMELINE if e[0] > RESUMED_S]
    return before + marker + opening + replay


def write_log(path, rows):
    """The runtime's writer: csv rows in the order given, timestamps on the simulation clock."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(("TimeStamp", "DeviceId", "EventId", "Parameter"))
        w.writerows((format_timestamp(s), "J1", code, param) for s, code, param in rows)
    return path


DETECTORS = detectors_from_frame(pd.DataFrame(
    [("J1", 2, 5, "Advance"), ("J1", 2, 1, "Presence"), ("J1", 4, 2, "Presence")],
    columns=["DeviceId", "Phase", "Parameter", "Function"]))


def tables(log, detectors=DETECTORS):
    res = compute_all(log, detectors, bin_min=1, project=False, only=("actuations", "arrival_on_green"))
    act = res.tables["actuations"].groupby(res.tables["actuations"]["TimeStamp"].astype(str).str[11:16])["Total"]
    aog = res.tables["arrival_on_green"]
    aog = aog[aog["Phase"] == 2]
    return (act.sum().to_dict(), dict(zip(aog["TimeStamp"].astype(str).str[11:16],
                                          zip(aog["Total_Actuations"], aog["Green_Actuations"], strict=True),
                                          strict=True)), res.warnings)


def test_the_rewound_span_counts_once_as_the_replay_logged_it(tmp_path):
    log = read_event_log(write_log(tmp_path / "events.csv", recovered_rows()))
    actuations, aog, warnings = tables(log)
    # detector-ons per minute, every channel:
    #   00:00  stop bar 20; advance 5, 15, 35, 45                                      = 5
    #   00:01  stop bar 85 (the replay's 82 at 90.0 is that vehicle again), phase 4's stop bar 90.0 (logged before
    #          the crash at R and again by the replay: once); advance 65, 75 (before R), 95, 110 (replay); the
    #          crashed simulator's 92, 97, 105, 112, 118 are superseded                 = 6  (old code: 12)
    #   00:02  stop bar 140; advance 125, 135, 155, 165                                 = 5
    #   00:03  advance 185, 195, 215, 225                                               = 4
    assert actuations == {"00:00": 5, "00:01": 6, "00:02": 5, "00:03": 4}
    # arrivals on green, phase 2: complete cycles run from its first begin red clearance (29) to its last (209);
    # it is green 0-26, 60-86, 120-146, 180-206 (the replay's phase 4 holds green 90-116)
    #   00:00  35, 45 on red                       2 arrivals, 0 on green
    #   00:01  65, 75 on green; 95, 110 on red     4, 2
    #   00:02  125, 135 on green; 155, 165 on red  4, 2
    #   00:03  185, 195 on green (215, 225 after the last begin red)  2, 2
    assert aog == {"00:00": (2, 0), "00:01": (4, 2), "00:02": (4, 2), "00:03": (2, 2)}
    # said once, with what was left out: 17 rows of the crashed simulator after R (5 phase events, 10 of the five
    # arrivals, 2 stop-bar offs); 3 re-statements read once (phase 4's begin green, the two detector-ons at R)
    assert log.report.recoveries == [("2025-01-06 00:01:30", 29, 17, 3)]
    (said,) = [w for w in warnings if "recovery" in w]
    assert said.startswith("recovery at 2025-01-06 00:01:30") and "17 events of the rewound span" in said
    assert "replaced by the replay" in said
    # nothing else needed repairing: no duplicate, no row out of order, no restart read at the marker
    assert not [w for w in warnings if "duplicate" in w or "out of time order" in w or "interrupted" in w]


def test_the_recovered_log_reads_as_the_one_timeline_logged_without_a_crash(tmp_path):
    recovered = read_event_log(write_log(tmp_path / "recovered.csv", recovered_rows()))
    plain = read_event_log(write_log(tmp_path / "plain.csv", ONE_TIMELINE))
    assert len(recovered) == len(plain)  # the marker is read, not kept: an `events import` stores one timeline
    for column in ("time_us", "device", "event", "param"):
        assert (getattr(recovered, column) == getattr(plain, column)).all()
    assert tables(recovered)[:2] == tables(plain)[:2]
    assert plain.report.recoveries == [] and plain.report.unread_recoveries == []  # a log without 240: as before
    from signalwise.analytics.atspm import recoveries

    assert recoveries.RUNTIME_RECOVERY == RUNTIME_RECOVERY  # its own copy of the code, kept equal


@pytest.mark.parametrize("why", ["sorted by time", "a field controller's own 240"])
def test_a_240_not_in_the_shape_a_live_run_writes_is_read_as_it_is(tmp_path, why):
    """A live run's log sorted by time (the re-stated begin green no longer follows the marker), or a field log
    whose controller uses 240 for something else: no row is dropped, and a warning says how it was read."""
    rows = sorted(recovered_rows() if why == "sorted by time" else ONE_TIMELINE + [(150, 240, 7)])
    log = read_event_log(write_log(tmp_path / "events.csv", rows))
    assert log.report.recoveries == []
    assert log.report.unread_recoveries == [("2025-01-06 00:01:30" if why == "sorted by time" else "2025-01-06 00:02:30",
                                             ["J1"])]
    assert len(log) == len(set(rows))  # every row but exact copies, as any log is read
    (said,) = [w for w in log.report.warnings() if "event 240" in w]
    assert "read as it is" in said


def test_a_real_live_run_with_a_simulator_crash_reads_as_its_replay(tmp_path):
    """`corridor` run live in-process for 150 s with its state saved every 30 s, its simulator killed at 119: the
    recovery resumes at 90. Read back, the rows up to R are the log before the marker and those after R the
    replay's, as the file says, and the rewound span is counted once."""
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    rt = LiveRuntime(RunConfig(scenario="corridor", controller="max-pressure"),
                     LiveOptions(speed=None, duration_s=150, in_process=True, state_every_s=30), tmp_path / "live")
    rt.open()
    crash_at(rt, [CRASHED_S])
    rt.run()
    assert [(r["resumed_at_s"], r["rewound_s"]) for r in rt.recoveries] == [(RESUMED_S, 29.0)]

    with open(rt.run_dir / "events.csv", newline="") as fh:
        rows = [(r[0], r[1], int(r[2]), int(r[3])) for r in list(csv.reader(fh))[1:]]
    at = format_timestamp(RESUMED_S)
    first = next(i for i, r in enumerate(rows) if r[2] == RUNTIME_RECOVERY)
    past = max(i for i, r in enumerate(rows) if r[2] == RUNTIME_RECOVERY) + 1
    before, replay = rows[:first], rows[past:]
    assert {r[1] for r in rows[first:past]} == {i.id for i in rt.stepper.intersections}  # one marker per signal

    log = read_event_log(rt.run_dir / "events.csv")
    superseded = sum(r[0] > at for r in before)
    assert superseded > 0 and log.report.recoveries[0][:3] == ("2025-01-06 00:01:30", 29, superseded)
    start_us = int((DEFAULT_START - dt.datetime(1970, 1, 1)) / dt.timedelta(microseconds=1))
    stamps = [format_timestamp((us - start_us) / 1e6) for us in log.time_us.tolist()]
    read = {(s, log.devices[d], c, p) for s, d, c, p in zip(stamps, log.device.tolist(), log.event.tolist(),
                                                            log.param.tolist(), strict=True)}
    assert {r for r in read if r[0] > at} == {r for r in replay if r[0] > at}
    assert {r for r in read if r[0] < at} == {r for r in before if r[0] < at}
    _actuations, _aog, warnings = tables(log, read_detectors(rt.run_dir / "detectors.csv"))
    assert not [w for w in warnings if "interrupted" in w]  # no restart read where the two timelines met
