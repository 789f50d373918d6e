"""Observation health on a real SUMO run: a source that goes silent, then sends garbage, then recovers.

The shield must fall back to its Webster plan exactly while the data cannot
be trusted (stale for longer than `max_observation_age_s`, or implausible),
resume the controller when they recover, and the independent audit must
find nothing in the event log.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from signalwise.analytics.safety_audit import audit
from signalwise.core import EventCode, LaneState, Observation, SourceHealth
from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import (
    LoopStepper,
    describe_intersections,
    open_field,
    resolve_scenario,
    sumo_options,
)

SILENT = (300.0, 420.0)  # the source sends nothing new
GARBAGE = (600.0, 700.0)  # the source sends values that cannot be true
END_S = 900.0
MAX_AGE_S = 10.0


class FaultySource:
    """Wraps a source: silent, then garbage, then healthy again, on a fixed schedule.

    While silent it repeats each intersection's last observation with its true
    age, as a feed's last message would be; while sending garbage it reports a
    negative queue and a NaN occupancy on every lane it measures.
    """

    def __init__(self, inner):
        self.inner = inner
        self.last: dict[str, Observation] = {}
        self.calls = {"silent": 0, "garbage": 0, "healthy": 0}

    @property
    def emergency_active(self) -> bool:
        return self.inner.emergency_active

    def emergency_approaches(self, intersections, within_m):
        return self.inner.emergency_approaches(intersections, within_m)

    def observe(self, inter, time_s, need):
        if SILENT[0] <= time_s < SILENT[1] and inter.id in self.last:
            self.calls["silent"] += 1
            old = self.last[inter.id]
            return dataclasses.replace(old, time_s=time_s, sources=tuple(
                dataclasses.replace(s, age_s=time_s - old.time_s) for s in old.sources))
        obs = self.inner.observe(inter, time_s, need)
        if GARBAGE[0] <= time_s < GARBAGE[1]:
            self.calls["garbage"] += 1
            return dataclasses.replace(obs, lanes={lane: LaneState(-3, 2, math.nan, 5.0, 0.0) for lane in obs.lanes})
        self.calls["healthy"] += 1
        self.last[inter.id] = obs
        return obs


@pytest.fixture(scope="module")
def faulty_run():
    cfg = RunConfig(scenario="single", controller="max-pressure", seed=1, duration_s=END_S, emissions=False,
                    shield={"max_observation_age_s": MAX_AGE_S})
    scenario = resolve_scenario(cfg)
    fld = open_field(cfg, scenario, sumo_options(cfg, scenario, end_s=scenario.begin_s + END_S))
    try:
        source = FaultySource(fld.backend)
        stepper = LoopStepper(cfg, fld, scenario.begin_s + END_S, source=source)
        while not stepper.done:
            stepper.step()
    finally:
        fld.backend.close()
    return cfg, stepper, source


def _windows(interventions, tls):
    """(start, end) of each fallback stretch of one intersection, from its interventions."""
    out, start = [], None
    for iv in interventions:
        if iv.intersection_id != tls:
            continue
        if iv.rule == "fallback":
            start = iv.time_s
        elif iv.rule == "fallback_end":
            out.append((start, iv.time_s))
            start = None
    if start is not None:
        out.append((start, math.inf))
    return out


def test_fallback_serves_exactly_while_the_data_are_stale_or_garbage(faulty_run):
    cfg, stepper, source = faulty_run
    assert all(n > 0 for n in source.calls.values()), source.calls
    (tls, shield), = stepper.shields.items()
    interventions = [iv for sh in stepper.shields.values() for iv in sh.interventions]
    windows = _windows(interventions, tls)
    # a decision comes every 5 s of green; a clearance (yellow + all-red) can delay it
    lag = stepper.controllers[tls].period_s + shield.inter.timing.clearance_s() + cfg.step_length_s
    assert len(windows) == 2, windows
    (s1, e1), (s2, e2) = windows
    # the last fresh data came at most one decision period before the silence began
    period = stepper.controllers[tls].period_s
    assert SILENT[0] - period + MAX_AGE_S < s1 <= SILENT[0] + MAX_AGE_S + lag
    assert SILENT[1] <= e1 <= SILENT[1] + lag
    assert GARBAGE[0] <= s2 <= GARBAGE[0] + lag
    assert GARBAGE[1] <= e2 <= GARBAGE[1] + lag
    reasons = [iv.detail for iv in interventions if iv.rule == "fallback"]
    assert "lanes stale" in reasons[0] and "lanes unhealthy" in reasons[1], reasons
    assert "occupancy is nan" in reasons[1] or "out of range" in reasons[1], reasons


def test_the_fallback_plan_is_what_the_signal_shows_during_the_outage(faulty_run):
    _cfg, stepper, _source = faulty_run
    (tls, shield), = stepper.shields.items()
    plan_green_s = shield.fallback.green_s
    windows = _windows(shield.interventions, tls)
    greens, begun = [], {}
    for e in shield.events:
        if e.event_code == EventCode.PHASE_BEGIN_GREEN:
            begun[e.parameter] = e.time_s
        elif e.event_code == EventCode.PHASE_BEGIN_YELLOW and e.parameter in begun:
            greens.append((e.parameter, begun.pop(e.parameter), e.time_s))
    inside = [(p, b, y) for p, b, y in greens if any(s <= b and y <= e for s, e in windows)]
    assert len(inside) >= 6
    forced = {iv.time_s for iv in shield.interventions if iv.rule in ("cycle_max", "max_green")}
    for phase_number, begin, yellow in inside:
        planned = max(plan_green_s[phase_number - 1], shield.inter.timing.min_green_s[phase_number - 1])
        assert math.isclose(yellow - begin, math.ceil(planned), abs_tol=1.0), (phase_number, begin, yellow)
    # in the plan's order, except where the shield's cycle bound sent another phase first (and says so)
    for s, e in windows:
        served = [(p, y) for p, b, y in inside if s <= b and y <= e]
        for (p, y), (q, _) in zip(served, served[1:], strict=False):
            assert q == p % len(shield.inter.phases) + 1 or y in forced, served
    # outside the outage the controller, not the plan, decides: some green differs from the plan
    outside = [(p, b, y) for p, b, y in greens if all(y <= s or b >= e for s, e in windows)]
    assert any(not math.isclose(y - b, math.ceil(plan_green_s[p - 1]), abs_tol=1.0) for p, b, y in outside)


def test_the_independent_audit_finds_nothing(faulty_run):
    cfg, stepper, _source = faulty_run
    report = audit(stepper.events(), describe_intersections(stepper.intersections), stepper.signal_states,
                   cfg.step_length_s, end_s=stepper.t)
    assert report.ok, report.violations[:3]
    assert sum(report.checked.values()) > 100


def test_garbage_is_unhealthy_whatever_the_source():
    from signalwise.runtime.loop import checked

    good = Observation(1.0, "C", {"a": LaneState(2, 3, 0.2, 4.0, 10.0)}, sources=(SourceHealth("lanes"),))
    assert checked(good) is good
    for bad in (LaneState(-1, 3, 0.2, 4.0, 0.0), LaneState(4, 3, 0.2, 4.0, 0.0), LaneState(1, 3, 1.7, 4.0, 0.0),
                LaneState(1, 3, math.inf, 4.0, 0.0), LaneState(1, 3, 0.2, -2.0, 0.0)):
        obs = checked(dataclasses.replace(good, lanes={"a": bad}))
        assert not obs.healthy and obs.data_fault(10.0).startswith("lanes unhealthy: lane a"), bad
    dets = checked(dataclasses.replace(good, detector_idle_s={"d1": math.nan}))
    assert dets.data_fault(10.0).startswith("detectors unhealthy: detector d1")
