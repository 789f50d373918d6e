"""Max-pressure's pressures over lanes each measured alone are summed in one loop (`_lane_pressures`) where a call
per phase (`_phase_pressure`) did it: the same terms in the same order, so the very same floats, whatever the
measure, the permitted weight, or the lanes an observation leaves out. And a change's gap-out or force-off reads
the same lanes from the controller's kept list (`end_lanes`) as worked out again at each change."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from shield_fixtures import PERMITTED_LEFT_STATES, STATES, make_intersection

from signalwise.control.green_end import green_end, measured_incoming
from signalwise.control.max_pressure import MaxPressureController
from signalwise.control.zones import MovementZones
from signalwise.core import LaneState, Observation, SignalStatus

LANES = ("n_in_0", "s_in_0", "e_in_0", "w_in_0", "e_in_1", "s_out_0", "n_out_0", "w_out_0", "e_out_0", "s_out_1")


@st.composite
def observations(draw) -> Observation:
    """Some of the intersection's lanes (a source may leave any out), each with a count and a queue within it."""
    lanes = {}
    for lane in draw(st.lists(st.sampled_from(LANES), unique=True)):
        count = draw(st.integers(0, 60))
        lanes[lane] = LaneState(draw(st.integers(0, count)), count, 0.0, 0.0, 0.0)
    phase = draw(st.integers(0, 2))
    return Observation(50.0, "X", lanes, signal=SignalStatus(phase, "green", 30.0))


@settings(max_examples=300, deadline=None)
@given(obs=observations(), measure=st.sampled_from(("count", "queue", "halting", "demand")),
       states=st.sampled_from((STATES, PERMITTED_LEFT_STATES)),
       permitted_weight=st.sampled_from((1.0, 0.3, 0.7, 0.1)))
def test_the_summed_pressures_are_each_phases_own_sum(obs, measure, states, permitted_weight):
    ctl = MaxPressureController(make_intersection(states=states), measure=measure, permitted_weight=permitted_weight)
    one_loop = ctl.pressures(obs)
    per_phase = [ctl._phase_pressure(obs.lanes, i, ctl._x_in) for i in range(len(ctl.inter.phases))]
    assert one_loop == per_phase  # the same floats, not close ones


@settings(max_examples=200, deadline=None)
@given(obs=observations(), states=st.sampled_from((STATES, PERMITTED_LEFT_STATES)))
def test_a_changes_termination_reads_the_lanes_green_end_works_out(obs, states):
    ctl = MaxPressureController(make_intersection(states=states))
    moves = [tuple((m.in_lane, m.out_lane) for m in p.movements if not m.is_crosswalk) for p in ctl.inter.phases]
    measured = measured_incoming(moves, MovementZones((mv for ms in moves for mv in ms), 0.0, None, None, None))
    assert green_end(ctl.inter, obs, end_lanes=ctl._end_lanes) == green_end(ctl.inter, obs, measured) \
        == green_end(ctl.inter, obs)
