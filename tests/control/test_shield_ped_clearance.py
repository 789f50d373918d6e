"""The shield times each phase's pedestrian clearance (`Timing.ped_clearance_of`), not the signal's longest: a phase
over a short crosswalk ends its flashing don't walk, and its green, when that crosswalk is clear."""

from __future__ import annotations

import dataclasses

import pytest
from shield_fixtures import shield_config

from signalwise.analytics.safety_audit import audit
from signalwise.control.fixed import PlanFollower
from signalwise.control.shield import IntersectionShield
from signalwise.core import Crosswalk, Decision, EventCode, Intersection, Movement, Phase, Timing
from signalwise.runtime.loop import describe_intersections

WALK_S = 7.0
#: per phase: north-south with the 19.2 m crosswalk across the east leg (17.5 s at 1.1 m/s), east-west with the
#: 6.4 m one across the north leg (5.9 s), a protected left with none
PED_CLEAR_S = (17.5, 5.9, 0.0)


def two_crosswalks() -> Intersection:
    """Links: 0 N->S, 1 S->N, 2 E->W, 3 W->E, 4 E->S left, 5 crosswalk across the north leg (6.4 m), 6 across
    the east leg (19.2 m). Minimum greens as the signal model derives them: walk + each phase's own clearance."""
    movements = (Movement(0, "n_in_0", "s_out_0"), Movement(1, "s_in_0", "n_out_0"),
                 Movement(2, "e_in_0", "w_out_0"), Movement(3, "w_in_0", "e_out_0"),
                 Movement(4, "e_in_1", "s_out_1"), Movement(5, ":x_w0_0", ":x_c0_0", True),
                 Movement(6, ":x_w1_0", ":x_c1_0", True))
    states = ("GGrrrrG", "rrGGrGr", "rrrrGrr")
    phases = tuple(Phase(i, s, tuple(m for m in movements if s[m.link_index] in "Gg")) for i, s in enumerate(states))
    timing = Timing(3.5, 2.0, (25.0, 13.0, 5.0), (40.0, 40.0, 30.0), WALK_S, max(PED_CLEAR_S), 40.0, 120.0,
                    phase_ped_clearance_s=PED_CLEAR_S)
    return Intersection("X", phases, 7, movements, (), (Crosswalk(":x_c0", (5,), 6.4), Crosswalk(":x_c1", (6,), 19.2)),
                        timing)


def _intervals_s(events, begin: int, end: int) -> dict[int, list[float]]:
    opened: dict[int, float] = {}
    out: dict[int, list[float]] = {}
    for e in events:
        if e.event_code == begin:
            opened[e.parameter] = e.time_s
        elif e.event_code == end and e.parameter in opened:
            out.setdefault(e.parameter, []).append(e.time_s - opened.pop(e.parameter))
    return out


def test_each_phase_flashes_dont_walk_for_its_own_crosswalk_and_may_end_after_it():
    inter = two_crosswalks()
    sh = IntersectionShield(inter, PlanFollower(inter, [25.0, 13.0, 5.0], "test-fallback"), shield_config())
    states, t = [(0.0, "X", sh.state)], 0.0
    while t < 300:
        t += 1.0
        sh.propose(Decision("X", (sh.phase + 1) % 3, "test"))  # always the next phase: every green at its shortest
        new = sh.tick(t, None)
        if new is not None:
            states.append((t, "X", new))
    fdw = _intervals_s(sh.events, EventCode.PED_BEGIN_CLEARANCE, EventCode.PED_BEGIN_DONT_WALK)
    assert {n: set(v) for n, v in fdw.items()} == {1: {18.0}, 2: {6.0}}  # 17.5 and 5.9 s at 1 s steps
    green = _intervals_s(sh.events, EventCode.PHASE_BEGIN_GREEN, EventCode.PHASE_BEGIN_YELLOW)
    assert {n: set(v) for n, v in green.items()} == {1: {25.0}, 2: {13.0}, 3: {5.0}}
    assert sh._shortest_green(inter.timing) == [25.0, 13.0, 5.0]  # the cycle bound plans with each phase's own
    report = audit(sh.events, describe_intersections([inter], step_s=1.0), states, 1.0)
    assert report.ok and report.checked["ped"] > 0, report.violations


@pytest.mark.parametrize(("now_s", "ped_events"), [
    (10.0, [(0.0, 21), (7.0, 22)]),  # in phase 2's 5.9 s clearance (the signal's longest would run to 24.5 s)
    (14.0, [(0.0, 21), (7.0, 22), (12.9, 23)]),  # past it
])
def test_a_green_taken_up_places_its_clearance_by_the_phases_own(now_s, ped_events):
    inter = two_crosswalks()
    sh = IntersectionShield(inter, PlanFollower(inter, [25.0, 13.0, 5.0], "test-fallback"), shield_config())
    sh.seed_green(1, 0.0, now_s)
    assert [(round(e.time_s, 6), e.event_code) for e in sh.opening_events() if e.event_code in (21, 22, 23)] == \
        ped_events


def test_a_retime_with_a_clearance_for_another_number_of_phases_is_refused():
    inter = two_crosswalks()
    sh = IntersectionShield(inter, PlanFollower(inter, [25.0, 13.0, 5.0], "test-fallback"), shield_config())
    with pytest.raises(ValueError, match="timing for 3 phases"):
        sh.retime(dataclasses.replace(inter.timing, phase_ped_clearance_s=(17.5, 5.9)))
