"""Measuring zones: which lanes a short lane at a stop line is measured with, on a lane graph and on
a RESCO network whose western entry ends in 0.9 m lanes."""

from __future__ import annotations

import importlib.util

import pytest

from signalwise.sim.lane_zones import lane_zones, signal_neighbours, split_zones, zone_lanes

#   far (100 m) -> mid (30 m) -> stop (1 m) | signal | out (2 m) -> after (40 m) -> next (60 m) | signal 2
#   other (80 m, ends at signal 3) -> mid;  fork (50 m) -> mid and -> side (20 m)
SUCCESSORS = {"far": ["mid"], "mid": ["stop"], "other": ["mid"], "fork": ["mid", "side"], "stop": ["out"],
              "out": ["after"], "after": ["next"], "next": ["beyond"]}
LENGTH_M = {"far": 100.0, "mid": 30.0, "stop": 1.0, "other": 80.0, "fork": 50.0, "side": 20.0, "out": 2.0,
            "after": 40.0, "next": 60.0, "beyond": 100.0}
SIGNAL_LANES = {"stop", "other", "next"}


def test_the_upstream_zone_lists_the_feeding_lanes_within_reach_with_their_distance():
    up, down = lane_zones(["stop"], ["out"], SUCCESSORS, SIGNAL_LANES, LENGTH_M.__getitem__, reach_m=50.0)
    # mid starts 1 m from the stop line, far 31 m; `other` ends at another signal, `fork` also feeds `side`
    assert up == {"stop": (("mid", 1.0), ("far", 31.0))}
    # after 2 m past the junction, next 42 m (it ends at the next signal: nothing beyond it counts)
    assert down == {"out": (("after", 2.0), ("next", 42.0))}


def test_signals_are_neighbours_when_one_exits_zone_reaches_the_others_approach():
    """On the lane graph above: signal 1 exits into `out`, whose zone reaches `next` (signal 2's approach) at
    42 m; signal 3 ends `other` and exits into `mid`, whose zone reaches `stop` (signal 1's approach) at 30 m.
    Signal 4 exits into `side`, no signal's approach. A reach of 35 m no longer gets signal 1 to `next`."""
    lanes = {"1": (["stop"], ["out"]), "2": (["next"], ["beyond"]), "3": (["other"], ["mid"]), "4": (["x"], ["side"])}
    outs = [lane for _, exits in lanes.values() for lane in exits]
    _, down = lane_zones([], outs, SUCCESSORS, SIGNAL_LANES, LENGTH_M.__getitem__, reach_m=50.0)
    assert signal_neighbours(lanes, down) == {"1": ("2", "3"), "2": ("1",), "3": ("1",), "4": ()}
    _, near = lane_zones([], outs, SUCCESSORS, SIGNAL_LANES, LENGTH_M.__getitem__, reach_m=35.0)
    assert signal_neighbours(lanes, near) == {"1": ("3",), "2": (), "3": ("1",), "4": ()}


def test_the_reach_bounds_a_zone():
    up, down = lane_zones(["stop"], ["out"], SUCCESSORS, SIGNAL_LANES, LENGTH_M.__getitem__, reach_m=20.0)
    assert up == {"stop": (("mid", 1.0),)} and down == {"out": (("after", 2.0),)}


#   approach (60 m) -> road (40 m) -> pockets p_left, p_thru (2 m each, at the signal)
#   fork (30 m) -> road and -> side (a road that leaves, no signal)
POCKETS = {"approach": ["road"], "road": ["p_left", "p_thru"], "fork": ["road", "side"]}
POCKET_LENGTH_M = {"approach": 60.0, "road": 40.0, "p_left": 2.0, "p_thru": 2.0, "fork": 30.0, "side": 50.0}


def test_split_zones_count_the_lane_before_a_pocket_split_among_the_pockets():
    """`road` feeds both pockets: each counts half its vehicles, and half of `approach`'s behind it. `fork`
    also feeds a road that leaves: its vehicles may never come here, so it is in no zone. `lane_zones`
    leaves `road` out, so each pocket is measured alone."""
    split = split_zones(["p_left", "p_thru"], POCKETS, {"p_left", "p_thru"}, POCKET_LENGTH_M.__getitem__, 100.0)
    assert split["p_left"] == split["p_thru"] == (("road", 2.0, 0.5), ("approach", 42.0, 0.5))
    up, _ = lane_zones(["p_left"], [], POCKETS, {"p_left", "p_thru"}, POCKET_LENGTH_M.__getitem__, 100.0)
    assert up == {"p_left": ()}


def test_split_zones_are_lane_zones_where_no_lane_feeds_several():
    """On the first graph `fork` feeds `mid` and `side`, neither at a signal: both listings agree."""
    split = split_zones(["stop"], SUCCESSORS, SIGNAL_LANES, LENGTH_M.__getitem__, reach_m=50.0)
    up, _ = lane_zones(["stop"], [], SUCCESSORS, SIGNAL_LANES, LENGTH_M.__getitem__, reach_m=50.0)
    assert [(lane, d) for lane, d, _ in split["stop"]] == list(up["stop"])
    assert {w for _, _, w in split["stop"]} == {1.0}


def test_a_walk_never_lists_a_lane_twice_on_a_loop():
    succ = {"a": ["b"], "b": ["a"]}
    assert zone_lanes("a", lambda x: succ.get(x, ()), {"a": 5.0, "b": 5.0}.__getitem__, 100.0) == (("b", 5.0),)


def test_ingolstadt7s_short_entry_is_measured_with_the_lane_its_queue_stands_on():
    if importlib.util.find_spec("sumo_rl") is None:  # importing it would need SUMO_HOME; finding it does not
        pytest.skip("RESCO networks need the 'resco' extra (sumo-rl)")
    from signalwise.sim.backend import SumoBackend, SumoOptions
    from signalwise.sim.scenario import load

    s = load("resco:ingolstadt7")
    with SumoBackend(SumoOptions(net_file=s.net_file, route_files=s.route_files, begin_s=s.begin_s)) as b:
        stop_lanes = [f"10425609#1_{i}" for i in (1, 2, 3)]
        assert all(b.lane_length_m(lane) < 1.0 for lane in stop_lanes)
        up, _ = b.lane_zones(stop_lanes, [])
    for i, lane in enumerate(stop_lanes, start=1):
        assert [z for z, _ in up[lane]] == [f"10425609#0_{i}"]
