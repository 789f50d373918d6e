"""An operator's retime on a real signal (the corridor's J1, read from its SUMO network): taken at a green within a
bounded wait, even when its longer greens need the raised cycle bound that came with them, and run from there; a
retime that can never fit says so; one given before the first tick is the timing the signal starts on."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import replace

import pytest
from shield_fixtures import shield_config
from test_shield import drive

from signalwise.analytics.safety_audit import audit
from signalwise.control.fixed import PlanFollower
from signalwise.control.shield import IntersectionShield
from signalwise.core import Decision, EventCode
from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import (
    describe_intersections,
    open_field,
    resolve_scenario,
    sumo_options,
    timing_defaults,
)
from signalwise.sim.signal_model import retimed

#: the operator's change in the trial: four phases of 30 s green, 3.3 s yellow (4 s shown at 1 s steps), 5 s all-red
OPERATORS = {"all_red_s": 5, "min_green_s": 30}


@pytest.fixture(scope="module")
def j1():
    """J1 as the live runtime reads it, and the timing the operator's change gives it (as `_retime_shields` does)."""
    cfg = RunConfig(scenario="corridor", controller="fixed")
    scenario = resolve_scenario(cfg)
    fld = open_field(cfg, scenario, sumo_options(cfg, scenario, end_s=10))
    try:
        inter = next(i for i in fld.intersections if i.id == "J1")
    finally:
        fld.backend.close()
    new = retimed(inter, timing_defaults(cfg), OPERATORS)
    # the case of the trial: the new greens need more than the old bound, so the derivation raised it to fit
    assert len(inter.phases) == 4 and new.cycle_max_s == 156.0 > inter.timing.cycle_max_s == 150.0
    return inter, new


def _shield(inter) -> IntersectionShield:
    return IntersectionShield(inter, PlanFollower(inter, list(inter.program_green_s), "test-fallback"), shield_config())


def _intervals(sh, begin: EventCode, end: EventCode, after_s: float) -> list[float]:
    """Lengths of the intervals opened by `begin` and closed by `end` (per phase) that began at or after `after_s`."""
    out, opened = [], {}
    for e in sh.events:
        if e.event_code == begin:
            opened[e.parameter] = e.time_s
        elif e.event_code == end and e.parameter in opened:
            began = opened.pop(e.parameter)
            if began >= after_s:
                out.append(e.time_s - began)
    return out


def _audit(sh, inter, new, states):
    model = describe_intersections([inter], step_s=1.0)
    model[0]["timing_revisions"] = [dataclasses.asdict(new)]
    return audit(sh.events, model, states, 1.0)


@pytest.mark.parametrize("controller", ["phase 1 only", "any phase"])
@pytest.mark.parametrize("retime_at_s", [5, 23, 64, 117])
def test_the_operators_longer_greens_and_all_red_are_taken_within_a_cycle_and_run_from_then(j1, controller,
                                                                                             retime_at_s):
    """Planned against the old 150 s bound, the new 156 s cycle never fitted: J1 ran the old timing for the whole
    trial (no 131 in 900 s). Planned against the bound the change raised, it is taken at a green within a cycle,
    and every green and all-red after it runs the new 30 s and 5 s; the audit holds it to the revision."""
    inter, new = j1
    sh = _shield(inter)
    rng = random.Random(retime_at_s)

    def proposals(t):
        if t == retime_at_s:
            sh.retime(new, 1)
        return Decision("J1", 0 if controller == "phase 1 only" else rng.randrange(4), "test")

    states = drive(sh, retime_at_s + 600, proposals)
    taken = [(e.time_s, e.parameter) for e in sh.events if e.event_code == EventCode.TIMING_PLAN_CHANGE]
    assert len(taken) == 1 and taken[0][1] == 1 and retime_at_s <= taken[0][0] <= retime_at_s + new.cycle_max_s
    at_s = taken[0][0]
    greens = _intervals(sh, EventCode.PHASE_BEGIN_GREEN, EventCode.PHASE_BEGIN_YELLOW, at_s)
    all_reds = _intervals(sh, EventCode.PHASE_BEGIN_RED_CLEARANCE, EventCode.PHASE_END_RED_CLEARANCE, at_s)
    assert len(greens) >= 10 and min(greens) >= 30.0 and len(all_reds) >= 10 and min(all_reds) >= 5.0
    report = _audit(sh, inter, new, states)
    assert report.ok and report.checked["cycle_max"] > 10, [str(v) for v in report.violations[:3]]


def test_a_retime_that_can_never_fit_is_not_taken_and_the_shield_says_so_after_a_cycle(j1):
    """Four 40 s greens cannot keep a 150 s bound: no green may take it, and once it has been passed over for more
    than a cycle the shield logs `retime_waiting`, once, naming the revision and the one the signal still runs."""
    inter, _ = j1
    impossible = replace(inter.timing, min_green_s=(40.0,) * 4)
    sh = _shield(inter)

    def proposals(t):
        if t == 10:
            sh.retime(impossible, 3)
        return Decision("J1", 0, "test")

    drive(sh, 600, proposals)
    assert not [e for e in sh.events if e.event_code == EventCode.TIMING_PLAN_CHANGE]
    assert sh.timing_revision == 0 and sh.pending_revision == 3
    waiting = [iv for iv in sh.interventions if iv.rule == "retime_waiting"]
    assert len(waiting) == 1 and "timing revision 3 not taken" in waiting[0].detail
    assert "runs revision 0" in waiting[0].detail
    first_passed_s = min(e.time_s for e in sh.events if e.event_code == EventCode.PHASE_BEGIN_GREEN and e.time_s > 10)
    assert waiting[0].time_s - first_passed_s > 150.0


def test_a_retime_given_before_the_first_tick_is_the_timing_the_signal_starts_on(j1):
    """A fresh signal has no green in progress to finish: its first green and the clearance that ends it run the
    new timing, logged as a 131 before its first 1 at the start, so the audit holds that green to it."""
    inter, new = j1
    sh = _shield(inter)
    sh.retime(new, 1)
    assert sh.start_on_pending()
    assert [(e.time_s, e.event_code, e.parameter) for e in sh.events] == [
        (0.0, EventCode.TIMING_PLAN_CHANGE, 1), (0.0, EventCode.PHASE_BEGIN_GREEN, 1)]
    assert sh.timing_revision == 1 and sh.pending_revision is None and not sh.start_on_pending()
    states = drive(sh, 400, lambda t: Decision("J1", 1, "test"))  # wants phase 2 from the start
    greens = _intervals(sh, EventCode.PHASE_BEGIN_GREEN, EventCode.PHASE_BEGIN_YELLOW, 0.0)
    all_reds = _intervals(sh, EventCode.PHASE_BEGIN_RED_CLEARANCE, EventCode.PHASE_END_RED_CLEARANCE, 0.0)
    assert greens[0] == 30.0 and all_reds[0] == 5.0 and min(greens) >= 30.0 and min(all_reds) >= 5.0
    assert _audit(sh, inter, new, states).ok


def test_a_timing_is_started_on_only_before_the_first_tick(j1):
    """After a tick the green has run under the timing in force: the retime waits for a green, as any does."""
    inter, new = j1
    sh = _shield(inter)
    sh.tick(1.0)
    sh.retime(new, 1)
    with pytest.raises(RuntimeError, match="only before the first tick"):
        sh.start_on_pending()
