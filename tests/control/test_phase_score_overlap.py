"""The phase-score overlap features: which of a change's links stop, which start, and which stay green.

Phases here overlap as a through phase and a through-and-left phase do: 0 serves the north and south
through links, 1 the north through and the north left, 2 east-west.
"""

from __future__ import annotations

import numpy as np
import pytest

from signalwise.control.learning.phase_score import (
    ALL_FEATURES,
    FEATURES,
    OVERLAP_FEATURES,
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

CUT_HALT, CUT_MOVING, NEW_HALT = (len(FEATURES) + i for i in range(3))
STATES = ("GGrrr", "GrGrr", "rrrGG")


def overlapping_intersection() -> Intersection:
    movements = (Movement(0, "n_in_0", "s_out_0"), Movement(1, "s_in_0", "n_out_0"),
                 Movement(2, "n_in_1", "w_out_0"), Movement(3, "e_in_0", "w_out_1"), Movement(4, "w_in_0", "e_out_0"))
    phases = tuple(Phase(i, s, tuple(m for m in movements if s[m.link_index] in "Gg")) for i, s in enumerate(STATES))
    timing = Timing(3.5, 2.0, (5.0,) * 3, (40.0,) * 3, 7.0, 12.0, 40.0, 120.0, True)
    return Intersection("X", phases, 5, movements, (), (), timing)


def observe(phase: int, lanes: dict[str, tuple[int, int]]) -> Observation:
    """`lanes`: lane -> (vehicles, of which halting)."""
    states = {lane: LaneState(halting, n, 0.0, 0.0, 0.0) for lane, (n, halting) in lanes.items()}
    return Observation(100.0, "X", states, signal=SignalStatus(phase, "green", 10.0), sources=(SourceHealth("lanes"),))


def test_a_change_cuts_only_the_links_the_next_phase_does_not_keep_green():
    f = PhaseFeatures(overlapping_intersection(), (*FEATURES, *OVERLAP_FEATURES))
    # phase 0 green; north through 4 (1 halting), south through 6 (5 halting), north left 3 halting, east 2 halting
    x = f.matrix(observe(0, {"n_in_0": (4, 1), "s_in_0": (6, 5), "n_in_1": (3, 3), "e_in_0": (2, 2)}))
    assert list(x[0, CUT_HALT:NEW_HALT + 1]) == [0.0, 0.0, 0.0]  # holding changes nothing
    # to phase 1: the north through stays green, only the south through stops; the north left starts
    assert (x[1, CUT_HALT], x[1, CUT_MOVING], x[1, NEW_HALT]) == (5.0, 1.0, 3.0)
    # to phase 2: both throughs stop (1 + 5 halting, 3 + 1 moving); the east and west links start
    assert (x[2, CUT_HALT], x[2, CUT_MOVING], x[2, NEW_HALT]) == (6.0, 4.0, 2.0)
    # in_halt counts a phase's links whole, the shared north through included
    assert x[1, ALL_FEATURES.index("in_halt")] == 4.0


def test_the_per_link_sums_equal_each_phases_own_sums():
    """in_halt, out_halt and in_moving are computed per link once and summed per phase: the same figures."""
    f = PhaseFeatures(overlapping_intersection())
    x = f.matrix(observe(2, {"n_in_0": (4, 1), "s_in_0": (6, 5), "n_in_1": (3, 3), "e_in_0": (2, 2),
                             "w_out_0": (7, 7), "s_out_0": (1, 1)}))
    assert list(x[:, 0]) == [6.0, 4.0, 2.0]  # halting in: n + s through; n through + n left; east
    assert list(x[:, 1]) == [1.0, 8.0, 0.0]  # halting out: s_out; s_out + w_out_0 (the left); none east-west
    assert list(x[:, 2]) == [4.0, 3.0, 0.0]  # moving in


def test_weighing_the_cut_prefers_the_change_that_keeps_a_moving_platoon_green():
    """Phase 2 has more halting vehicles (4) than phase 1 (3), but changing to it would also stop the north
    through's moving platoon (8 vehicles), which phase 1 keeps green."""
    inter = overlapping_intersection()
    lanes = {"n_in_0": (8, 0), "s_in_0": (1, 1), "n_in_1": (3, 3), "e_in_0": (4, 4)}
    plain = np.zeros(len(FEATURES) + 3)
    plain[0] = 1.0
    cut = plain.copy()
    cut[CUT_MOVING] = -1.0
    features = (*FEATURES, *OVERLAP_FEATURES)
    assert PhaseScoreController(inter, plain, features=features).decide(observe(0, lanes)).phase_index == 2
    assert PhaseScoreController(inter, cut, features=features).decide(observe(0, lanes)).phase_index == 1


@pytest.mark.parametrize("feature", OVERLAP_FEATURES)
def test_each_overlap_feature_can_be_added_to_a_search(feature):
    from signalwise.training.search_starts import search_start

    start = search_start("max-pressure").adding([feature])
    assert start.features()[-1] == feature
