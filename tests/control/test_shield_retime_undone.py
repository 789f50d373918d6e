"""A retime undone before any green takes it: the green in force was held, and the next phase chosen, against the
timing in force, so every link's wait keeps the bound in force whatever retime replaces the waiting one. An operator
who raises the bound (or shortens the minimum greens) and takes it back within a cycle must not make a link late."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest
from shield_fixtures import PERMITTED_LEFT_STATES, STATES, make_intersection, shield_config
from test_shield import drive, fallback_for

from signalwise.analytics.safety_audit import audit
from signalwise.control.shield import IntersectionShield
from signalwise.core import Decision, EventCode
from signalwise.runtime.loop import describe_intersections

#: the phase the controller wants throughout (phase 2: the E-W through with the crosswalk)
WANTED = 1


def _intersection(min_green=(5.0, 5.0, 5.0), states=PERMITTED_LEFT_STATES):
    """Bound 100 s, greens never maxed out, a 7 s change interval (4 s yellow, 3 s all-red) after every phase."""
    return make_intersection(min_green=min_green, max_green=(300.0,) * 3, cycle_max=100.0,
                             phase_yellow=(4.0,) * 3, phase_all_red=(3.0,) * 3, states=states)


def _run(inter, retimes: dict[float, object], initial_phase: int = 0, until_s: float = 300.0):
    """Phase 2 wanted throughout; at each time in `retimes` the next revision of the timing is sent. Returns the
    shield and the audit of its log against the model with those revisions."""
    sh = IntersectionShield(inter, fallback_for(inter), shield_config(), initial_phase=initial_phase)
    revisions = list(retimes.values())

    def proposals(t):
        if t in retimes:
            sh.retime(retimes[t], list(retimes).index(t) + 1)
        return Decision("X", WANTED, "test")

    states = drive(sh, until_s, proposals)
    model = describe_intersections([inter], step_s=1.0)
    model[0]["timing_revisions"] = [dataclasses.asdict(t) for t in revisions]
    return sh, audit(sh.events, model, states, 1.0)


def _held_green_forced_off_s(inter, initial_phase: int = 0) -> float:
    """When the shield, with no retime, ends the wanted phase's first green for the cycle bound (the latest the
    timing in force lets it run)."""
    sh, report = _run(inter, {}, initial_phase)
    assert report.ok
    return min(iv.time_s for iv in sh.interventions if iv.rule == "cycle_max")


def _starts(sh, phase_number: int) -> list[float]:
    return [e.time_s for e in sh.events if e.event_code == EventCode.PHASE_BEGIN_GREEN and e.parameter == phase_number]


def test_a_raised_bound_undone_before_any_green_takes_it_leaves_every_wait_within_the_bound_in_force():
    """Phase 1 (link 0) green at 0, phase 2 from 12: link 0 is due at 100, so phase 2 must end by 93. A retime to a
    200 s bound at 85 (deadline - 15 s) let the shield hold phase 2 against that bound, not yet in force; the
    retime back to 100 s at 95 (deadline - 5 s) came before any green took the first, and link 0 started at 102:
    102 s against a 100 s bound that never changed."""
    inter = _intersection()
    assert _held_green_forced_off_s(inter) == 93.0
    sh, report = _run(inter, {85.0: replace(inter.timing, cycle_max_s=200.0), 95.0: replace(inter.timing)})
    assert report.ok, [str(v) for v in report.violations[:3]]
    assert _starts(sh, 1)[1] <= 100.0
    # no green took either revision before link 0's: the timing in force held the whole wait
    assert min(e.time_s for e in sh.events if e.event_code == EventCode.TIMING_PLAN_CHANGE) >= _starts(sh, 1)[1]


@pytest.mark.parametrize("states", [STATES, PERMITTED_LEFT_STATES], ids=["three covering", "permitted left"])
@pytest.mark.parametrize("undone_after_s", [3.0, 9.0])
@pytest.mark.parametrize("initial_phase", [0, WANTED])
def test_a_raised_bound_undone_at_any_moment_past_the_held_greens_end_is_kept(states, undone_after_s, initial_phase):
    """Raised 10 s before the latest end the bound in force allows the held green, undone `undone_after_s` past
    it, with either phase set and either opening green: no wait passes the 100 s bound in force."""
    inter = _intersection(states=states)
    end_s = _held_green_forced_off_s(inter, initial_phase)
    _, report = _run(inter, {end_s - 10: replace(inter.timing, cycle_max_s=200.0),
                             end_s + undone_after_s: replace(inter.timing)}, initial_phase)
    assert report.ok, [str(v) for v in report.violations[:3]]
    assert report.checked["cycle_max"] > 3


@pytest.mark.parametrize("states", [STATES, PERMITTED_LEFT_STATES], ids=["three covering", "permitted left"])
def test_shorter_minimum_greens_undone_before_any_green_takes_them_leave_every_wait_within_the_bound(states):
    """Every link served at 0, phase 2 held: phase 1's 25 s minimum must still fit before phase 2 is due again at
    100, so phase 2 ends by 61. A retime to 5 s minimums let the shield hold phase 2 20 s longer; undone before any
    green took it, phase 1's 25 s made phase 2 start again at 114. Whatever retime replaces the waiting one, the
    held green leaves room for the timing in force."""
    inter = _intersection(min_green=(25.0, 5.0, 5.0), states=states)
    end_s = _held_green_forced_off_s(inter, initial_phase=WANTED)
    shorter = replace(inter.timing, min_green_s=(5.0, 5.0, 5.0))
    sh, report = _run(inter, {end_s - 6: shorter, end_s + 14: replace(inter.timing)}, initial_phase=WANTED)
    assert report.ok, [str(v) for v in report.violations[:3]]
    assert report.checked["cycle_max"] > 3
    # the shorter greens were taken at the green that ended the hold, and the minimums entered again after them
    assert [e.parameter for e in sh.events if e.event_code == EventCode.TIMING_PLAN_CHANGE][:2] == [1, 2]
