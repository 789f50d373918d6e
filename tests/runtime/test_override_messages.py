"""What the change log says when an operator's override ends: whether its phase was ever green."""

from __future__ import annotations

from types import SimpleNamespace

from signalwise.core import Observation
from signalwise.core.types import SignalStatus
from signalwise.runtime.live.changes import Override


def _seen(override: Override, t: float, phase_index: int, interval: str = "green") -> None:
    override.decide(Observation(t, "J2", {}, signal=SignalStatus(phase_index, interval, 1.0, None, False)))


def test_a_hold_that_ran_out_before_its_phase_came_up_says_so_and_why():
    hold = Override(SimpleNamespace(id="J2"), None, "hold", phase_index=0, until_s=45.0)
    _seen(hold, 44.0, 2)  # phase 3 in force, within its minimum green
    assert hold.ending(44.0) is None
    kind, why = hold.ending(45.0)
    assert kind == "override_expired"
    assert "before phase 1 was green" in why and "minimum green" in why and "completes" in why


def test_a_hold_that_ran_out_after_its_phase_was_green_says_from_when():
    hold = Override(SimpleNamespace(id="J2"), None, "hold", phase_index=1, until_s=140.0)
    _seen(hold, 131.0, 1)  # green for 1 s: it began at 130 s, as the event log has it
    kind, why = hold.ending(140.0)
    assert kind == "override_expired"
    assert why == "its time ran out at t=140 s; phase 2 was green from t=130 s"
