"""The phase-score features on spill-back and load: a link's queue weighed by how full its exit stands
(`in_halt_blocked`), and the current phase weighed by every queue at its junction (`hold_load`)."""

from __future__ import annotations

import numpy as np

from signalwise.control.learning.phase_score import (
    ALL_FEATURES,
    FEATURES,
    STANDING_CAR_M,
    PhaseFeatures,
    PhaseScoreController,
)
from signalwise.core.types import (
    Intersection,
    LaneState,
    Movement,
    Observation,
    Phase,
    SignalStatus,
    SourceHealth,
    Timing,
)

BLOCKED = len(FEATURES)
#: phase 0 serves north-south (two links), phase 1 east-west (one link)
STATES = ("GGr", "rrG")
#: exit lanes 75 m long: ten standing cars fill one
EXIT_M = 10 * STANDING_CAR_M
LENGTHS = {"s_out": EXIT_M, "n_out": EXIT_M, "w_out": EXIT_M}


def intersection() -> Intersection:
    movements = (Movement(0, "n_in", "s_out"), Movement(1, "s_in", "n_out"), Movement(2, "e_in", "w_out"))
    phases = tuple(Phase(i, s, tuple(m for m in movements if s[m.link_index] in "Gg")) for i, s in enumerate(STATES))
    timing = Timing(3.5, 2.0, (5.0,) * 2, (40.0,) * 2, 7.0, 12.0, 40.0, 120.0, True)
    return Intersection("X", phases, 3, movements, (), (), timing)


def observe(lanes: dict[str, tuple[int, int]], phase: int = 1) -> Observation:
    """`lanes`: lane -> (vehicles, of which halting)."""
    states = {lane: LaneState(halting, n, 0.0, 0.0, 0.0) for lane, (n, halting) in lanes.items()}
    return Observation(100.0, "X", states, signal=SignalStatus(phase, "green", 30.0), sources=(SourceHealth("lanes"),))


def test_a_queue_counts_as_blocked_as_far_as_its_exit_stands_full():
    f = PhaseFeatures(intersection(), (*FEATURES, "in_halt_blocked"), out_lane_length_m=LENGTHS)
    # north queue 6 towards a full exit (10 standing), south queue 4 towards a half-full one, east 3 to an empty one
    x = f.matrix(observe({"n_in": (6, 6), "s_in": (4, 4), "e_in": (3, 3), "s_out": (10, 10), "n_out": (6, 5)}))
    assert x[0, BLOCKED] == 6 * 1.0 + 4 * 0.5
    assert x[1, BLOCKED] == 0.0
    # moving vehicles on the exit do not block it; more than full counts as full
    x = f.matrix(observe({"n_in": (6, 6), "s_out": (10, 0), "w_out": (14, 14), "e_in": (2, 2)}))
    assert x[0, BLOCKED] == 0.0 and x[1, BLOCKED] == 2.0


def test_weighing_the_blocked_queue_serves_the_phase_whose_green_can_move_its_queue():
    """North-south holds 10 halting against east-west's 6, but every north-south exit is full: max-pressure
    on halting vehicles in (the out lanes' queues are not weighed here) serves north-south; a weight of -1 on
    the blocked queue takes it back to what can move."""
    features = (*FEATURES, "in_halt_blocked")
    lanes = {"n_in": (5, 5), "s_in": (5, 5), "e_in": (6, 6), "s_out": (10, 10), "n_out": (10, 10)}
    plain = np.zeros(len(features))
    plain[ALL_FEATURES.index("in_halt")] = 1.0
    blocked = plain.copy()
    blocked[BLOCKED] = -1.0
    inter = intersection()
    decide = {name: PhaseScoreController(inter, w, features=features, lane_length_m=LENGTHS).decide(observe(lanes))
              for name, w in (("plain", plain), ("blocked", blocked))}
    assert decide["plain"].phase_index == 0
    assert decide["blocked"].phase_index is None  # phase 1 (east-west) holds


def test_an_exit_of_unknown_length_is_taken_as_100_m():
    f = PhaseFeatures(intersection(), (*FEATURES, "in_halt_blocked"))
    x = f.matrix(observe({"e_in": (4, 4), "w_out": (4, 4)}))
    assert np.isclose(x[1, BLOCKED], 4 * 4 * STANDING_CAR_M / 100.0)


def test_the_feature_can_be_added_to_a_search():
    from signalwise.training.search_starts import search_start

    assert search_start("max-pressure-pays").adding(["in_halt_blocked"]).features()[-1] == "in_halt_blocked"


def test_a_congested_junction_holds_where_a_quiet_one_changes():
    """hold_load counts every link's queue for the current phase: with a positive weight the same
    difference between two phases' queues changes a quiet junction's phase and not a congested one's."""
    features = (*FEATURES, "hold_load")
    w = np.zeros(len(features))
    w[ALL_FEATURES.index("in_halt")] = 1.0
    w[features.index("hold_load")] = 0.2
    inter = intersection()
    ctrl = PhaseScoreController(inter, w, features=features)
    x = ctrl.features.matrix(observe({"n_in": (2, 2), "s_in": (2, 2), "e_in": (1, 1)}))
    assert x[1, features.index("hold_load")] == 5.0 and x[0, features.index("hold_load")] == 0.0
    # quiet: north-south 4 against east-west 1 + 0.2 * 5 = 2: change
    assert ctrl.decide(observe({"n_in": (2, 2), "s_in": (2, 2), "e_in": (1, 1)})).phase_index == 0
    # congested: north-south 20 against east-west 16 + 0.2 * 36 = 23.2: hold (without the weight: a change)
    assert ctrl.decide(observe({"n_in": (10, 10), "s_in": (10, 10), "e_in": (16, 16)})).phase_index is None
    unloaded = w.copy()
    unloaded[features.index("hold_load")] = 0.0
    plain = PhaseScoreController(inter, unloaded, features=features)
    assert plain.decide(observe({"n_in": (10, 10), "s_in": (10, 10), "e_in": (16, 16)})).phase_index == 0
