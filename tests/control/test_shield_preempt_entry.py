"""Preemption entry and calls in the shield, on the synthetic intersection: the entry minimum, no walk begun
after a call, `preempt_ends_walk` gaining what it should, each call logged on its own channel when it comes, a
timed-out vehicle calling again once it has dropped out of range, and 110 before 104 in events.csv. Each graded
by the independent audit."""

from __future__ import annotations

import pytest
from shield_fixtures import make_intersection, shield_config
from test_shield import audit_shield, drive, fallback_for, greens

from signalwise.analytics.atspm.cycles import preemption
from signalwise.analytics.atspm.inputs import read_event_log
from signalwise.analytics.safety_audit import PreemptionEvidence, audit
from signalwise.control.shield import IntersectionShield
from signalwise.core import Decision, EmergencyApproach, EventCode
from signalwise.core.eventlog import read_events, write_events
from signalwise.runtime.loop import describe_intersections

N_EV = EmergencyApproach("ev_n", "n_in_0", 100.0, 0)  # link 0: phase 1
LEFT_EV = EmergencyApproach("ev_left", "e_in_1", 120.0, 4)  # link 4: the protected left, phase 3


def codes(sh, *wanted):
    return [(e.time_s, e.event_code, e.parameter) for e in sh.events if e.event_code in wanted]


def _first(sh, code, after=-1.0, param=None):
    return next(e.time_s for e in sh.events
                if e.event_code == code and e.time_s > after and (param is None or e.parameter == param))


@pytest.mark.parametrize("entry_min_s", [5.0, 8.0])
def test_a_green_that_begins_during_entry_shows_no_walk_and_ends_at_the_entry_minimum(entry_min_s):
    """Called 1 s into phase 1's yellow (toward phase 2, a crosswalk phase with a 20 s minimum): phase 2's green
    shows no walk (no 21, its crosswalk stays red) and ends at the entry minimum, then its yellow and all-red in
    full; the vehicle's green (107) comes 20 - entry s sooner than the 20 s minimum would allow."""
    inter = make_intersection()
    sh = IntersectionShield(inter, fallback_for(inter), shield_config(preempt_entry_min_green_s=entry_min_s))
    called = {}

    def emergency(t):
        if "at" not in called and any(e.event_code == EventCode.PHASE_BEGIN_YELLOW for e in sh.events):
            called["at"] = t
        return [N_EV] if "at" in called and t < called["at"] + 60 else ()

    states = drive(sh, 120, lambda t: Decision("X", 1, "test") if t >= 5 else None, emergency=emergency)
    call = called["at"]
    (p2,) = [(b, e) for p, b, e in greens(sh) if p == 2 and b < call + 10]
    assert p2[1] - p2[0] == entry_min_s
    assert not [e for e in sh.events if e.event_code == EventCode.PED_BEGIN_WALK and p2[0] <= e.time_s < p2[1]]
    assert all(s[5] == "r" for t, _, s in states if p2[0] <= t < p2[1])  # the crosswalk link stays red
    yellow, all_red = _first(sh, EventCode.PHASE_BEGIN_YELLOW, p2[0]), _first(sh, EventCode.PHASE_BEGIN_RED_CLEARANCE, p2[0])
    dwell = _first(sh, EventCode.PREEMPT_BEGIN_DWELL)
    assert (yellow, all_red - yellow, dwell - all_red) == (p2[1], 4.0, 2.0)  # 3.5 s yellow, 2 s all-red: whole steps
    assert dwell == p2[0] + entry_min_s + 6.0
    model = describe_intersections([inter])
    report = audit(sh.events, model, states, 1.0, preemption=PreemptionEvidence(entry_min_green_s=entry_min_s))
    assert report.ok, [str(v) for v in report.violations]
    strict = audit(sh.events, model, states, 1.0, preemption=PreemptionEvidence(entry_min_green_s=entry_min_s + 1))
    assert [v.rule for v in strict.violations] == ["min_green"]  # the audit holds it to the configured minimum


def test_a_walk_that_comes_back_once_the_call_ends_during_entry():
    """The call ends while phase 2's walkless entry green still shows: its pedestrians get their walk then (and
    its clearance), rather than losing it."""
    inter = make_intersection()
    sh = IntersectionShield(inter, fallback_for(inter), shield_config())
    called = {}

    def emergency(t):
        if "at" not in called and any(e.event_code == EventCode.PHASE_BEGIN_YELLOW for e in sh.events):
            called["at"] = t
        return [N_EV] if "at" in called and t < called["at"] + 7 else ()

    states = drive(sh, 120, lambda t: Decision("X", 1, "test") if t >= 5 else None, emergency=emergency)
    p2_start = next(b for p, b, _ in greens(sh) if p == 2)
    off = _first(sh, EventCode.PREEMPT_CALL_OFF)
    assert p2_start < off and _first(sh, EventCode.PED_BEGIN_WALK, p2_start - 1, param=2) == off
    assert audit_shield(sh, states).ok


@pytest.mark.parametrize("ends_walk", [False, True])
def test_preempt_ends_walk_shortens_entry_by_the_rest_of_the_walk(ends_walk):
    """Called 2 s into phase 2's 7 s walk (its minimum green 25 s > walk + clearance): with `preempt_ends_walk`
    the walk ends at the call, its 12 s clearance runs in full and the yellow follows at once (the 25 s minimum
    does not add the walk back); without, the walk and clearance run in full, then the yellow (the entry minimum
    is passed by then too). Never a 0-s walk logged (21 and 22 at one instant)."""
    inter = make_intersection(min_green=(5.0, 25.0, 5.0))
    sh = IntersectionShield(inter, fallback_for(inter), shield_config(preempt_ends_walk=ends_walk))
    called = {}

    def emergency(t):
        walk = next((e.time_s for e in sh.events if e.event_code == EventCode.PED_BEGIN_WALK), None)
        if walk is not None and t >= walk + 2 and "at" not in called:
            called["at"] = t
        return [N_EV] if "at" in called and t < called["at"] + 60 else ()

    states = drive(sh, 150, lambda t: Decision("X", 1, "test"), emergency=emergency)
    walk = _first(sh, EventCode.PED_BEGIN_WALK)
    clearance = _first(sh, EventCode.PED_BEGIN_CLEARANCE)
    dont_walk = _first(sh, EventCode.PED_BEGIN_DONT_WALK)
    yellow = _first(sh, EventCode.PHASE_BEGIN_YELLOW, walk)
    assert clearance - walk == (2.0 if ends_walk else 7.0) and dont_walk - clearance == 12.0
    assert yellow == dont_walk  # not held to the 25 s minimum from the green's start (walk + 25)
    assert yellow - walk == (14.0 if ends_walk else 19.0)
    walks = [e.time_s for e in sh.events if e.event_code == EventCode.PED_BEGIN_WALK]
    assert not set(walks) & {e.time_s for e in sh.events if e.event_code == EventCode.PED_BEGIN_CLEARANCE}
    report = audit(sh.events, describe_intersections([inter]), states, 1.0, preemption=PreemptionEvidence(
        entry_min_green_s=5.0))
    assert report.ok, [str(v) for v in report.violations]


def test_each_call_is_logged_when_it_comes_on_its_own_channel_and_served_in_turn(tmp_path):
    """Two vehicles on two approaches (phase 1, then the protected left of phase 3, 3 s later): a 102 each at its
    own time, on channels 1 and 2; the second is queued (an intervention says so) and its entry starts (105) when
    the first call ends. ATSPM's time to service of the second counts from its own 102."""
    inter = make_intersection()
    sh = IntersectionShield(inter, fallback_for(inter), shield_config())

    def emergency(t):
        return [e for e, (a, b) in ((N_EV, (10, 40)), (LEFT_EV, (13, 70))) if a <= t < b]

    states = drive(sh, 120, lambda t: Decision("X", None, "test"), emergency=emergency)
    calls = codes(sh, 102, 104, 105, 107)
    assert (10.0, 102, 1) in calls and (13.0, 102, 2) in calls
    assert (40.0, 104, 1) in calls and (40.0, 105, 2) in calls
    served_2 = next(t for t, c, ch in calls if c == 107 and ch == 2)
    assert served_2 > 40.0
    queued = [iv.detail for iv in sh.interventions if iv.rule == "preempt_queued"]
    assert queued == ["ev_left (channel 2) waits for the preemption for ev_n (channel 1)"]
    assert [iv.detail.split()[0] for iv in sh.interventions if iv.rule == "preempt_call"] == ["ev_n", "ev_left"]
    assert audit_shield(sh, states).ok
    write_events(tmp_path / "events.csv", sh.events)
    table = preemption(read_event_log(tmp_path / "events.csv"))
    second = table[table["Channel"] == 2].iloc[0]
    assert second["TimeToService_s"] == served_2 - 13.0


def test_a_vehicle_timed_out_calls_again_once_it_has_dropped_out_of_range():
    """A vehicle standing inside the distance times out (110, 104); while it stays in range it does not call again,
    and once it has left the distance and comes back (a second approach to the signal) it calls again."""
    inter = make_intersection()
    sh = IntersectionShield(inter, fallback_for(inter), shield_config(preempt_max_dwell_s=10.0))
    drive(sh, 150, emergency=lambda t: [LEFT_EV] if 6 <= t < 60 or 80 <= t < 88 else ())
    on = [t for t, _, _ in codes(sh, 102)]
    timeouts = [t for t, _, _ in codes(sh, 110)]
    assert on == [6.0, 80.0] and len(timeouts) == 1 and timeouts[0] < 60
    assert [iv.rule for iv in sh.interventions if iv.rule == "preempt_timeout"] == ["preempt_timeout"]


def test_max_presence_is_written_before_the_call_off_it_ends(tmp_path):
    """At one instant the shield logs 110 then 104; events.csv keeps that order (sorted by code it was 104, 110),
    the rest of the instant still by code."""
    inter = make_intersection()
    sh = IntersectionShield(inter, fallback_for(inter), shield_config(preempt_max_dwell_s=10.0))
    drive(sh, 60, emergency=lambda t: [LEFT_EV] if 6 <= t < 50 else ())
    (timeout,) = [t for t, _, _ in codes(sh, 110)]
    write_events(tmp_path / "events.csv", sh.events)
    at = [e.event_code for e in read_events(tmp_path / "events.csv") if e.time_s == timeout]
    assert at.index(110) < at.index(104)
    assert at == sorted(at, key=lambda c: 103.5 if c == 110 else c)
