"""A cycle across a data gap (an outage, the spring-forward hour) is not a measured cycle."""

import datetime as dt

import pandas as pd
from atspm_cases import make_config, make_events

from signalwise.analytics.atspm import compute_all, detectors_from_frame, events_from_frame

CFG = detectors_from_frame(make_config([("7", 2, 1, "Presence"), ("7", 2, 5, "Advance")]))
CYCLE_S = 40.0


def cycle(t, green=20.0):
    return [(t, "7", 1, 2), (t + green, "7", 4, 2), (t + green, "7", 8, 2), (t + green + 4, "7", 9, 2),
            (t + green + 4, "7", 10, 2), (t + green + 6, "7", 11, 2)]


def traffic(t):
    """A cycle with arrivals on the advance loop and a call on the stop-bar loop while the phase is red."""
    return cycle(t) + [(t + s, "7", 82, 5) for s in (3.0, 11.0, 30.0)] + [(t + 28.0, "7", 82, 1),
                                                                         (t + 41.0, "7", 81, 1)]


def log_with_silence(silent_from_s, silent_to_s, start=dt.datetime(2025, 1, 6, 7, 0, 0), until_s=2400):
    """Cycles every 40 s, the device silent (nothing logged) from `silent_from_s` to `silent_to_s`."""
    rows = [r for k in range(int(until_s // CYCLE_S)) for r in traffic(k * CYCLE_S)]
    rows = [r for r in rows if not silent_from_s <= r[0] < silent_to_s]
    return events_from_frame(make_events(rows, start=start))


def test_cycles_across_an_outage_are_left_out_and_named():
    # the device goes silent 430 s in (the cycle begun at 400 s in its red, a call waiting) until 1600 s
    res = compute_all(log_with_silence(430.0, 1600.0), CFG)
    sm = res.tables["split_monitor"]
    assert sm["Cycle_s"].max() == CYCLE_S and sm["RedClearance_s"].max() == 2.0
    assert sm["Red_s"].max() < CYCLE_S
    starts = set(sm["TimeStamp"])
    assert pd.Timestamp("2025-01-06 07:06:00") in starts  # the cycle before, ending at 400 s, is measured
    assert pd.Timestamp("2025-01-06 07:06:40") not in starts  # begun at 400 s, its red clearance ends after the gap
    assert res.tables["pcd_cycles"]["Cycle_s"].max() == CYCLE_S
    # a call before the gap (428 s) served after it is no wait; waits either side are
    assert res.tables["phase_wait"]["Max_Wait_s"].max() < CYCLE_S
    warned = [w for w in res.warnings if "across a data gap left out" in w]
    assert any(w.startswith("split_monitor: 1 phase cycles") and "device 7 from 2025-01-06 07:06:40" in w
               for w in warned), warned
    assert any(w.startswith("pcd: ") for w in warned) and any(w.startswith("phase_wait: 1 waits") for w in warned)


def test_binned_tables_mark_the_bins_a_gap_touches():
    res = compute_all(log_with_silence(430.0, 1600.0), CFG)
    for name in ("split_monitor_binned", "arrival_on_green", "actuations", "terminations", "phase_wait"):
        table = res.tables[name]
        incomplete = set(table.loc[~table["Complete"].astype(bool), "TimeStamp"])
        # 07:00-07:15 holds the gap's start, 07:15-07:30 its end; the log ends inside 07:30-07:45
        assert incomplete == {pd.Timestamp("2025-01-06 07:00"), pd.Timestamp("2025-01-06 07:15"),
                              pd.Timestamp("2025-01-06 07:30")}, name


def test_arrivals_in_a_cycle_across_a_gap_are_not_counted_on_a_guessed_signal():
    whole = compute_all(log_with_silence(0.0, 0.0), CFG, only=("arrival_on_green",))
    # the log resumes 10 s into a green (its begin green lost): the arrival at 1611 s was on green, though the
    # last state logged before it is the red of 424 s
    cut = compute_all(log_with_silence(430.0, 1610.0), CFG, only=("arrival_on_green",))
    # arrivals in cycles the log shows whole: 2 of 3 on green, whatever the gap
    for res in (whole, cut):
        aog = res.tables["arrival_on_green"]
        assert aog["Green_Actuations"].sum() * 3 == aog["Total_Actuations"].sum() * 2


def test_spring_forward_hour_reads_as_a_gap_not_a_cycle():
    # the clock jumps from 02:00 to 03:00: nothing is missing, but a cycle across it would read an hour long
    start = dt.datetime(2024, 3, 10, 1, 40, 0)
    rows = [r for k in range(60) for r in traffic(k * CYCLE_S)]
    jump = 20 * 60.0  # 02:00
    rows = [(s + 3600.0 if s >= jump else s, *rest) for s, *rest in rows]
    res = compute_all(events_from_frame(make_events(rows, start=start)), CFG)
    assert res.tables["split_monitor"]["Cycle_s"].max() == CYCLE_S
    assert res.tables["pcd_cycles"]["Cycle_s"].max() == CYCLE_S
    assert any("spring forward" in w for w in res.warnings)
    assert any(w.startswith("split_monitor: ") and "across a data gap left out" in w for w in res.warnings)
