"""Webster control: C0 = (1.5 L + 5) / (1 - Y), greens split by flow ratio, re-planned from counts.

Numbers below are worked by hand. Unless a test says otherwise the intersection
has yellow 3 s and all-red 1 s, so with the 2 s start-up lost time each phase
loses 6 s and its three phases L = 18 s (1.5 L + 5 = 32); cycle bounds 40..120 s.
Saturation flow is 1800 veh/h per lane, so y = flow / 1800.
A phase's displayed green is its effective green + the 2 s start-up lost time
(none of the yellow is used as green), in whole 1 s steps (largest remainders
first), so the displayed greens and the 4 s change intervals (12 s) add up to
the cycle.
Phases of `make_intersection`: 0 serves n_in_0 and s_in_0, 1 serves e_in_0
and w_in_0 (and the crosswalk), 2 serves e_in_1.
"""

from __future__ import annotations

import dataclasses

import pytest
from shield_fixtures import make_intersection

from signalwise.control import ControlContext, make
from signalwise.control.fixed import PlanFollower
from signalwise.control.webster import (
    WebsterController,
    clearances_shown_s,
    fallback_plan,
    flow_ratios,
    lane_phase_shares,
    lost_time_per_phase_s,
    plan_for,
)
from signalwise.core import (
    Detector,
    Intersection,
    LaneState,
    Movement,
    Observation,
    Phase,
    SignalStatus,
    Timing,
    webster_plan,
)

#: y = 0.3 / 0.2 / 0.1 for the three phases (the busiest lane of each phase counts)
FLOWS_3_2_1 = {"n_in_0": 540.0, "s_in_0": 180.0, "e_in_0": 360.0, "w_in_0": 90.0, "e_in_1": 180.0}


def inter6(min_green=(5.0, 5.0, 5.0), max_green=(100.0, 100.0, 100.0), detectors=()) -> Intersection:
    """6 s lost per phase (3 s yellow, 1 s all-red, 2 s start-up), L = 18 s; no pedestrian intervals, so phase 1's
    crosswalk holds no green longer than its minimum."""
    base = make_intersection(min_green=min_green, max_green=max_green, yellow=3.0, all_red=1.0)
    return dataclasses.replace(base, detectors=tuple(detectors),
                               timing=dataclasses.replace(base.timing, ped_intervals=False))


def greens(plan) -> list[float]:
    return list(plan.green_s)


# --- lost time and flow ratios -------------------------------------------------------------------


def test_lost_time_is_the_whole_change_interval_in_whole_steps_plus_start_up():
    assert lost_time_per_phase_s(inter6()) == 6.0  # 3 + 1 + 2
    # 3.5 s yellow shows as 4 steps of 1 s; 2 s all-red; 2 s start-up
    assert lost_time_per_phase_s(make_intersection(yellow=3.5, all_red=2.0)) == 8.0
    # with 0.5 s steps the 3.5 s yellow is shown exactly
    assert lost_time_per_phase_s(make_intersection(yellow=3.5, all_red=2.0), step_s=0.5) == 7.5


def test_flow_ratio_of_a_phase_is_its_busiest_lane_not_the_sum():
    assert flow_ratios(inter6(), FLOWS_3_2_1) == pytest.approx([0.3, 0.2, 0.1])


def permitted_intersection() -> Intersection:
    """Lane n_in_1 is permitted in phase 0 and protected in phase 1; w_in_0 only permitted, in 0 and 2."""
    moves = (Movement(0, "n_in_0", "s_out_0"), Movement(1, "n_in_1", "e_out_0"),
             Movement(2, "e_in_0", "w_out_0"), Movement(3, "w_in_0", "n_out_0"))
    states = ("Gggg", "rGrr", "rrGg")
    phases = tuple(Phase(i, s, tuple(m for m in moves if s[m.link_index] in "Gg")) for i, s in enumerate(states))
    timing = Timing(3.0, 1.0, (5.0,) * 3, (100.0,) * 3, 7.0, 12.0, 40.0, 120.0)
    return Intersection("P", phases, 4, moves, (), (), timing)


def test_protected_phases_carry_a_lane_before_permitted_ones_and_permitted_flow_is_shared():
    inter = permitted_intersection()
    assert lane_phase_shares(inter) == {"n_in_0": [0], "n_in_1": [1], "e_in_0": [2], "w_in_0": [0, 2]}
    flows = {"n_in_0": 180.0, "n_in_1": 360.0, "e_in_0": 90.0, "w_in_0": 540.0}
    # n_in_0: 0.1 in phase 0; n_in_1: 0.2 in phase 1 only; e_in_0: 0.05; w_in_0: 540/2/1800 = 0.15 in 0 and 2
    assert flow_ratios(inter, flows) == pytest.approx([0.15, 0.2, 0.15])


# --- the plan ------------------------------------------------------------------------------------


def test_plan_cycle_is_webster_optimum_and_greens_split_by_flow_ratio():
    plan = plan_for(inter6(), FLOWS_3_2_1)
    # Y = 0.6: C0 = 32 / 0.4 = 80 s; effective green 80 - 18 = 62 s split 3:2:1 = 31, 20.67, 10.33 s;
    # displayed 33, 22.67, 12.33 s: in whole steps 33, 23, 12 (68 s) + 12 s of change intervals = 80 s
    assert plan.cycle_s == pytest.approx(80.0)
    assert greens(plan) == pytest.approx([33.0, 23.0, 12.0])
    assert plan.lost_time_s == 18.0
    assert plan.flow_ratio_sum == pytest.approx(0.6)
    assert plan.oversaturated is False


def test_plan_below_the_minimum_cycle_is_stretched_to_it():
    plan = plan_for(inter6(), dict.fromkeys(FLOWS_3_2_1, 18.0))
    # Y = 0.03: C0 = 32 / 0.97 = 33.0 s < 40 s; 40 - 18 = 22 s shared equally, 9.33 s displayed each: 28 s in
    # whole steps, the first phase's remainder first
    assert plan.cycle_s == pytest.approx(40.0)
    assert greens(plan) == pytest.approx([10.0, 9.0, 9.0])


def test_plan_above_the_maximum_cycle_is_capped_without_being_oversaturated():
    flows = {"n_in_0": 900.0, "e_in_0": 450.0, "e_in_1": 180.0}  # y = 0.5, 0.25, 0.1
    plan = plan_for(inter6(), flows)
    # Y = 0.85: C0 = 32 / 0.15 = 213 s -> 120 s; 102 s split 0.5 : 0.25 : 0.1 of 0.85 = 60, 30, 12 s effective
    assert plan.cycle_s == pytest.approx(120.0)
    assert greens(plan) == pytest.approx([62.0, 32.0, 14.0])
    assert plan.oversaturated is False


def test_oversaturated_demand_gets_the_maximum_cycle_proportional_splits_and_the_flag():
    flows = {"n_in_0": 900.0, "e_in_0": 540.0, "e_in_1": 360.0}  # y = 0.5, 0.3, 0.2: Y = 1
    plan = plan_for(inter6(), flows)
    assert plan.oversaturated is True
    assert plan.flow_ratio_sum == pytest.approx(1.0)
    assert plan.cycle_s == pytest.approx(120.0)
    assert greens(plan) == pytest.approx([53.0, 33.0, 22.0])  # 102 s split 5:3:2, + 2 s each, in whole steps


def test_oversaturation_starts_at_y_0_9():
    assert webster_plan([0.5, 0.4], 6.0, 40, 120).oversaturated is True
    assert webster_plan([0.5, 0.39], 6.0, 40, 120).oversaturated is False


def test_minimum_green_raises_a_short_split_and_the_cycle_grows_by_it():
    plan = plan_for(inter6(min_green=(5.0, 5.0, 20.0)), FLOWS_3_2_1)
    # the 3:2:1 plan's 33, 22.67, 12.33 s: phase 2 raised to its 20 s minimum, 75.67 s of green -> 76 s in whole
    # steps; the cycle grows from 80 s to 88 s, within 40..120 s
    assert greens(plan) == pytest.approx([33.0, 23.0, 20.0])
    assert plan.cycle_s == pytest.approx(88.0)


def test_a_minimum_green_never_takes_the_cycle_past_its_maximum_the_other_phases_give_way():
    flows = {"n_in_0": 900.0, "e_in_0": 450.0, "e_in_1": 180.0}  # y = 0.5, 0.25, 0.1: C 120 s, 62, 32, 14 s
    plan = plan_for(inter6(min_green=(5.0, 5.0, 30.0)), flows)
    # phase 2 raised by 16 s to 30 s; phases 0 and 1 give the 16 s back in proportion to their greens (62:32):
    # 51.45 and 26.55 s, in whole steps 51 and 27 s; the cycle stays at 120 s (sum of greens as planned: 138 s)
    assert greens(plan) == pytest.approx([51.0, 27.0, 30.0])
    assert plan.cycle_s == pytest.approx(120.0)


def test_maximum_green_caps_a_split_and_the_cycle_shrinks_by_it():
    flows = {"n_in_0": 900.0, "e_in_0": 540.0, "e_in_1": 360.0}
    plan = plan_for(inter6(max_green=(40.0, 100.0, 100.0)), flows)
    # 53, 32.6, 22.4 s displayed, the first capped at 40 s: 95 s of green, 33 s and 22 s in whole steps
    assert greens(plan) == pytest.approx([40.0, 33.0, 22.0])
    assert plan.cycle_s == pytest.approx(40.0 + 33.0 + 22.0 + 12.0)


def test_a_maximum_green_never_takes_the_cycle_below_its_minimum_the_other_phases_take_the_rest():
    inter = inter6(max_green=(8.0, 100.0, 100.0))
    inter = dataclasses.replace(inter, timing=dataclasses.replace(inter.timing, cycle_min_s=60.0))
    plan = plan_for(inter, {"n_in_0": 540.0, "e_in_0": 18.0, "e_in_1": 18.0})  # y = 0.3, 0.01, 0.01
    # C0 = 32 / 0.68 = 47 s -> 60 s: 42 s effective, 39.4 + 1.3 + 1.3 s; displayed 41.4, 3.3, 3.3 s, then held to
    # 8 s (phase 0's max) and 5 s (the minimum): 18 s of green, 30 s short of the 48 s a 60 s cycle leaves. Phases 1
    # and 2 take them in proportion to their greens: 20 s each
    assert greens(plan) == pytest.approx([8.0, 20.0, 20.0])
    assert plan.cycle_s == pytest.approx(60.0)


@pytest.mark.parametrize("step_s", [1.0, 0.5, 0.1])
def test_the_displayed_greens_and_change_intervals_add_up_to_the_planned_cycle(step_s):
    """Each phase's own change interval as shown at `step_s` (3.3 s shows as 4 s at 1 s steps), each displayed
    green a whole number of steps: the signal runs the planned cycle."""
    inter = make_intersection(phase_yellow=(3.3, 4.5, 3.0), phase_all_red=(1.2, 2.0, 0.0))
    plan = plan_for(inter, FLOWS_3_2_1, step_s)
    shown = clearances_shown_s(inter, step_s)
    assert shown == pytest.approx({1.0: [6.0, 7.0, 3.0], 0.5: [5.0, 6.5, 3.0], 0.1: [4.5, 6.5, 3.0]}[step_s])
    assert plan.cycle_s == pytest.approx(sum(plan.green_s) + sum(shown))
    assert all(abs(g / step_s - round(g / step_s)) < 1e-6 for g in plan.green_s)
    assert inter.timing.cycle_min_s <= plan.cycle_s <= inter.timing.cycle_max_s
    # L: the change intervals shown + 2 s start-up lost time per phase; the effective greens are C - L
    assert plan.lost_time_s == pytest.approx(sum(shown) + 3 * 2.0)


def test_a_crosswalk_phase_is_planned_no_shorter_than_its_walk_and_pedestrian_clearance():
    """The shield holds a crosswalk phase's green for its walk and pedestrian clearance (24 s here, above its
    20 s minimum green): a plan shorter than that would run longer on the street, and its cycle with it."""
    plan = plan_for(make_intersection(walk=12.0), dict.fromkeys(FLOWS_3_2_1, 18.0))
    assert plan.green_s[1] == pytest.approx(24.0)
    assert plan.cycle_s == pytest.approx(sum(plan.green_s) + 3 * 6.0)


# --- the controller ------------------------------------------------------------------------------


def test_before_any_count_the_plan_comes_from_nominal_demand_with_300_vph_for_unknown_lanes():
    ctl = WebsterController(inter6(), ControlContext())
    # every lane 300 veh/h: y = 1/6 each, Y = 0.5: C0 = 64 s, 46 s / 3 effective each, 17.33 s displayed
    assert ctl.plan.cycle_s == pytest.approx(64.0)
    assert ctl.green_s == pytest.approx([18.0, 17.0, 17.0])
    ctl = WebsterController(inter6(), ControlContext(nominal_lane_flow_vph={"n_in_0": 540.0, "e_in_1": 0.0}))
    # y = 0.3, 1/6, 0 (e_in_1 has no demand): Y = 7/15, C0 = 32 / (8/15) = 60 s;
    # 42 s split 0.3 : 1/6 : 0 = 27, 15, 0 s effective, 29, 17, 2 s displayed; phase 2 raised to its 5 s minimum,
    # so the cycle is 63 s
    assert ctl.green_s == pytest.approx([29.0, 17.0, 5.0])
    assert ctl.plan.cycle_s == pytest.approx(63.0)


def test_webster_follows_its_plan_in_phase_order():
    ctl = make("webster", inter6(), ControlContext(nominal_lane_flow_vph=FLOWS_3_2_1))
    assert isinstance(ctl, WebsterController)
    obs = [Observation(0.0, "X", {}, signal=SignalStatus(p, "green", e)) for p, e in
           [(0, 32.9), (0, 33.0), (1, 22.9), (1, 23.0), (2, 12.0)]]
    assert [ctl.decide(o).phase_index for o in obs] == [None, 1, None, 2, 0]
    assert ctl.decide(obs[1]).proposed_by == "webster"


def stopbar_intersection() -> Intersection:
    dets = [Detector(f"sb_{lane}", lane, "stopbar", 2.0, i + 1) for i, lane in enumerate(FLOWS_3_2_1)]
    dets.append(Detector("adv_n_in_0", "n_in_0", "advance", 60.0, 9))
    return inter6(detectors=dets)


def counts_for(flows_vph: dict[str, float], period_s: float = 900.0) -> dict[str, int]:
    return {f"sb_{lane}": int(round(q * period_s / 3600.0)) for lane, q in flows_vph.items()}


def counted(time_s, counts, phase=0, elapsed_s=0.0, on_lane=None) -> Observation:
    lanes = {lane: LaneState(0, n, 0.0, 0.0, 0.0) for lane, n in (on_lane or {}).items()}
    return Observation(time_s, "X", lanes, signal=SignalStatus(phase, "green", elapsed_s),
                       detector_counts_veh=counts)


def test_webster_replans_from_stop_bar_counts_once_the_planning_period_has_passed():
    ctl = WebsterController(stopbar_intersection(), ControlContext())
    counts = {**counts_for(FLOWS_3_2_1), "adv_n_in_0": 1000}  # the advance detector is not a stop bar
    assert ctl.needs_counts_at == 900.0

    ctl.decide(counted(899.0, counts))
    assert len(ctl.plans) == 1 and ctl.green_s == pytest.approx([18.0, 17.0, 17.0])

    ctl.decide(counted(900.0, counts))
    # 135, 45, 90, 22, 45 vehicles in 15 min = 540, 180, 360, 88, 180 veh/h: the 3:2:1 plan
    assert len(ctl.plans) == 2 and ctl.plans[-1][0] == 900.0
    assert ctl.plan.cycle_s == pytest.approx(80.0)
    assert ctl.green_s == pytest.approx([33.0, 23.0, 12.0])
    assert ctl.needs_counts_at == 1800.0
    # and it now follows the new plan
    assert ctl.decide(counted(901.0, {}, phase=0, elapsed_s=32.0)).holds
    assert ctl.decide(counted(902.0, {}, phase=0, elapsed_s=33.0)).phase_index == 1

    # the next period is not re-planned early, even with counts
    ctl.decide(counted(1799.0, counts_for(dict.fromkeys(FLOWS_3_2_1, 18.0))))
    assert len(ctl.plans) == 2


def test_webster_without_counts_keeps_its_plan_past_the_planning_period():
    ctl = WebsterController(stopbar_intersection(), ControlContext())
    ctl.decide(Observation(1000.0, "X", {}, signal=SignalStatus(0, "green", 1.0)))
    assert len(ctl.plans) == 1 and ctl.needs_counts_at == 900.0


def test_demand_adds_the_growth_of_vehicles_stored_on_the_lane_since_the_last_plan():
    ctl = WebsterController(stopbar_intersection(), ControlContext())
    # 125 crossed the stop bar and 10 more queued up: demand 135 in 15 min = 540 veh/h, y = 0.3
    plan = ctl.replan({"sb_n_in_0": 125}, 900.0, {"n_in_0": 10})
    assert plan.flow_ratio_sum == pytest.approx(0.3)
    # next period: 135 crossed and the queue held at 10 -> 540 veh/h again (growth 0, not 10)
    plan = ctl.replan({"sb_n_in_0": 135}, 1800.0, {"n_in_0": 10})
    assert plan.flow_ratio_sum == pytest.approx(0.3)
    # the queue shrank by 10: 100 crossed, demand 90 = 360 veh/h
    plan = ctl.replan({"sb_n_in_0": 100}, 2700.0, {"n_in_0": 0})
    assert plan.flow_ratio_sum == pytest.approx(0.2)
    # nothing crossed but 20 queued up: demand 20 = 80 veh/h
    plan = ctl.replan({"sb_n_in_0": 0}, 3600.0, {"n_in_0": 20})
    assert plan.flow_ratio_sum == pytest.approx(80.0 / 1800.0, abs=1e-4)
    # 5 crossed while the queue of 20 vanished (vehicles left by another way): no demand, not a negative one;
    # e_in_0 counted 90 (360 veh/h): y = 0, 0.2, 0
    plan = ctl.replan({"sb_n_in_0": 5, "sb_e_in_0": 90}, 4500.0, {"n_in_0": 0})
    assert plan.flow_ratio_sum == pytest.approx(0.2)


def test_no_demand_on_any_lane_keeps_the_plan_in_hand():
    """Zero counts everywhere is a dead feed as much as an empty network: the plan for it (every phase at its
    minimum, 40 s cycle) would replace a demand-based plan with no better one."""
    ctl = WebsterController(stopbar_intersection(), ControlContext(nominal_lane_flow_vph=FLOWS_3_2_1))
    before = ctl.plan
    assert ctl.replan(dict.fromkeys(counts_for(FLOWS_3_2_1), 0), 900.0, {"n_in_0": 0}) is before
    assert len(ctl.plans) == 1 and ctl.green_s == pytest.approx([33.0, 23.0, 12.0]) and ctl.needs_counts_at == 1800.0
    # as a decision sees it, too
    ctl.decide(counted(1800.0, dict.fromkeys(counts_for(FLOWS_3_2_1), 0)))
    assert len(ctl.plans) == 1 and ctl.needs_counts_at == 2700.0


def test_nominal_demand_of_zero_on_every_lane_plans_on_the_default():
    zero = dict.fromkeys(FLOWS_3_2_1, 0.0)
    assert WebsterController(inter6(), ControlContext(nominal_lane_flow_vph=zero)).green_s == pytest.approx(
        [18.0, 17.0, 17.0])  # 300 veh/h on every lane, as with no nominal demand at all
    assert fallback_plan(inter6(), ControlContext(nominal_lane_flow_vph=zero)).green_s == pytest.approx(
        [18.0, 17.0, 17.0])


def test_planning_periods_count_from_the_runs_begin():
    """A run that begins at 07:00 (25200 s) re-plans at 07:15 on the counts of 07:00-07:15, not at once."""
    ctl = WebsterController(stopbar_intersection(), ControlContext(begin_s=25200.0))
    assert ctl.plans[0][0] == 25200.0 and ctl.needs_counts_at == 26100.0
    ctl.decide(counted(25201.0, dict.fromkeys(counts_for(FLOWS_3_2_1), 0)))
    assert len(ctl.plans) == 1
    ctl.decide(counted(26103.0, counts_for(FLOWS_3_2_1)))
    assert [t for t, _p in ctl.plans] == [25200.0, 26103.0] and ctl.green_s == pytest.approx([33.0, 23.0, 12.0])
    # the next counts are the detectors' next period, 26100..27000, whenever in its period this re-plan came
    assert ctl.needs_counts_at == 27000.0


def test_counts_from_no_stop_bar_detector_keep_the_plan_but_move_the_next_planning_time():
    ctl = WebsterController(stopbar_intersection(), ControlContext())
    before = ctl.plan
    assert ctl.replan({"adv_n_in_0": 500, "unknown": 3}, 900.0) is before
    assert len(ctl.plans) == 1 and ctl.needs_counts_at == 1800.0


def test_fallback_plan_is_a_plan_follower_on_the_nominal_webster_plan():
    fb = fallback_plan(inter6(), ControlContext(nominal_lane_flow_vph=FLOWS_3_2_1))
    assert isinstance(fb, PlanFollower) and fb.name == "webster-fallback"
    assert fb.green_s == pytest.approx([33.0, 23.0, 12.0])
