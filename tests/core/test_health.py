"""Plausibility of lane measures: `lanes_fault` checks every lane of every observation in one comparison per
lane, and must find exactly what the per-lane rule `lane_fault` finds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signalwise.core.health import MAX_VEHICLES_PER_LANE, lane_fault, lanes_fault
from signalwise.core.types import LaneState

# around every bound the rule has: negative, zero, the vehicle limit, occupancy 1, NaN and infinities
counts = st.one_of(st.integers(-3, MAX_VEHICLES_PER_LANE + 3), st.sampled_from([math.nan, math.inf, -math.inf]))
reals = st.one_of(st.floats(-2.0, 2.0), st.sampled_from([0.0, 1.0, -0.0, math.nan, math.inf, -math.inf, 1e300]))
lanes = st.builds(LaneState, counts, counts, reals, reals, reals, st.one_of(st.none(), counts))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), lanes, max_size=4))
@pytest.mark.slow
def test_the_quick_check_finds_what_the_rule_finds(observed):
    first = next((why for lane, s in observed.items() if (why := lane_fault(lane, s)) is not None), None)
    assert lanes_fault(observed) == first


def test_each_bound_is_a_fault():
    ok = LaneState(2, 3, 0.5, 4.0, 10.0)
    assert lanes_fault({"a": ok}) is None
    # vehicles seen halting: at least those halting now, at most those on the lane
    assert lanes_fault({"a": LaneState(2, 3, 0.5, 4.0, 10.0, 2), "b": LaneState(0, 3, 0.5, 4.0, 10.0, 3)}) is None
    for bad in (LaneState(-1, 3, 0.5, 4.0, 0.0), LaneState(4, 3, 0.5, 4.0, 0.0),
                LaneState(1, MAX_VEHICLES_PER_LANE + 1, 0.5, 4.0, 0.0), LaneState(1, 3, 1.01, 4.0, 0.0),
                LaneState(1, 3, 0.5, math.inf, 0.0), LaneState(1, 3, 0.5, 4.0, math.nan),
                LaneState(1, 3, 0.5, -0.1, 0.0), LaneState(2, 3, 0.5, 4.0, 0.0, 1), LaneState(2, 3, 0.5, 4.0, 0.0, 4)):
        assert lanes_fault({"ok": ok, "a": bad}).startswith("lane a"), bad
