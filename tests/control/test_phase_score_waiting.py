"""The phase-score waiting features: how long a red phase's queue has waited since it was last green.

Phases of `make_intersection` (tests/control/shield_fixtures.py): 0 serves n_in_0 and s_in_0, 1 serves e_in_0 and
w_in_0, 2 serves e_in_1.
"""

from __future__ import annotations

import pytest
from shield_fixtures import make_intersection

from signalwise.control.learning.phase_score import FEATURES, PhaseFeatures, PhaseScoreController
from signalwise.core.types import LaneState, Observation, SignalStatus, SourceHealth

WAITING = ("switch_red_min", "switch_halt_red")
RED_MIN, HALT_RED = (len(FEATURES) + i for i in range(2))


def observe(time_s: float, phase: int, halting: dict[str, int]) -> Observation:
    lanes = {lane: LaneState(n, n, 0.0, 0.0, 0.0) for lane, n in halting.items()}
    return Observation(time_s, "X", lanes, signal=SignalStatus(phase, "green", 10.0),
                       sources=(SourceHealth("lanes"),))


def test_a_red_phase_waits_from_when_it_was_last_seen_green():
    f = PhaseFeatures(make_intersection(), (*FEATURES, *WAITING))
    x = f.matrix(observe(100.0, 0, {"e_in_0": 2}))
    assert list(x[:, RED_MIN]) == [0.0, 0.0, 0.0]  # nothing waited before the first look
    x = f.matrix(observe(160.0, 1, {"e_in_0": 2, "n_in_0": 3}))  # phase 1 is green now; 0 was green at 100 s
    assert x[0, RED_MIN] == pytest.approx(1.0) and x[2, RED_MIN] == pytest.approx(1.0)
    assert x[1, RED_MIN] == 0.0 and x[1, HALT_RED] == 0.0  # the current green waits for nothing
    assert x[0, HALT_RED] == pytest.approx(3 * 1.0)  # three halting vehicles, a minute each
    x = f.matrix(observe(190.0, 1, {"n_in_0": 3}))
    assert x[0, RED_MIN] == pytest.approx(1.5) and x[0, HALT_RED] == pytest.approx(4.5)
    x = f.matrix(observe(200.0, 0, {"e_in_0": 1}))  # back to phase 0: now phase 1 waits from 190 s
    assert x[0, RED_MIN] == 0.0 and x[1, RED_MIN] == pytest.approx(10 / 60) and x[2, RED_MIN] == pytest.approx(5 / 3)


def test_weighing_the_wait_serves_a_long_waiting_queue_before_a_larger_fresh_one():
    """Phase 2 (one lane) has waited two minutes with 2 cars; phase 1 has 4 cars but was green half a minute ago."""
    weights = [1.0] + [0.0] * (len(FEATURES) - 1)  # halting vehicles in, nothing else
    plain = PhaseScoreController(make_intersection(), weights + [0.0, 0.0], features=(*FEATURES, *WAITING))
    waiting = PhaseScoreController(make_intersection(), weights + [0.0, 1.5], features=(*FEATURES, *WAITING))
    for c in (plain, waiting):
        c.decide(observe(0.0, 2, {}))
        c.decide(observe(90.0, 1, {}))
    queues = {"e_in_0": 4, "e_in_1": 2}
    assert plain.decide(observe(120.0, 0, queues)).phase_index == 1
    assert waiting.decide(observe(120.0, 0, queues)).phase_index == 2  # 2 + 1.5 * 2 * 2 min > 4 + 1.5 * 4 * 0.5 min
