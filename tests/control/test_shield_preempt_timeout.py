"""Preemption: a dwell that runs out with the vehicle still calling is logged as Indiana's 110 (max presence
exceeded), and preemption can be turned off."""

from __future__ import annotations

from shield_fixtures import make_intersection, shield_config
from test_shield import drive, fallback_for

from signalwise.control.shield import IntersectionShield
from signalwise.core import EmergencyApproach, EventCode

LEFT_EV = [EmergencyApproach("ev1", "e_in_1", 120.0, 4)]  # link 4: the protected left, phase 3


def _codes(sh, code):
    return [(e.time_s, e.parameter) for e in sh.events if e.event_code == code]


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
