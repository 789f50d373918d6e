"""The shield's cycle bound orders the covering phases by due time (`_due`: deadline + minimum green + change
interval, Jackson's rule) and plans the greens to come in that order. `_most_urgent` and `_plan_slack` compute the
due times in one pass (`_dues`) rather than through `_due` and `_deadline` phase by phase: they must pick the same
phase and find the same slack, to the float, for any history of served links, called phases and bounds."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from shield_fixtures import PERMITTED_LEFT_STATES, STATES, make_intersection, shield_config

from signalwise.control.fixed import PlanFollower
from signalwise.control.shield import IntersectionShield

times = st.floats(0.0, 5000.0, allow_nan=False)


@st.composite
def shields(draw) -> IntersectionShield:
    """A shield whose links were last served at arbitrary times, some phases called (with cycle calls)."""
    inter = make_intersection(states=draw(st.sampled_from((STATES, PERMITTED_LEFT_STATES))),
                              cycle_max=draw(st.sampled_from((60.0, 120.0, 86400.0))))
    sh = IntersectionShield(inter, PlanFollower(inter, [20.0, 20.0, 10.0], "plan"), shield_config())
    sh.link_served_s = {link: draw(times) for link in sh.link_served_s}
    if draw(st.booleans()):
        sh._calls = True
        sh._call_s = [draw(st.one_of(st.none(), times)) for _ in inter.phases]
    sh._deadlines = None
    return sh


def _by_due(sh: IntersectionShield, plan, skip):
    return sorted((p for p in sh.cycle_phases if p != skip), key=lambda p: sh._due(p, plan))


@settings(max_examples=300, deadline=None)
@given(sh=shields(), exclude=st.integers(0, 2))
def test_the_most_urgent_phase_is_the_first_by_due_time(sh, exclude):
    others = _by_due(sh, sh._hold_plan, exclude)
    assert sh._most_urgent(exclude) == (others[0] if others else None)


@settings(max_examples=300, deadline=None)
@given(sh=shields(), first=st.one_of(st.none(), st.integers(0, 2)), start_s=times)
def test_the_plans_slack_is_the_least_spare_time_over_the_phases_in_due_order(sh, first, start_s):
    plan = sh._hold_plan
    slack, t = math.inf, start_s
    for p in ([first] if first is not None else []) + _by_due(sh, plan, first):
        slack = min(slack, sh._deadline(p, plan) - t)
        t += plan.min_green_s[p] + plan.clear_s[p]
    assert sh._plan_slack(first, start_s, plan) == slack
