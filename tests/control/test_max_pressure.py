"""Max-pressure control: serve the phase whose movements have the most (incoming - outgoing) vehicles.

Movements of `make_intersection`:
phase 0: n_in_0 -> s_out_0, s_in_0 -> n_out_0
phase 1: e_in_0 -> w_out_0, w_in_0 -> e_out_0 (and a crosswalk, which has no pressure)
phase 2: e_in_1 -> s_out_1
"""

from __future__ import annotations

import pytest
from shield_fixtures import PERMITTED_LEFT_STATES, make_intersection

from signalwise.control import ControlContext, make
from signalwise.control.max_pressure import MaxPressureController
from signalwise.core import LaneState, Observation, SignalStatus


def lanes(counts: dict[str, int], queues: dict[str, int] | None = None) -> dict[str, LaneState]:
    queues = queues or {}
    return {lane: LaneState(queues.get(lane, 0), n, 0.0, 0.0, 0.0) for lane, n in counts.items()}


def obs(counts, phase=0, elapsed_s=20.0, interval="green", queues=None) -> Observation:
    return Observation(100.0, "X", lanes(counts, queues), signal=SignalStatus(phase, interval, elapsed_s))


def pressured(p0: int, p1: int, p2: int) -> dict[str, int]:
    """Counts that give the three phases these pressures (outgoing lanes empty)."""
    return {"n_in_0": p0, "e_in_0": p1, "e_in_1": p2}


@pytest.fixture
def ctl():
    return MaxPressureController(make_intersection())


def test_pressure_is_the_sum_over_movements_of_incoming_minus_outgoing(ctl):
    counts = {"n_in_0": 10, "s_out_0": 3, "s_in_0": 4, "n_out_0": 6,  # (10 - 3) + (4 - 6) = 5
              "e_in_0": 8, "w_out_0": 0, "w_in_0": 2, "e_out_0": 7,  # (8 - 0) + (2 - 7) = 3
              "e_in_1": 9, "s_out_1": 1}  # 9 - 1 = 8
    assert ctl.pressures(obs(counts)) == [5.0, 3.0, 8.0]


def test_lanes_not_observed_count_as_empty_and_crosswalks_have_no_pressure(ctl):
    counts = {"n_in_0": 4, "s_out_1": 6, ":c_w0_0": 50, ":c_c0_0": 0}
    assert ctl.pressures(obs(counts)) == [4.0, 0.0, -6.0]


def test_queue_measure_counts_halting_vehicles_in_and_all_vehicles_out():
    ctl = MaxPressureController(make_intersection(), measure="queue")
    counts = {"n_in_0": 10, "s_out_0": 3, "e_in_0": 8, "e_in_1": 9, "s_out_1": 1}
    queues = {"n_in_0": 2, "s_out_0": 3, "e_in_0": 6, "e_in_1": 0, "s_out_1": 1}
    # phase 0: 2 - 3; phase 1: 6; phase 2: 0 - 1
    assert ctl.pressures(obs(counts, queues=queues)) == [-1.0, 6.0, -1.0]


def test_max_pressure_proposes_the_phase_with_the_largest_pressure(ctl):
    d = ctl.decide(obs(pressured(3, 4, 9), phase=0))
    assert d.phase_index == 2 and d.proposed_by == "max-pressure"
    assert ctl.decide(obs(pressured(3, 4, 2), phase=0)).phase_index == 1


def test_the_best_of_negative_pressures_still_wins(ctl):
    counts = {"s_out_0": 5, "w_out_0": 1, "s_out_1": 3}  # -5, -1, -3
    assert ctl.decide(obs(counts, phase=0)).phase_index == 1


def test_max_pressure_holds_while_the_current_phase_has_the_most_pressure(ctl):
    assert ctl.decide(obs(pressured(9, 4, 3), phase=0)).holds


def test_max_pressure_holds_a_new_green_for_its_minimum_hold(ctl):
    assert ctl.min_hold_s == 15.0  # the plain rule's hold; the registered controller's default is 10 s
    big = pressured(0, 50, 0)
    for elapsed in (0.0, 5.0, 14.9):
        assert ctl.decide(obs(big, phase=0, elapsed_s=elapsed)).holds, elapsed
    assert ctl.decide(obs(big, phase=0, elapsed_s=15.0)).phase_index == 1


def test_a_tie_with_the_current_phase_keeps_the_current_phase(ctl):
    assert ctl.decide(obs(pressured(5, 5, 2), phase=0)).holds
    assert ctl.decide(obs(pressured(2, 7, 7), phase=2)).holds


def test_a_tie_between_other_phases_goes_to_the_lowest_phase_index(ctl):
    assert ctl.decide(obs(pressured(1, 6, 6), phase=0)).phase_index == 1
    # from phase 1, phases 0 and 2 tie: phase 0, not the next in cycle order
    assert ctl.decide(obs(pressured(6, 1, 6), phase=1)).phase_index == 0


@pytest.mark.parametrize("counts", [{}, pressured(4, 4, 4)])
def test_all_pressures_equal_holds_the_current_phase(ctl, counts):
    for phase in range(3):
        assert ctl.decide(obs(counts, phase=phase)).holds


@pytest.mark.parametrize("interval", ["yellow", "all_red"])
def test_max_pressure_holds_during_clearance(ctl, interval):
    assert ctl.decide(obs(pressured(0, 50, 0), phase=0, elapsed_s=99.0, interval=interval)).holds


def test_max_pressure_holds_when_the_signal_state_is_unknown(ctl):
    assert ctl.decide(Observation(100.0, "X", lanes(pressured(0, 50, 0)))).holds


def test_pressures_are_recomputed_for_a_new_observation(ctl):
    first = obs(pressured(1, 2, 3))
    assert ctl.pressures(first) == [1.0, 2.0, 3.0]
    assert ctl.pressures(first) == [1.0, 2.0, 3.0]
    assert ctl.pressures(obs(pressured(3, 2, 1))) == [3.0, 2.0, 1.0]


def test_factory_defaults_and_options():
    ctl = make("max-pressure", make_intersection(), ControlContext())
    assert isinstance(ctl, MaxPressureController)
    assert (ctl.period_s, ctl.measure, ctl.min_hold_s) == (5.0, "density_demand", 10.0)
    assert ctl.observation == "counts" and ctl.wants_detectors is False
    ctx = ControlContext(options={"period_s": "2", "measure": "queue", "min_hold_s": 0})
    ctl = make("max-pressure", make_intersection(), ctx)
    assert (ctl.period_s, ctl.measure, ctl.min_hold_s) == (2.0, "queue", 0.0)
    assert ctl.decide(obs(pressured(0, 0, 0), queues={"e_in_1": 3}, elapsed_s=0.0)).phase_index == 2


def test_halting_measure_counts_halting_vehicles_in_and_out():
    ctl = MaxPressureController(make_intersection(), measure="halting")
    counts = {"n_in_0": 10, "s_out_0": 3, "e_in_0": 8, "e_in_1": 9, "s_out_1": 1}
    queues = {"n_in_0": 2, "s_out_0": 1, "e_in_0": 6, "e_in_1": 0, "s_out_1": 1}
    # phase 0: 2 - 1; phase 1: 6; phase 2: 0 - 1
    assert ctl.pressures(obs(counts, queues=queues)) == [1.0, 6.0, -1.0]


def test_ties_hold_keeps_the_current_phase_and_first_serves_the_first_of_the_largest():
    tied = pressured(5, 0, 5)
    assert MaxPressureController(make_intersection()).decide(obs(tied, phase=2)).phase_index is None
    assert MaxPressureController(make_intersection(), ties="first").decide(obs(tied, phase=2)).phase_index == 0
    # all empty: the reference's rule returns to the first phase
    assert MaxPressureController(make_intersection(), ties="first").decide(obs(pressured(0, 0, 0), phase=1)).phase_index == 0


def test_lost_time_makes_a_change_pay_for_its_clearance():
    """A change gives the new phase min_hold / (min_hold + lost time) of the time: 15 / 20 with 5 s lost."""
    ctl = MaxPressureController(make_intersection(), min_hold_s=15.0, lost_time_s=5.0)
    assert ctl.decide(obs(pressured(6, 7, 0), phase=0)).phase_index is None      # 7 * 0.75 = 5.25 < 6
    assert ctl.decide(obs(pressured(6, 8, 0), phase=0)).phase_index is None      # 8 * 0.75 = 6, not more
    assert ctl.decide(obs(pressured(6, 9, 0), phase=0)).phase_index == 1         # 9 * 0.75 = 6.75 > 6
    assert ctl.decide(obs(pressured(-3, 1, 0), phase=0)).phase_index == 1        # an empty phase yields at once
    plain = MaxPressureController(make_intersection(), min_hold_s=15.0)
    assert plain.decide(obs(pressured(6, 7, 0), phase=0)).phase_index == 1


def test_lost_time_clearance_option_takes_each_phases_own_clearance():
    """A change costs the change interval of the phase that ends: leaving a phase with a long one needs more."""
    inter = make_intersection(phase_yellow=(3.0, 5.0, 3.0), phase_all_red=(1.0, 3.0, 1.0))
    ctl = make("max-pressure", inter, ControlContext(options={"lost_time_s": "clearance", "min_hold_s": 10.0,
                                                              "period_s": 5.0}))
    assert ctl.lost_time_s == (4.0, 8.0, 4.0)
    # leaving phase 0 (4 s): 8 * 10 / 14 = 5.7 > 5 pays; leaving phase 1 (8 s): 8 * 10 / 18 = 4.4 < 5 does not
    assert ctl.decide(obs(pressured(5, 8, 0), phase=0, elapsed_s=20.0)).phase_index == 1
    assert ctl.decide(obs(pressured(8, 5, 0), phase=1, elapsed_s=20.0)).phase_index is None


def test_serving_moving_keeps_a_green_whose_queue_still_discharges():
    """Halting vehicles alone say a green's queue has gone once it starts to move; `serving: moving` counts
    the current green's moving vehicles too, and only the current green's."""
    counts = {"n_in_0": 8, "e_in_0": 5}
    queues = {"n_in_0": 1, "e_in_0": 5}  # phase 0's queue is moving off; phase 1's stands
    plain = MaxPressureController(make_intersection(), measure="halting")
    assert plain.decide(obs(counts, phase=0, queues=queues)).phase_index == 1  # 1 halting < 5
    serving = make("max-pressure", make_intersection(), ControlContext(options={
        "measure": "halting", "serving": "moving", "lost_time_s": 0, "min_hold_s": 0}))
    assert serving.decide(obs(counts, phase=0, queues=queues)).phase_index is None  # 8 in, moving or not, > 5
    assert serving.pressures(obs(counts, phase=0, queues=queues)) == [1.0, 5.0, 0.0]  # the others: halting
    # phase 1 current: phase 0's moving vehicles do not count for it, 5 > 1 holds
    assert serving.decide(obs(counts, phase=1, queues=queues)).phase_index is None
    # phase 1's 5 vehicles, all moving, weigh 5 on its green; phase 0's 6 halting ones win
    assert serving.decide(obs(counts, phase=1, queues={"n_in_0": 6, "e_in_0": 0})).phase_index == 0
    with pytest.raises(ValueError, match="serving 'all'"):
        MaxPressureController(make_intersection(), measure="halting", serving="all")
    with pytest.raises(ValueError, match="already counts"):
        MaxPressureController(make_intersection(), measure="density", serving="moving")


def test_unknown_measure_or_tie_rule_is_refused():
    with pytest.raises(ValueError, match="measure 'speed'"):
        MaxPressureController(make_intersection(), measure="speed")
    with pytest.raises(ValueError, match="ties 'random'"):
        MaxPressureController(make_intersection(), ties="random")


def test_density_measure_weighs_vehicles_per_100_m_of_lane():
    """A 10 m lane with one car is as full as a 100 m lane with ten."""
    lengths = {"n_in_0": 10.0, "s_out_0": 200.0, "s_in_0": 100.0, "n_out_0": 100.0, "e_in_0": 100.0, "e_in_1": 50.0,
               "s_out_1": 100.0}
    ctl = MaxPressureController(make_intersection(), measure="density", lane_length_m=lengths)
    counts = {"n_in_0": 1, "s_out_0": 4, "s_in_0": 3, "e_in_0": 10, "e_in_1": 2}
    # phase 0: 1/10 - 4/200 + 3/100 (per 100 m: 10 - 2 + 3); phase 1: 10; phase 2: 2/50 -> 4
    assert ctl.pressures(obs(counts)) == pytest.approx([11.0, 10.0, 4.0])


def test_factory_defaults_are_density_demand_a_10_s_hold_and_the_clearance_as_lost_time():
    inter = make_intersection()
    ctl = make("max-pressure", inter, ControlContext(lane_length_m={"n_in_0": 50.0, "s_out_0": 50.0}))
    assert (ctl.measure, ctl.min_hold_s) == ("density_demand", 10.0)
    assert ctl.lost_time_s == (inter.timing.yellow_s + inter.timing.all_red_s,) * 3
    assert ctl.pressures(obs({"n_in_0": 1}))[0] == pytest.approx(2.0)  # 1 car on 50 m = 2 per 100 m
    # two cars moving away on the 50 m lane out weigh nothing; one halting there weighs 2 per 100 m
    assert ctl.pressures(obs({"n_in_0": 1, "s_out_0": 2}))[0] == pytest.approx(2.0)
    assert ctl.pressures(obs({"n_in_0": 1, "s_out_0": 2}, queues={"s_out_0": 1}))[0] == pytest.approx(0.0)


def test_density_demand_keeps_a_discharging_green_that_density_cuts():
    """Phase 0 discharges: 4 cars still on its 100 m lane in, 6 moving on its 100 m lane out; phase 1 has 5
    halting. Every vehicle out (density) leaves phase 0 a pressure of -2 and hands the green to phase 1;
    halting vehicles out (density_demand) leave it 4 against 5 / (1 + lost time 5 s / hold 10 s) = 3.3."""
    lengths = {lane: 100.0 for lane in ("n_in_0", "s_out_0", "s_in_0", "n_out_0", "e_in_0", "w_out_0", "w_in_0",
                                        "e_out_0", "e_in_1", "s_out_1")}
    counts, queues = {"n_in_0": 4, "s_out_0": 6, "e_in_0": 5}, {"e_in_0": 5}
    seen = obs(counts, queues=queues, elapsed_s=20.0)
    picks = {}
    for measure in ("density", "density_demand"):
        ctl = MaxPressureController(make_intersection(), measure=measure, min_hold_s=10.0, lost_time_s=5.0,
                                    lane_length_m=lengths)
        picks[measure] = ctl.decide(seen).phase_index
    assert picks == {"density": 1, "density_demand": None}


# n_in_0 is 0.9 m long (ingolstadt7's western entry): its queue stands on n_up_0 behind it. s_out_0 is 2 m:
# what it leads into, s_next_0, holds the queue that blocks it.
ZONE_LENGTHS = {"n_in_0": 0.9, "n_up_0": 43.6, "s_out_0": 2.0, "s_next_0": 48.0, "s_in_0": 100.0,
                "n_out_0": 100.0, "e_in_0": 100.0, "w_out_0": 100.0, "w_in_0": 100.0, "e_out_0": 100.0,
                "e_in_1": 100.0, "s_out_1": 100.0}
UPSTREAM = {"n_in_0": (("n_up_0", 0.9),)}
DOWNSTREAM = {"s_out_0": (("s_next_0", 2.0),)}


def zoned(zone_m: float) -> MaxPressureController:
    return MaxPressureController(make_intersection(), measure="density", min_hold_s=0.0, lane_length_m=ZONE_LENGTHS,
                                 zone_m=zone_m, lane_upstream=UPSTREAM, lane_downstream=DOWNSTREAM)


def test_a_short_lane_is_measured_with_the_lane_its_queue_stands_on():
    """Five cars queue behind a 0.9 m stop-line lane that shows none; three wait on a 100 m lane. Each lane
    alone, the short approach has no pressure and is never served; with a 50 m zone it has 5 cars on 44.5 m."""
    counts = {"n_up_0": 5, "e_in_0": 3}
    alone = zoned(0.0)
    assert alone.zone_lane_ids == ()
    assert alone.pressures(obs(counts, phase=1))[:2] == [0.0, 3.0]
    assert alone.decide(obs(counts, phase=1)).holds
    ctl = zoned(50.0)
    assert set(ctl.zone_lane_ids) == {"n_up_0", "s_next_0"}  # the runtime observes these too
    assert ctl.pressures(obs(counts, phase=1))[0] == pytest.approx(5 * 100 / 44.5)
    assert ctl.decide(obs(counts, phase=1)).phase_index == 0


def test_a_lane_that_feeds_several_counts_its_share_for_the_pocket_it_feeds():
    """n_up_0 feeds the 0.9 m pocket n_in_0 and a lane beside it, so `lane_zones` leaves it out and the
    pocket shows nobody. Split, half its five cars count for the pocket, over half its length."""
    counts = {"n_up_0": 5, "e_in_0": 3}
    split = {"n_in_0": (("n_up_0", 0.9, 0.5),)}

    def ctl(shared_lanes):
        return MaxPressureController(make_intersection(), measure="density", min_hold_s=0.0,
                                     lane_length_m=ZONE_LENGTHS, zone_m=50.0, lane_upstream={},
                                     lane_downstream=DOWNSTREAM, shared_lanes=shared_lanes,
                                     lane_upstream_split=split)
    skip, shared = ctl("skip"), ctl("split")
    assert "n_up_0" not in skip.zone_lane_ids and "n_up_0" in shared.zone_lane_ids
    assert skip.pressures(obs(counts, phase=1))[0] == 0.0
    assert shared.pressures(obs(counts, phase=1))[0] == pytest.approx(0.5 * 5 * 100 / (0.9 + 0.5 * 43.6))
    assert shared.decide(obs(counts, phase=1)).phase_index == 0 and skip.decide(obs(counts, phase=1)).holds
    with pytest.raises(ValueError, match="shared_lanes 'all'"):
        ctl("all")


def test_the_factory_splits_shared_lanes_from_the_context():
    ctx = ControlContext(lane_length_m=ZONE_LENGTHS, lane_upstream={},
                         lane_upstream_split={"n_in_0": (("n_up_0", 0.9, 0.5),)})
    assert "n_up_0" in make("max-pressure", make_intersection(), ctx).zone_lane_ids
    ctx.options["shared_lanes"] = "skip"
    assert "n_up_0" not in make("max-pressure", make_intersection(), ctx).zone_lane_ids


def test_an_outgoing_zone_counts_the_queue_beyond_a_short_outgoing_lane():
    """The queue past a 2 m outgoing lane pushes back on the movement into it: 4 cars on 50 m."""
    counts = {"n_up_0": 5, "s_next_0": 4}
    assert zoned(50.0).pressures(obs(counts))[0] == pytest.approx(5 * 100 / 44.5 - 4 * 100 / 50.0)


def test_a_zone_reaches_only_lanes_that_start_within_it():
    """n_up_0 starts 0.9 m before the stop line, s_next_0 2 m past the junction."""
    assert zoned(0.5).zone_lane_ids == ()
    assert zoned(1.0).zone_lane_ids == ("n_up_0",)
    assert zoned(2.5).zone_lane_ids == ("n_up_0", "s_next_0")


def test_factory_takes_the_zones_from_the_context_and_measures_50_m_by_default():
    ctx = ControlContext(lane_length_m=ZONE_LENGTHS, lane_upstream=UPSTREAM, lane_downstream=DOWNSTREAM)
    assert make("max-pressure", make_intersection(), ctx).zone_lane_ids == ("n_up_0", "s_next_0")
    ctx = ControlContext(lane_length_m=ZONE_LENGTHS, lane_upstream=UPSTREAM, lane_downstream=DOWNSTREAM,
                         options={"zone_m": 0})
    assert make("max-pressure", make_intersection(), ctx).zone_lane_ids == ()


def stopped_obs(counts, stopped, queues=None, phase=0) -> Observation:
    queues = queues or {}
    lanes_ = {lane: LaneState(queues.get(lane, 0), n, 0.0, 0.0, 0.0, stopped.get(lane)) for lane, n in counts.items()}
    return Observation(100.0, "X", lanes_, signal=SignalStatus(phase, "green", 20.0))


def test_stopped_measure_weighs_vehicles_seen_halting_in_and_out():
    """RESCO's queue: a queue moving off (no longer halting) still counts until it has left the lane."""
    ctl = MaxPressureController(make_intersection(), measure="stopped", min_hold_s=0)
    assert ctl.observation == "stopped"
    counts = {"n_in_0": 9, "s_out_0": 4, "e_in_0": 6, "e_in_1": 3}
    stopped = {"n_in_0": 8, "s_out_0": 1, "e_in_0": 5, "e_in_1": 0}
    # phase 0's queue moves off (1 still halting of 8 seen stopped): 8 - 1 = 7 against phase 1's 5 halting
    assert ctl.pressures(stopped_obs(counts, stopped, queues={"n_in_0": 1, "e_in_0": 5})) == [7.0, 5.0, 0.0]
    assert ctl.decide(stopped_obs(counts, stopped, queues={"n_in_0": 1, "e_in_0": 5})).holds
    # the halting measure cuts that green: 1 against 5
    halting = MaxPressureController(make_intersection(), measure="halting", min_hold_s=0)
    assert halting.decide(stopped_obs(counts, stopped, queues={"n_in_0": 1, "e_in_0": 5})).phase_index == 1


def test_stopped_measure_falls_back_to_halting_vehicles_where_the_source_follows_none():
    ctl = make("max-pressure", make_intersection(), ControlContext(options={"measure": "stopped"}))
    counts = {"n_in_0": 9, "e_in_0": 6}
    assert ctl.pressures(obs(counts, queues={"n_in_0": 2, "e_in_0": 4})) == [2.0, 4.0, 0.0]


def test_a_permitted_movement_weighs_its_share_so_the_protected_phase_of_the_same_left_can_win():
    # PERMITTED_LEFT_STATES: phase 1 serves the E-W through (e_in_0, w_in_0) and the left e_in_1 permitted ('g');
    # phase 2 serves the same left protected ('G')
    inter = make_intersection(states=PERMITTED_LEFT_STATES)
    counts = {"e_in_0": 2, "e_in_1": 12}
    plain = MaxPressureController(inter)
    assert plain.pressures(obs(counts)) == [0.0, 14.0, 12.0]  # the superset always outweighs the protected left
    assert plain.decide(obs(counts, phase=0)).phase_index == 1
    weighted = MaxPressureController(inter, permitted_weight=0.5)
    assert weighted.pressures(obs(counts)) == [0.0, 2.0 + 0.5 * 12, 12.0]  # 8 against 12
    assert weighted.decide(obs(counts, phase=0)).phase_index == 2


def test_the_permitted_weight_also_weighs_the_way_out_and_zones_and_per_metre_measures():
    inter = make_intersection(states=PERMITTED_LEFT_STATES)
    counts = {"e_in_1": 10, "s_out_1": 4}
    by_lane = MaxPressureController(inter, permitted_weight=0.25)
    assert by_lane.pressures(obs(counts))[1] == pytest.approx(0.25 * (10 - 4))
    per_m = MaxPressureController(inter, measure="density", permitted_weight=0.25,
                                  lane_length_m={"e_in_1": 50.0, "s_out_1": 200.0})
    # per 100 m: 10 vehicles on 50 m = 20, 4 on 200 m = 2; the permitted link weighs a quarter, the protected whole
    assert per_m.pressures(obs(counts))[1:] == [pytest.approx(0.25 * (20 - 2)), pytest.approx(20 - 2)]
    # a 2 m pocket whose queue stands on the lane behind it: measured over its zone, still weighed a quarter
    zoned_left = MaxPressureController(inter, measure="count", permitted_weight=0.25, zone_m=50.0,
                                       lane_length_m={"e_in_1": 2.0, "e_up_1": 48.0},
                                       lane_upstream={"e_in_1": (("e_up_1", 2.0),)})
    assert zoned_left.pressures(obs({"e_up_1": 8}))[1:] == [pytest.approx(0.25 * 8), pytest.approx(8)]


def test_a_permitted_weight_outside_0_to_1_is_refused_by_name():
    with pytest.raises(ValueError, match="permitted_weight"):
        MaxPressureController(make_intersection(), permitted_weight=1.5)
    ctx = ControlContext(options={"permitted_weight": -0.1})
    with pytest.raises(ValueError, match="permitted_weight"):
        make("max-pressure", make_intersection(), ctx)
