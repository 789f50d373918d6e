"""Coordinated fixed-time control: the program's splits, cycle and offset under the shield's change intervals."""

from __future__ import annotations

import dataclasses

from shield_fixtures import make_intersection

from signalwise.control import ControlContext, make
from signalwise.control.coordinated import CoordinatedPlanFollower, coordination_plan, coordination_report
from signalwise.control.fixed import PlanFollower
from signalwise.core import Observation, SignalStatus
from signalwise.sim.signal_model import phase_key, program_splits_s

NO_CROSSWALK = frozenset()


def _keys(*states: str) -> list[str | None]:
    return [phase_key(s, NO_CROSSWALK) for s in states]


def test_splits_are_each_greens_onset_and_the_change_after_it():
    program = [("GGrr", 30.0), ("yyrr", 3.0), ("rrrr", 2.0), ("rrGG", 20.0), ("rryy", 4.0), ("rrrr", 1.0)]
    assert program_splits_s(program, NO_CROSSWALK, _keys("GGrr", "rrGG")) == ((0.0, 35.0), (5.0, 5.0))


def test_a_program_starting_in_a_change_interval_wraps_round_the_cycle():
    # the cycle begins with the yellow ending "rrGG": that green's change runs over the cycle's end
    program = [("rryy", 3.0), ("GGrr", 30.0), ("yyrr", 4.0), ("rrGG", 20.0)]
    assert program_splits_s(program, NO_CROSSWALK, _keys("GGrr", "rrGG")) == ((3.0, 37.0), (4.0, 3.0))


def test_a_green_split_over_the_cycles_end_is_one_green():
    program = [("GGrr", 10.0), ("yyrr", 3.0), ("rrGG", 20.0), ("rryy", 3.0), ("GGrr", 20.0)]
    onsets, changes = program_splits_s(program, NO_CROSSWALK, _keys("GGrr", "rrGG"))
    assert onsets == (36.0, 13.0) and changes == (3.0, 3.0)


def test_a_program_serving_a_phase_twice_a_cycle_has_no_splits():
    program = [("GGrr", 10.0), ("yyrr", 3.0), ("rrGG", 10.0), ("rryy", 3.0), ("GGrr", 10.0), ("yyrr", 3.0),
               ("rrrG", 10.0), ("rrry", 3.0)]
    assert program_splits_s(program, NO_CROSSWALK, _keys("GGrr", "rrGG", "rrrG")) == ((), ())


def _coordinated(**timing):
    """The fixture's three phases (greens 20, 25, 8 s) with 3 s program yellows: a 62 s cycle, offset 12 s."""
    inter = make_intersection(**timing)
    return dataclasses.replace(inter, program_cycle_s=62.0, program_offset_s=12.0,
                               program_green_onset_s=(0.0, 23.0, 51.0), program_change_s=(3.0, 3.0, 3.0))


def test_the_green_gives_the_split_up_to_the_shields_longer_change_interval():
    # shield: yellow 3.5 s (shown 4 s at 1 s steps) + all-red 2 s; the crosswalk phase's walk + clearance 19 s
    plan = coordination_plan(_coordinated(min_green=(5.0, 19.0, 5.0)), 1.0)
    assert plan.split_s == (23.0, 28.0, 11.0) and sum(plan.split_s) == plan.cycle_s == 62.0
    assert plan.clearance_s == (6.0, 6.0, 6.0)
    assert plan.green_s == (17.0, 22.0, 5.0)
    assert plan.offset_s == 12.0


def test_a_split_too_short_for_its_minimum_green_refuses_coordination_with_the_reason():
    reason = coordination_plan(_coordinated(min_green=(5.0, 20.0, 7.0)), 1.0)
    assert isinstance(reason, str)
    assert "phase 3's split 11 s" in reason and "leaves 5 s of green" in reason
    assert "its cycle would need 64 s, not the program's 62 s" in reason


def test_a_split_green_above_max_green_refuses_coordination():
    reason = coordination_plan(_coordinated(max_green=(15.0, 40.0, 30.0)), 1.0)
    # the figure is the split less the shield's change interval, and the sentence says so: `fixed`'s warning
    # names the program's green (20 s) for the same phase
    assert isinstance(reason, str) and ("phase 1's 17 s (program green 20 s + change 3 s, less the shield's 6 s "
                                        "yellow and all-red) > max_green_s 15 s") in reason


def test_a_cycle_longer_than_the_cycle_bound_refuses_coordination():
    reason = coordination_plan(_coordinated(cycle_max=60.0), 1.0)
    assert isinstance(reason, str) and "more than cycle_max_s 60 s" in reason


def test_a_signal_without_a_plan_runs_the_fixed_plan_and_the_report_says_why():
    inter = _coordinated(min_green=(5.0, 20.0, 7.0))
    ctl = make("coordinated", inter, ControlContext())
    assert isinstance(ctl, PlanFollower) and ctl.name == "coordinated"
    plans, warnings = coordination_report([inter], 1.0)
    assert "not_coordinated" in plans["X"]
    assert len(warnings) == 1 and warnings[0].startswith("coordinated at signal 'X' runs the uncoordinated plan")


def _at(t: float, phase: int, elapsed_s: float) -> Observation:
    return Observation(t, "X", {}, signal=SignalStatus(phase, "green", elapsed_s))


def test_each_green_ends_at_its_force_off_point_in_the_cycle():
    ctl = make("coordinated", _coordinated(min_green=(5.0, 19.0, 5.0)), ControlContext())
    assert isinstance(ctl, CoordinatedPlanFollower)
    # phase 1 begins at offset 12 + 0 and ends 17 s later; phase 2 at 12 + 23, 22 s; a cycle later the same
    assert ctl.decide(_at(28.0, 0, 16.0)).holds
    assert ctl.decide(_at(29.0, 0, 17.0)).phase_index == 1
    assert ctl.decide(_at(56.0, 1, 21.0)).holds
    assert ctl.decide(_at(57.0, 1, 22.0)).phase_index == 2
    assert ctl.decide(_at(29.0 + 62.0, 0, 17.0)).phase_index == 1


def test_a_first_green_off_schedule_is_lengthened_to_its_force_off_or_cut_at_max_green():
    ctl = make("coordinated", _coordinated(min_green=(5.0, 19.0, 5.0)), ControlContext())
    # phase 1 green from 0: its force-off at 29 s is reached (lengthened from 17 s)
    assert ctl.green_end_s(0, 0.0) == 29.0
    # from 26 s its shortest green (5 s) passes 29: the next force-off, a cycle on, is past max green 40 s
    assert ctl.green_end_s(0, 26.0) == 66.0
    # phase 3 from 60 s: its force-off at 12 + 51 + 5 = 68 s comes after its 5 s minimum
    assert ctl.green_end_s(2, 60.0) == 68.0
