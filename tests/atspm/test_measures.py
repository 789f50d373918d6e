"""Hand-computed values for the measures, on tiny logs."""

from atspm_cases import make_config, make_events

from signalwise.analytics.atspm import cycles as C
from signalwise.analytics.atspm import detectors_from_frame, events_from_frame
from signalwise.analytics.atspm import measures as M

CFG = detectors_from_frame(make_config([("7", 2, 1, "Presence"), ("7", 2, 5, "Advance"), ("7", 2, 1, "Yellow_Red")]))


def cycle(t, green=20.0):
    return [(t, "7", 1, 2), (t + green, "7", 4, 2), (t + green, "7", 8, 2), (t + green + 4, "7", 9, 2),
            (t + green + 4, "7", 10, 2), (t + green + 6, "7", 11, 2)]


def test_arrival_on_green_counts_arrivals_by_state():
    # complete cycles only (begin red at 24, 64, 104 s): 30 red, 41 and 50 green, 61 yellow, 70 red; the arrivals
    # before the first begin red (1, 10, 21 s) are left out
    rows = cycle(0) + cycle(40) + cycle(80) + [(s, "7", 82, 5) for s in (1, 10, 21, 30, 41, 50, 61, 70)]
    aog = M.arrival_on_green(events_from_frame(make_events(rows)), CFG)
    assert aog[["Total_Actuations", "Green_Actuations"]].values.tolist() == [[5, 2]]
    assert aog["Percent_AOG"].iloc[0] == 40.0  # a percent (UDOT ATSPM's Percent AOG), not a fraction


def test_split_failure_needs_both_occupancies():
    # detector on for the whole green and the first 5 s of red in cycle 1; idle in cycle 2.
    # (the detector is off before its first event, as UDOT ATSPM reads it)
    rows = cycle(0) + cycle(40) + [(-2.0, "7", 82, 1), (-1.0, "7", 81, 1), (0.5, "7", 82, 1), (30.0, "7", 81, 1), (45.0, "7", 82, 1), (46.0, "7", 81, 1)]
    sf = M.split_failures(events_from_frame(make_events(rows)), CFG, by_cycle=True)
    assert sf["Split_Failure"].tolist() == [1, 0]
    assert abs(sf["Green_Occupancy"].iloc[0] - 19.5 / 20) < 1e-6 and sf["Red_Occupancy"].iloc[0] == 1.0


def test_red_light_running_separates_stopping_from_running():
    rows = cycle(0) + cycle(40)
    rows += [(26.0, "7", 82, 1), (26.4, "7", 81, 1)]  # enters 2 s into red, gone at once: ran the red
    rows += [(31.0, "7", 82, 1), (31.5, "7", 81, 1)]  # 7 s into red: severe
    rows += [(33.0, "7", 82, 1), (41.0, "7", 81, 1)]  # stops over the loop, leaves on green: not running
    rows += [(22.0, "7", 82, 1), (22.3, "7", 81, 1)]  # on yellow
    rl = M.red_light_running(events_from_frame(make_events(rows)), CFG)
    r = rl.iloc[0]
    assert (r.Yellow_Actuations, r.Red_Actuations, r.Red_Running, r.Severe_Red_Running) == (1, 3, 2, 1)


def test_split_monitor_and_terminations():
    log = events_from_frame(make_events(cycle(0) + cycle(40, green=25.0) + [(90.0, "7", 1, 2)]))
    sm = C.split_monitor(log)
    assert sm["Green_s"].tolist()[:2] == [20.0, 25.0]
    assert sm["Yellow_s"].tolist()[:2] == [4.0, 4.0] and sm["RedClearance_s"].tolist()[:2] == [2.0, 2.0]
    assert sm["Cycle_s"].tolist()[:2] == [40.0, 50.0] and sm["Termination"].tolist()[:2] == ["GapOut", "GapOut"]
    assert M.terminations(log)["Total"].tolist() == [2]


def test_phase_wait_and_ped_delay_and_preemption():
    rows = cycle(0) + cycle(60) + [(30.0, "7", 82, 1), (35.0, "7", 82, 1)]  # call at 30 s, served at 60 s
    rows += [(5.0, "7", 21, 2), (12.0, "7", 23, 2), (20.0, "7", 90, 2), (61.0, "7", 21, 2)]
    rows += [(70.0, "7", 102, 1), (72.5, "7", 105, 1), (100.0, "7", 104, 1)]
    log = events_from_frame(make_events(rows))
    assert C.phase_wait(log, CFG)["Wait_s"].tolist() == [30.0]
    assert C.ped_delay(log)["PedDelay_s"].tolist() == [41.0]
    pre = C.preemption(log)
    assert pre[["Duration_s", "EntryDelay_s"]].values.tolist() == [[30.0, 2.5]]


def test_ped_delay_on_pedestrian_recall_is_estimated_from_the_walks():
    # walk served every cycle, no pedestrian call (45/90) logged, as signalwise runs do: a pedestrian
    # arriving at random waits (C - walk)^2 / (2 C) on average
    rows = []
    for t in (0.0, 60.0, 150.0):
        rows += [(t, "7", 21, 2), (t + 7, "7", 22, 2), (t + 21, "7", 23, 2)]
    rows += [(210.0, "7", 21, 2)]
    log = events_from_frame(make_events(rows))
    pd_ = C.ped_delay(log)
    assert pd_["Method"].tolist() == ["recall"] * 3
    assert pd_["Cycle_s"].tolist() == [60.0, 90.0, 60.0]
    expected = [(60 - 7) ** 2 / 120, (90 - 7) ** 2 / 180, (60 - 7) ** 2 / 120]
    assert pd_["PedDelay_s"].round(6).tolist() == [round(x, 6) for x in expected]
    binned = C.binned_waits(pd_, "PedDelay_s", 15)
    # a bin's mean weights each cycle by its length (random arrivals fall in long cycles more often)
    assert binned["Count"].tolist() == [3]
    assert abs(binned["Mean_PedDelay_s"].iloc[0] - ((53 ** 2 + 83 ** 2 + 53 ** 2) / 2) / 210) < 1e-9
    assert binned["Method"].tolist() == ["recall"]


def test_ped_delay_uses_calls_where_the_log_has_them():
    rows = [(5.0, "7", 21, 2), (12.0, "7", 23, 2), (20.0, "7", 90, 2), (61.0, "7", 21, 2), (68.0, "7", 22, 2),
            (0.0, "7", 21, 4), (7.0, "7", 22, 4), (60.0, "7", 21, 4)]
    out = C.ped_delay(events_from_frame(make_events(rows)))
    assert out[["Phase", "Method"]].values.tolist() == [[4, "recall"], [2, "call"]]  # by time served
    assert out["PedDelay_s"].tolist() == [(60 - 7) ** 2 / 120, 41.0]


def test_pcd_cycles_start_at_red_clearance_or_end_of_yellow():
    rows = []
    for t in (0, 40, 80):
        rows += [(t, "7", 1, 2), (t + 20, "7", 8, 2), (t + 24, "7", 9, 2), (t + 24, "7", 10, 2), (t + 26, "7", 11, 2)]
        rows += [(t, "7", 1, 4), (t + 15, "7", 8, 4), (t + 19, "7", 9, 4)]  # phase 4 logs no red clearance
        rows += [(t + s, "7", 82, 5) for s in (1, 10, 21, 30)] + [(t + 3, "7", 82, 6)]
    cfg = detectors_from_frame(make_config([("7", 2, 5, "Advance"), ("7", 4, 6, "Advance")]))
    arrivals, cycles = C.pcd(events_from_frame(make_events(rows)), cfg, project=False)
    assert cycles[["Phase", "GreenStart_s", "YellowStart_s", "Cycle_s"]].fillna(-1).values.tolist() == [
        [2, 16, 36, 40], [2, 16, 36, 40], [4, 21, 36, 40], [4, 21, 36, 40]]  # complete cycles only
    p2 = arrivals[arrivals["Phase"] == 2]
    assert p2["TimeInCycle_s"].tolist()[:4] == [6.0, 17.0, 26.0, 37.0]  # arrivals at 30, 41, 50, 61 s
    assert p2["Signal"].tolist()[:4] == ["red", "green", "green", "yellow"]
