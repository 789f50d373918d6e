"""Preemption entry: a call during a change interval goes to the emergency vehicle's phase, and `preempt_ends_walk`
saves the walk even where the minimum green is raised to walk + clearance (as every run's timing does).
Graded by the independent audit where it applies."""

from __future__ import annotations

from dataclasses import replace

import pytest
from shield_fixtures import make_intersection, shield_config
from test_shield import audit_shield, drive, fallback_for, greens

from signalwise.control.shield import IntersectionShield
from signalwise.core import Decision, EmergencyApproach, EventCode, Intersection, Movement, Phase
from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import timing_defaults
from signalwise.sim.signal_model import retimed

LEFT_EV = [EmergencyApproach("ev1", "e_in_1", 120.0, 4)]  # link 4: the protected left, phase 3


def _codes(sh, code):
    return [(e.time_s, e.parameter) for e in sh.events if e.event_code == code]


@pytest.mark.parametrize("call_s", [6.0, 9.0])  # 1 s into phase 1's yellow (5-9), 0 s into its all-red (9-11)
def test_a_call_during_a_change_to_another_phase_leads_it_to_the_vehicles_phase(call_s):
    """Phase 1 ends at 5 for phase 2 (which has a walk); the call for the left (phase 3) comes during that
    change. Its yellow (3.5 s shown 4) and all-red (2 s) run in full, then phase 3 starts: no green or walk of
    phase 2 in between, and the dwell begins as the all-red ends."""
    inter = make_intersection()
    sh = IntersectionShield(inter, fallback_for(inter), shield_config())
    states = drive(sh, 60, lambda t: Decision("X", 1, "test") if t >= 5 else None,
                   emergency=lambda t: LEFT_EV if call_s <= t < 40 else ())
    assert _codes(sh, EventCode.PHASE_BEGIN_YELLOW)[0] == (5.0, 1)
    assert _codes(sh, EventCode.PHASE_END_YELLOW)[0] == (9.0, 1)  # 4 s: never shortened
    assert _codes(sh, EventCode.PHASE_END_RED_CLEARANCE)[0] == (11.0, 1)  # 2 s
    assert greens(sh)[1][:2] == (3, 11.0)  # the next green is the vehicle's
    assert _codes(sh, EventCode.PREEMPT_BEGIN_DWELL) == [(11.0, 1)]
    assert not [t for t, p in _codes(sh, EventCode.PED_BEGIN_WALK) if t < 40]  # no walk before the vehicle passed
    report = audit_shield(sh, states)
    assert report.ok, [str(v) for v in report.violations]


def _overlapping() -> Intersection:
    """Phases 1 and 2 both serve link 0 (an overlap); phase 3, the left, does not."""
    movements = (Movement(0, "n_in_0", "s_out_0"), Movement(1, "s_in_0", "n_out_0"),
                 Movement(2, "e_in_0", "w_out_0"), Movement(3, "e_in_1", "s_out_1"))
    states = ("GGrr", "GrGr", "rrrG")
    phases = tuple(Phase(i, s, tuple(m for m in movements if s[m.link_index] in "Gg")) for i, s in enumerate(states))
    base = make_intersection()
    timing = replace(base.timing, min_green_s=(5.0, 5.0, 5.0), ped_walk_s=0.0, ped_clearance_s=0.0)
    return Intersection("X", phases, 4, movements, (), (), timing, program_green_s=(20.0, 20.0, 8.0))


def test_a_change_that_keeps_a_link_green_the_vehicles_phase_does_not_serve_still_goes_where_it_was_timed_for():
    """Phase 1 -> 2 keeps link 0 green through the change; phase 3 does not serve it. Starting phase 3 at the
    end of that all-red would take link 0 from green to red without a yellow: phase 2 is served (at its minimum)
    and ends with its own yellow and all-red before phase 3."""
    inter = _overlapping()
    sh = IntersectionShield(inter, fallback_for(inter), shield_config())
    ev = [EmergencyApproach("ev1", "e_in_1", 120.0, 3)]
    states = drive(sh, 60, lambda t: Decision("X", 1, "test") if t >= 5 else None,
                   emergency=lambda t: ev if 6 <= t < 40 else ())
    assert [(p, b) for p, b, _ in greens(sh)][:3] == [(1, 0.0), (2, 11.0), (3, 22.0)]  # 11 + 5 min green + 6
    report = audit_shield(sh, states)
    assert report.ok, [str(v) for v in report.violations]


def _raised() -> Intersection:
    """The fixture's intersection with its timing derived as a run derives it (`RunConfig()`'s defaults): the
    crosswalk phase's minimum green is raised to walk + pedestrian clearance."""
    inter = make_intersection()
    timing = retimed(inter, timing_defaults(RunConfig()))
    assert timing.min_green_s[1] >= timing.ped_walk_s + timing.ped_clearance_s > timing.min_green_s[0]
    return replace(inter, timing=timing)


def _entry(ends_walk: bool):
    """Phase 2 (the crosswalk phase) green from 0; the left's vehicle calls 2 s into the walk."""
    inter = _raised()
    sh = IntersectionShield(inter, fallback_for(inter), shield_config(preempt_ends_walk=ends_walk), initial_phase=1)
    states = drive(sh, 80, lambda t: Decision("X", None, "test"), emergency=lambda t: LEFT_EV if 2 <= t < 60 else ())
    return inter, sh, states


def test_a_timeout_with_the_vehicle_still_calling_is_logged_as_max_presence_exceeded():
    """The dwell bound (10 s) runs out with the vehicle still in range: 110 (Indiana's max presence exceeded),
    then the call ends (104) as a served one does; a vehicle that passes in time gets no 110."""
    inter = make_intersection()
    held = IntersectionShield(inter, fallback_for(inter), shield_config(preempt_max_dwell_s=10.0))
    drive(held, 60, emergency=lambda t: LEFT_EV if 6 <= t < 50 else ())
    dwell = _codes(held, EventCode.PREEMPT_BEGIN_DWELL)[0][0]
    assert _codes(held, 110) == [(dwell + 11.0, 1)]  # the first step past the bound
    assert (dwell + 11.0, 1) in _codes(held, EventCode.PREEMPT_CALL_OFF)
    passed = IntersectionShield(inter, fallback_for(inter), shield_config(preempt_max_dwell_s=60.0))
    drive(passed, 60, emergency=lambda t: LEFT_EV if 6 <= t < 30 else ())
    assert _codes(passed, EventCode.PREEMPT_CALL_OFF) == [(30.0, 1)] and not _codes(passed, 110)


def test_preemption_turned_off_ignores_emergency_vehicles():
    inter = make_intersection()
    sh = IntersectionShield(inter, fallback_for(inter), shield_config(preempt=False))
    drive(sh, 60, emergency=lambda t: LEFT_EV if 6 <= t < 50 else ())
    assert not sh.preempt_active and not _codes(sh, EventCode.PREEMPT_CALL_ON)
    assert not [iv for iv in sh.interventions if iv.rule.startswith("preempt")]
