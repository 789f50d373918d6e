"""A field controller's log, as an ATSPM analyst brings it: a power failure, a stuck-on stop bar, a log that starts
mid-bin, a detector channel the configuration forgot. Each is named in a warning and kept out of the figures it
would spoil (docs/atspm.md, "Data gaps and controller interruptions", "Detector health").

Every log here is one device, "1", running phase 2 alone on a 60 s cycle from 07:00:00: begin green (1) at c,
force-off (6) and yellow (8) at c + 20, end of yellow (9) and begin red clearance (10) at c + 24, end of red
clearance (11) at c + 26.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from signalwise.analytics.atspm import compute_all, detectors_from_frame, events_from_frame
from signalwise.api import create_app
from signalwise.store import bulk_insert_events, get_engine
from signalwise.store.settings import Settings

T0 = dt.datetime(2025, 1, 6, 7, 0, 0)


def log_of(rows, start=T0):
    """(seconds after `start`, code, parameter) of device "1" -> EventLog (rows put in time order, as logged)."""
    rows = sorted(rows)
    return events_from_frame(pd.DataFrame({
        "TimeStamp": [start + dt.timedelta(seconds=s) for s, _c, _p in rows], "DeviceId": "1",
        "EventId": [c for _s, c, _p in rows], "Parameter": [p for _s, _c, p in rows]}))


def config(*rows):
    """(channel, function) rows of device "1", phase 2."""
    return detectors_from_frame(pd.DataFrame([("1", 2, ch, fn) for ch, fn in rows],
                                             columns=["DeviceId", "Phase", "Parameter", "Function"]))


def cycle(c, yellow=True):
    """Phase 2's events of the cycle begun at c; without its yellow and red, a green the controller never ended."""
    return [(c, 1, 2)] + ([(c + 20, 6, 2), (c + 20, 8, 2), (c + 24, 9, 2), (c + 24, 10, 2), (c + 26, 11, 2)]
                          if yellow else [])


def arrival(s, channel=1):
    return [(s, 82, channel), (s + 0.5, 81, channel)]


# --- 1. a green cut off by a power failure ----------------------------------------------------------------------

#: the controller's own words for the failure: 182 power failure detected, 184 power restored, 173 unit flash status
#: (1: other) (Indiana hi-res enumeration)
LOGGED = [(190, 182, 0), (250, 184, 0), (250, 173, 1)]


def restart_log(outage):
    """Cycles at 0, 60, 120; the cycle begun at 180 loses power at 190 (phase 2 green since 180, an arrival at 185);
    power is back at 250 (an arrival at 252, before any green), and the controller starts again with phase 2
    green at 260, then cycles at 320, 380, 440 (the last arrival at 480). Arrivals on the advance loop (channel 1)
    at c + 5 (on green) and c + 40 (on red) in every normal cycle. `outage`: the events logged for it."""
    rows = []
    for c in (0, 60, 120, 260, 320, 380, 440):
        rows += cycle(c) + arrival(c + 5) + arrival(c + 40)
    rows += cycle(180, yellow=False) + arrival(185) + arrival(252) + outage
    return log_of(rows)


@pytest.mark.parametrize(("outage", "green_s", "why"), [
    # the green of 07:03:00 ends at the power failure (182) at 07:03:10: 10 s of it
    (LOGGED, 10.0, "power failure (182) at 2025-01-06 07:03:10"),
    # no 182 logged (the power went before the controller could): the failure came after the device's last event
    # before the 184, the off of the arrival at 185 (185.5): 5.5 s of green
    ([(250, 184, 0)], 5.5, "power restored (184) at 2025-01-06 07:04:10 with no power failure logged (the power "
                           "lost after 2025-01-06 07:03:05.5)"),
    # nothing logged at all: two begin greens of phase 2 with no yellow between say the controller restarted
    # somewhere in that green, so none of it is read as green
    ([], 0.0, "phase 2 began green (1) at 2025-01-06 07:03:00 and again at 2025-01-06 07:04:20 with no yellow (8)"),
])
def test_a_green_cut_by_a_power_failure_ends_there_and_its_cycle_is_left_out(outage, green_s, why):
    res = compute_all(restart_log(outage), config((1, "Advance")), project=False)
    # Arrivals on green count complete cycles, begin red (10) to begin red: from the first, 07:00:24, to the last,
    # 07:07:44. The cycle from 07:02:24 to 07:04:44 holds the outage: its arrivals (160 on red, 185 on green, 252
    # in the dark, 265 on the new green) are left out, as a cycle across a data gap is. Left: 40 r, 65 g, 100 r,
    # 125 g, 300 r, 325 g, 360 r, 385 g, 420 r, 445 g = 10 arrivals, 5 on green, 50 %. (Read as before, the green
    # of 07:03:00 lasted until 07:04:20 and all 14 arrivals counted, 8 on green: 252 in the dark among them.)
    aog = res.tables["arrival_on_green"]
    assert aog[["Total_Actuations", "Green_Actuations"]].values.tolist() == [[10, 5]]
    assert any(w.startswith("arrival_on_green: 4 arrivals in cycles across a controller interruption left out")
               for w in res.warnings), res.warnings

    # g/C: 3 greens of 20 s before the outage, the cut green, 4 greens of 20 s after it: (60 + cut + 80) s over the
    # 480.5 s the log covers (07:00:00 to the last off at 07:08:00.5). Read as before: 60 + 80 + 80 = 220 s.
    pr = res.tables["platoon_ratio"]
    assert pr["Green_Seconds"].tolist() == [pytest.approx(140.0 + green_s)]
    assert pr["Green_Ratio"].tolist() == [pytest.approx((140.0 + green_s) / 480.5)]

    # the split monitor measures no cycle across it: neither the cut green's (07:03:00, 80 s to the next green)
    # nor, in 1-minute bins, a bin the outage touches (07:03 and 07:04) as complete
    starts = set(res.tables["split_monitor"]["TimeStamp"].dt.strftime("%H:%M:%S"))
    assert "07:03:00" not in starts and {"07:02:00", "07:04:20"} <= starts
    binned = compute_all(restart_log(outage), config((1, "Advance")), bin_min=1, only=("actuations",))
    assert {m: done for m, done in completeness(binned.tables["actuations"]).items() if "07:02" <= m <= "07:05"} \
        == {"07:02": True, "07:03": False, "07:04": False, "07:05": True}

    # one warning names the device, when and why
    warned = [w for w in res.warnings if "controller interrupted" in w]
    assert len(warned) == 1 and warned[0].startswith("device 1: ") and why in warned[0], res.warnings
    assert "ran its phases again from 2025-01-06 07:04:20" in warned[0]


def test_a_log_without_interruptions_warns_of_none():
    rows = [r for c in range(0, 480, 60) for r in cycle(c) + arrival(c + 5) + arrival(c + 40)]
    res = compute_all(log_of(rows), config((1, "Advance")), project=False)
    assert not [w for w in res.warnings if "interrupt" in w]
    assert res.tables["platoon_ratio"]["Green_Seconds"].tolist() == [160.0]  # 8 greens of 20 s


# --- 2. a stop-bar detector stuck on ----------------------------------------------------------------------------

def stop_bar_log(held):
    """Ten cycles (0 to 540); at the stop bar (channel 2) a vehicle from c + 1 to c + 3 (on green) and one at
    c + 30 (after the measured 5 s of red). `held`: (on, off) of one more actuation, off None for none logged;
    the stop bar logs nothing else from its on."""
    rows = []
    for c in range(0, 600, 60):
        rows += cycle(c)
        rows += [r for r in arrival(c + 1, 2)[:1] + [(c + 3, 81, 2)] + arrival(c + 30, 2) if r[0] < held[0]]
    rows += [(held[0], 82, 2)] + ([(held[1], 81, 2)] if held[1] is not None else [])
    return log_of(rows)


def test_a_stop_bar_stuck_on_is_named_and_its_cycles_are_not_split_failures():
    # on at 07:04:10 (10 s into the green of 07:04:00) and never off: through the whole greens of 07:05 to 07:09
    res = compute_all(stop_bar_log((250.0, None)), config((2, "Presence")))
    # A cycle runs from begin green to 5 s into red (c to c + 29). Cycles 07:00 to 07:03: green occupancy 2/20,
    # red 0: no failure. Read as before, 07:04 had green occupancy (2 + 10)/20 = 0.6 and red 5/5, and 07:05 to
    # 07:09 were on throughout: 5 split failures of 10 cycles. The stuck period (07:04:10 on) overlaps the cycles
    # from 07:04, which are left out: 4 cycles, none failed.
    sf = res.tables["split_failures"]
    assert sf[["Cycles", "Split_Failure"]].values.tolist() == [[4, 0]]
    assert res.tables["split_failure_cycles"]["Green_Occupancy"].tolist() == [pytest.approx(0.1)] * 4
    warned = [w for w in res.warnings if "stuck-on detector" in w]
    assert len(warned) == 1 and warned[0].startswith(
        "device 1 detector channel 2: on from 2025-01-06 07:04:10 to the log's end (2025-01-06 07:09:26) with no "
        "off, through 5 whole greens of phase 2"), res.warnings
    assert warned[0].endswith("the split-failure cycles of phase 2 that overlap the period are left out (they would "
                              "read 100 % occupancy)")


def test_a_queue_on_the_stop_bar_through_two_greens_is_a_split_failure_not_a_stuck_detector():
    # on from 07:04:50 (red) to 07:07:10: through the whole greens of 07:05 and 07:06 (07:07's yellow comes after
    # the off), as an over-saturated queue may hold a stop-bar zone
    res = compute_all(stop_bar_log((290.0, 430.0)), config((2, "Presence")))
    assert not [w for w in res.warnings if "stuck" in w]
    # the cycles of 07:05 and 07:06 are on through green and the first 5 s of red: 2 split failures of 10 cycles
    assert res.tables["split_failures"][["Cycles", "Split_Failure"]].values.tolist() == [[10, 2]]


# --- 3. a log (or an API window) that starts mid-bin ------------------------------------------------------------

def busy_log(until_s):
    """Cycles every 60 s with arrivals on the advance loop (channel 1) at c + 5 and c + 40, up to `until_s`
    (a cycle's begin green the last event when `until_s` is a whole minute)."""
    rows = [r for c in range(0, until_s + 1, 60) for r in cycle(c) + arrival(c + 5) + arrival(c + 40)]
    return [r for r in rows if r[0] <= until_s]


def completeness(table):
    return dict(zip(table["TimeStamp"].dt.strftime("%H:%M"), table["Complete"].astype(bool), strict=True))


def test_the_bin_the_log_starts_inside_is_not_complete():
    # from 07:05:00 to 07:45:00: ten minutes of the 07:00 bin, all of 07:15 and of 07:30
    res = compute_all(log_of(busy_log(2400), start=T0 + dt.timedelta(minutes=5)), config((1, "Advance")))
    # 20 actuations in the ten minutes of 07:00: read as a whole bin, 80 veh/h instead of 120
    acts = res.tables["actuations"]
    assert acts["Total"].tolist()[0] == 20
    for name in ("actuations", "terminations", "arrival_on_green", "split_monitor_binned"):
        assert completeness(res.tables[name]) == {"07:00": False, "07:15": True, "07:30": True}, name
    # a first event in the bin's first second is the bin's start: a controller stamps to the tenth
    late = compute_all(log_of([(s + 0.4, c, p) for s, c, p in busy_log(900)]), config((1, "Advance")),
                       only=("actuations",))
    assert completeness(late.tables["actuations"])["07:00"]


def test_an_api_window_that_starts_mid_bin_marks_that_bin_incomplete(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'store.db'}")
    bulk_insert_events(engine, [(T0 + dt.timedelta(seconds=s), "1", c, p) for s, c, p in busy_log(3600)])
    det = tmp_path / "det.csv"
    det.write_text("DeviceId,Phase,Parameter,Function\n1,2,1,Advance\n")
    with TestClient(create_app(Settings(database_url=f"sqlite:///{tmp_path / 'store.db'}",
                                        detector_config=det))) as client:
        r = client.get("/api/v1/atspm/actuations", params={"device": "1", "start": "2025-01-06T07:07:00",
                                                           "end": "2025-01-06T07:38:00"})
    assert r.status_code == 200, r.text
    # the window holds 07:07-07:15 of the 07:00 bin, 07:15-07:30 whole, 07:30-07:38 of the 07:30 bin
    assert {row["TimeStamp"][11:16]: row["Complete"] for row in r.json()["rows"]} == {
        "07:00": False, "07:15": True, "07:30": False}


# --- 4. a detector channel the configuration does not name ------------------------------------------------------

def test_a_vehicle_channel_with_no_configuration_row_is_named():
    rows = [r for c in range(0, 300, 60) for r in cycle(c) + arrival(c + 5) + arrival(c + 7, channel=9)]
    res = compute_all(log_of(rows), config((1, "Advance")))
    # channel 9 logged an actuation in each of the 5 cycles; it counts in actuations and in no phase measure
    assert [w for w in res.warnings if "channel(s) 9" in w] == [
        "device 1: 5 detector-on events (82) on channel(s) 9 that no row of the detector configuration names: "
        "counted in actuations, left out of every phase measure (arrivals on green, split failures, yellow/red "
        "actuations, phase wait); add a Presence, Advance or Yellow_Red row for each to measure them"]
    assert res.tables["actuations"].set_index("Detector")["Total"].to_dict() == {1: 5, 9: 5}
    clean = compute_all(log_of([r for c in range(0, 300, 60) for r in cycle(c) + arrival(c + 5)]),
                        config((1, "Advance")))
    assert not [w for w in clean.warnings if "no row of the detector configuration" in w]
