"""A source may hand one LaneState object to several lanes (SUMO's counts keep one per value): `lanes_fault` checks
such an object once, and must still name the first lane, in the observation's order, whose measures cannot be
true, as the per-lane rule `lane_fault` does."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from signalwise.core.health import MAX_VEHICLES_PER_LANE, lane_fault, lanes_fault
from signalwise.core.types import LaneState

counts = st.one_of(st.integers(-2, MAX_VEHICLES_PER_LANE + 2), st.sampled_from([math.nan, math.inf]))
reals = st.one_of(st.floats(-1.0, 2.0), st.sampled_from([0.0, 1.0, math.nan, math.inf]))
sound = st.builds(lambda q, extra: LaneState(q, q + extra, 0.0, 0.0, 0.0), st.integers(0, 20), st.integers(0, 20))
states = st.one_of(sound, st.builds(LaneState, counts, counts, reals, reals, reals, st.one_of(st.none(), counts)))


@settings(max_examples=400, deadline=None)
@given(pool=st.lists(states, min_size=1, max_size=4), picks=st.lists(st.integers(0, 3), max_size=8))
def test_a_state_shared_by_lanes_is_judged_as_each_lane_alone(pool, picks):
    observed = {f"lane{k}": pool[i % len(pool)] for k, i in enumerate(picks)}  # the same objects, lane after lane
    first = next((why for lane, s in observed.items() if (why := lane_fault(lane, s)) is not None), None)
    assert lanes_fault(observed) == first
