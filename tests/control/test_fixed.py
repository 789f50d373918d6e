"""Fixed-time control: the network's own program, its green times and its phase order."""

from __future__ import annotations

import dataclasses

import pytest
from shield_fixtures import make_intersection

from signalwise.control import ControlContext, make
from signalwise.control.fixed import PlanFollower, make_fixed
from signalwise.core import Observation, SignalStatus


def at(phase: int, elapsed_s: float, interval: str = "green") -> Observation:
    return Observation(100.0, "X", {}, signal=SignalStatus(phase, interval, elapsed_s))


def test_fixed_takes_the_program_green_times():
    # program (20, 25, 8), min greens (5, 20, 5): the program already meets every minimum
    ctl = make_fixed(make_intersection(), ControlContext())
    assert ctl.green_s == [20.0, 25.0, 8.0]
    assert ctl.name == "fixed"


def test_fixed_raises_a_program_green_below_the_minimum_green_to_it():
    ctl = make_fixed(make_intersection(min_green=(5.0, 30.0, 10.0)), ControlContext())
    assert ctl.green_s == [20.0, 30.0, 10.0]


def test_fixed_without_a_program_runs_30_s_per_phase_or_the_minimum_if_longer():
    inter = dataclasses.replace(make_intersection(min_green=(5.0, 35.0, 5.0)), program_green_s=())
    assert make_fixed(inter, ControlContext()).green_s == [30.0, 35.0, 30.0]


def test_a_program_that_does_not_match_the_phases_is_refused():
    inter = dataclasses.replace(make_intersection(), program_green_s=(20.0, 25.0))
    with pytest.raises(ValueError):
        make_fixed(inter, ControlContext())


def test_fixed_is_registered_and_needs_no_lane_data():
    ctl = make("fixed", make_intersection(), ControlContext())
    assert isinstance(ctl, PlanFollower)
    assert ctl.observation == "none"
    assert ctl.wants_detectors is False


@pytest.mark.parametrize(("phase", "green_s"), [(0, 20.0), (1, 25.0), (2, 8.0)])
def test_fixed_holds_each_phase_until_its_green_time_has_run(phase, green_s):
    ctl = make_fixed(make_intersection(), ControlContext())
    for elapsed in (0.0, 1.0, green_s - 1.0, green_s - 0.01):
        d = ctl.decide(at(phase, elapsed))
        assert d.holds, (phase, elapsed)
        assert d.intersection_id == "X" and d.proposed_by == "fixed"


def test_fixed_changes_to_the_next_phase_in_program_order_and_wraps_around():
    ctl = make_fixed(make_intersection(), ControlContext())
    assert ctl.decide(at(0, 20.0)).phase_index == 1
    assert ctl.decide(at(1, 25.0)).phase_index == 2
    assert ctl.decide(at(2, 8.0)).phase_index == 0  # after the last phase, the first again
    # a late ask (the shield kept the green longer) still asks for the next phase, not a skip
    assert ctl.decide(at(0, 57.0)).phase_index == 1


def test_fixed_tolerates_float_error_on_the_green_time():
    ctl = make_fixed(make_intersection(), ControlContext())
    assert ctl.decide(at(0, 20.0 - 1e-7)).phase_index == 1  # 19.9999999 is 20 s of green
    assert ctl.decide(at(0, 20.0 - 1e-3)).holds


@pytest.mark.parametrize("interval", ["yellow", "all_red"])
def test_fixed_holds_during_clearance(interval):
    ctl = make_fixed(make_intersection(), ControlContext())
    assert ctl.decide(at(0, 99.0, interval)).holds


def test_fixed_holds_when_the_signal_state_is_unknown():
    ctl = make_fixed(make_intersection(), ControlContext())
    assert ctl.decide(Observation(5.0, "X", {})).holds


def test_set_plan_replaces_the_green_times():
    ctl = make_fixed(make_intersection(), ControlContext())
    ctl.set_plan([10.0, 12.0, 6.0])
    assert ctl.decide(at(0, 10.0)).phase_index == 1
    assert ctl.decide(at(1, 11.0)).holds
    assert ctl.decide(at(1, 12.0)).phase_index == 2
