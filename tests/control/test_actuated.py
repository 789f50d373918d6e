"""Fully actuated control: extend while detectors see traffic, gap out to the next phase with a call.

Phases of `make_intersection`: 0 serves n_in_0 and s_in_0, 1 serves e_in_0
and w_in_0, 2 serves e_in_1. One stop-bar detector per incoming lane here.
"""

from __future__ import annotations

import dataclasses

import pytest
from shield_fixtures import make_intersection

from signalwise.control import ControlContext, make
from signalwise.control.actuated import ActuatedController
from signalwise.core import Detector, LaneState, Observation, SignalStatus

LANES = ("n_in_0", "s_in_0", "e_in_0", "w_in_0", "e_in_1")
FAR = 60.0  # seconds since a detector last saw a vehicle: long gone


def inter_with_detectors():
    dets = tuple(Detector(f"d_{lane}", lane, "stopbar", 2.0, i + 1) for i, lane in enumerate(LANES))
    return dataclasses.replace(make_intersection(), detectors=dets)


def obs(phase=0, elapsed_s=10.0, idle=None, queues=None, interval="green") -> Observation:
    """Every detector idle for FAR s unless `idle` says otherwise; queues 0 unless `queues` says."""
    queues = queues or {}
    lanes = {lane: LaneState(queues.get(lane, 0), queues.get(lane, 0), 0.0, 0.0, 0.0) for lane in LANES}
    idle_s = {f"d_{lane}": FAR for lane in LANES} | {f"d_{lane}": s for lane, s in (idle or {}).items()}
    return Observation(100.0, "X", lanes, detector_idle_s=idle_s, signal=SignalStatus(phase, interval, elapsed_s))


@pytest.fixture
def ctl():
    return ActuatedController(inter_with_detectors())


def test_green_is_extended_while_a_detector_of_the_phase_saw_a_vehicle_within_the_passage_time(ctl):
    waiting = {"e_in_0": 5}  # phase 1 has a call all along
    for idle_s in (0.0, 1.0, 2.9):
        assert ctl.decide(obs(0, idle={"s_in_0": idle_s}, queues=waiting)).holds, idle_s


def test_green_gaps_out_once_every_detector_of_the_phase_has_been_idle_the_passage_time(ctl):
    waiting = {"e_in_0": 5}
    for idle_s in (3.0, 3.1, FAR):
        d = ctl.decide(obs(0, idle={"n_in_0": idle_s, "s_in_0": idle_s}, queues=waiting))
        assert d.phase_index == 1, idle_s
        assert d.proposed_by == "actuated"


def test_a_detector_that_reports_nothing_counts_as_no_actuation(ctl):
    o = obs(0, queues={"e_in_0": 5})
    o = dataclasses.replace(o, detector_idle_s={})
    assert ctl.decide(o).phase_index == 1


def test_only_the_current_phase_detectors_extend_it(ctl):
    # e_in_1 (phase 2) is occupied; it places a call for phase 2 but does not extend phase 0
    assert ctl.decide(obs(0, idle={"e_in_1": 0.0})).phase_index == 2


def test_passage_time_is_configurable():
    ctl = make("actuated", inter_with_detectors(), ControlContext(step_length_s=0.5, options={"passage_s": "2"}))
    assert ctl.passage_s == 2.0 and ctl.period_s == 0.5
    waiting = {"e_in_0": 5}
    assert ctl.decide(obs(0, idle={"n_in_0": 1.9}, queues=waiting)).holds
    assert ctl.decide(obs(0, idle={"n_in_0": 2.0}, queues=waiting)).phase_index == 1


def test_default_passage_time_is_3_s_and_the_controller_asks_for_counts_and_detectors():
    ctl = make("actuated", inter_with_detectors(), ControlContext())
    assert isinstance(ctl, ActuatedController)
    assert ctl.passage_s == 3.0 and ctl.period_s == 1.0
    assert ctl.observation == "counts" and ctl.wants_detectors is True
    assert ctl.detector_ids == tuple(f"d_{lane}" for lane in LANES)


@pytest.mark.parametrize(("current", "calls", "expected"), [
    (0, {"e_in_0": 1, "e_in_1": 1}, 1),  # both 1 and 2 call: the next in order
    (0, {"e_in_1": 1}, 2),  # 1 has no call: skipped
    (1, {"n_in_0": 1, "e_in_1": 1}, 2),
    (2, {"s_in_0": 1, "w_in_0": 1}, 0),  # wraps around
    (2, {"w_in_0": 1}, 1),
])
def test_gap_out_goes_to_the_next_phase_in_order_that_has_a_call(ctl, current, calls, expected):
    assert ctl.decide(obs(current, queues=calls)).phase_index == expected


def test_an_occupied_detector_is_a_call_but_a_recently_left_one_is_not(ctl):
    assert ctl.decide(obs(0, idle={"w_in_0": 0.0})).phase_index == 1
    assert ctl.decide(obs(0, idle={"w_in_0": 0.5})).holds  # no queue, detector no longer occupied


def test_without_a_call_elsewhere_the_green_rests(ctl):
    assert ctl.decide(obs(0)).holds
    # its own queue does not make it change either
    assert ctl.decide(obs(0, queues={"n_in_0": 7})).holds


def test_max_out_is_left_to_the_shield(ctl):
    """The controller keeps extending a busy green however long it has run; the shield ends it at
    its maximum green (tested in test_shield.py)."""
    max_green = ctl.inter.timing.max_green_s[0]
    assert ctl.decide(obs(0, elapsed_s=max_green + 100.0, idle={"n_in_0": 0.0}, queues={"e_in_0": 9})).holds


@pytest.mark.parametrize("interval", ["yellow", "all_red"])
def test_actuated_holds_during_clearance(ctl, interval):
    assert ctl.decide(obs(0, interval=interval, queues={"e_in_0": 5})).holds


def test_actuated_holds_when_the_signal_state_is_unknown(ctl):
    o = dataclasses.replace(obs(0, queues={"e_in_0": 5}), signal=None)
    assert ctl.decide(o).holds


def test_a_phase_without_detectors_gaps_out_at_once_when_another_phase_calls():
    ctl = ActuatedController(make_intersection())  # no detectors at all
    assert ctl.decide(obs(0, elapsed_s=0.0, queues={"e_in_1": 1})).phase_index == 2
    assert ctl.decide(obs(0, elapsed_s=0.0)).holds
