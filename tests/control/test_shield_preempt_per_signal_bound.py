"""Preemption's maximum dwell bounds a signal, not each call: calls that overlap one another (a new vehicle id
every 50 s, each on for 55 s) cannot hold one phase green for ever; after the bound the other phases are served,
each at least its minimum green, before a new call is taken."""

from __future__ import annotations

import dataclasses
import random

import pytest
from shield_fixtures import make_intersection, shield_config
from test_shield import drive, fallback_for

from signalwise.control.shield import IntersectionShield
from signalwise.core import EmergencyApproach, EventCode

MAX_DWELL_S = 60.0


def _rolling_calls(t: float) -> list[EmergencyApproach]:
    """Call k is on during [50 k, 50 k + 55): each new one comes 5 s before the last ends, on the same link."""
    return [EmergencyApproach(f"gw-{k}", "e_in_1", 120.0, 4) for k in range(int(t // 50) + 1)
            if 50 * k <= t < 50 * k + 55]


def _greens(sh, phase: int) -> list[tuple[float, float]]:
    """[begin green, begin yellow) of each green of `phase` (0-based; the log numbers phases from 1), the last
    open to the end."""
    out, start = [], None
    for e in sh.events:
        if e.parameter != phase + 1:
            continue
        if e.event_code == EventCode.PHASE_BEGIN_GREEN:
            start = e.time_s
        elif e.event_code == EventCode.PHASE_BEGIN_YELLOW and start is not None:
            out.append((start, e.time_s))
            start = None
    return out + ([(start, float("inf"))] if start is not None else [])


def test_overlapping_calls_cannot_hold_a_phase_green_beyond_the_signals_maximum_dwell():
    inter = make_intersection()
    sh = IntersectionShield(inter, fallback_for(inter), shield_config(preempt_max_dwell_s=MAX_DWELL_S))
    drive(sh, 1800, emergency=_rolling_calls)
    called = 2  # link 4, the protected left: phase 3
    first_dwell = min(e.time_s for e in sh.events if e.event_code == EventCode.PREEMPT_BEGIN_DWELL)
    timeouts = [e.time_s for e in sh.events if e.event_code == EventCode.PREEMPT_MAX_PRESENCE_EXCEEDED]
    assert timeouts and timeouts[0] == first_dwell + MAX_DWELL_S + 1.0  # the first step past the bound
    # no green of the called phase lasts longer than the bound plus a step (its minimum is 5 s)
    longest = max(b - a for a, b in _greens(sh, called) if b != float("inf"))
    assert longest <= MAX_DWELL_S + 1.0 + 1e-6
    # after each timeout every other phase of the cycle runs at least its minimum green before the next 102
    ons = sorted(e.time_s for e in sh.events if e.event_code == EventCode.PREEMPT_CALL_ON)
    min_green = inter.timing.min_green_s
    for t_out in timeouts:
        next_on = min((t for t in ons if t > t_out), default=float("inf"))
        for p in sh.cycle_phases:
            if p == called:
                continue
            served = [(a, b) for a, b in _greens(sh, p) if t_out <= a and b <= next_on]
            assert served and max(b - a for a, b in served) >= min_green[p] - 1e-6, (t_out, p)
    rules = {iv.rule for iv in sh.interventions}
    assert {"preempt_timeout", "preempt_reservice", "preempt_lockout"} <= rules


def test_a_single_call_dwells_as_before_and_the_next_one_is_taken_after_the_reservice():
    """One vehicle that passes within the bound ends its call with no 110 and no re-service."""
    inter = make_intersection()
    sh = IntersectionShield(inter, fallback_for(inter), shield_config(preempt_max_dwell_s=MAX_DWELL_S))
    drive(sh, 200, emergency=lambda t: [EmergencyApproach("ev1", "e_in_1", 120.0, 4)] if 6 <= t < 40 else [])
    assert not [e for e in sh.events if e.event_code == EventCode.PREEMPT_MAX_PRESENCE_EXCEEDED]
    assert not [iv for iv in sh.interventions if iv.rule in ("preempt_reservice", "preempt_lockout")]


def test_a_changed_entry_minimum_is_the_one_the_next_preemption_uses():
    """A run-time shield change replaces the shield's settings (`shield.cfg = new`): the entry minimum read when
    the next preemption cuts a green is the new one, not the one the shield started with."""
    inter = make_intersection(min_green=(20.0, 20.0, 5.0))
    sh = IntersectionShield(inter, fallback_for(inter), shield_config(preempt_entry_min_green_s=5.0))
    sh.cfg = dataclasses.replace(sh.cfg, preempt_entry_min_green_s=15.0)
    # phase 1 (20 s minimum, no crosswalk) is green from 0; a call for phase 3 comes at t=2
    drive(sh, 40, emergency=lambda t: [EmergencyApproach("ev1", "e_in_1", 120.0, 4)] if t >= 2 else [])
    first_yellow = min(e.time_s for e in sh.events if e.event_code == EventCode.PHASE_BEGIN_YELLOW)
    assert first_yellow == 15.0


def _episodes(sh) -> list[tuple[float, float]]:
    """(first 102, last 104) of each stretch the signal had a call on."""
    on: set[int] = set()
    out: list[list[float]] = []
    for e in sh.events:
        if e.event_code == EventCode.PREEMPT_CALL_OFF:
            on.discard(e.parameter)
            if not on:
                out[-1][1] = e.time_s
        elif e.event_code == EventCode.PREEMPT_CALL_ON:
            if not on:
                out.append([e.time_s, float("inf")])
            on.add(e.parameter)
    return [(a, b) for a, b in out]


@pytest.mark.parametrize("seed", range(6))
def test_calls_that_come_and_go_on_any_approach_never_preempt_a_signal_longer_than_one_entry_and_the_dwell(seed):
    """Vehicles on random links, each in range 1 to 15 s, one every 0 to 6 s: calls overlap, many leave before their
    green. Every preemption lasts at most the entry bound and the maximum dwell (and a step), which is what the
    audit allows a preemption whatever calls it serves."""
    rng = random.Random(seed)
    spans, t = [], 1.0
    while t < 1500:
        spans.append((f"v{len(spans)}", rng.randrange(5), t, t + rng.uniform(1, 15)))
        t += rng.uniform(0, 6)

    def emergency(now):
        return [EmergencyApproach(v, "e_in_1", 100.0, link) for v, link, a, b in spans if a <= now < b]

    inter = make_intersection()
    sh = IntersectionShield(inter, fallback_for(inter), shield_config(preempt_max_dwell_s=20.0))
    drive(sh, 1600, emergency=emergency)
    episodes = _episodes(sh)
    assert len(episodes) > 3
    # the audit's entry allowance here: a change interval (4 s yellow, 2 s all-red, whole steps), the longest
    # minimum green (20 s; the crosswalk phase's 7 s walk + 12 s clearance is shorter) and its change interval,
    # the 3 s pedestrian buffer
    entry_s = 6.0 + 20.0 + 6.0 + 3.0
    bound = entry_s + 20.0 + 1.0
    assert max(b - a for a, b in episodes) <= bound + 1e-6, (max(b - a for a, b in episodes), bound)
