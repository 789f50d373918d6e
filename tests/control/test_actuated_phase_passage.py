"""The actuated controller's passage per signal and phase (`controller_options.passage_s` as a mapping), as a
timing sheet gives it: each phase's green is extended by its own passage, and a phase or a form the option
cannot mean is refused by name. Phases are numbered as the event log numbers them (1 for the first)."""

from __future__ import annotations

import pytest
from test_actuated import inter_with_detectors, obs

from signalwise.control import ControlContext, make
from signalwise.control.base import ControllerUnavailable
from signalwise.runtime.config import RunConfig


def _actuated(passage):
    return make("actuated", inter_with_detectors(), ControlContext(options={"passage_s": passage}))


def test_each_phase_is_extended_by_its_own_passage():
    inter = inter_with_detectors()
    ctl = _actuated({"default": 2.0, inter.id: {1: 5.0, "3": 1.0}})
    assert ctl.phase_passage_s == (5.0, 2.0, 1.0) and ctl.passage_s is None
    waiting = {"e_in_0": 5, "n_in_0": 5}  # phases 1 and 2 (indexes 0 and 1) have a call all along
    # phase 1 (index 0): a vehicle 4.5 s ago still extends its 5 s passage, 5 s ago no longer
    assert ctl.decide(obs(0, idle={"n_in_0": 4.5}, queues=waiting)).holds
    assert ctl.decide(obs(0, idle={"n_in_0": 5.0}, queues=waiting)).phase_index == 1
    # phase 2 (index 1) takes the default 2 s: 1.9 s extends, 2.0 s gaps out
    assert ctl.decide(obs(1, idle={"e_in_0": 1.9}, queues=waiting)).holds
    assert ctl.decide(obs(1, idle={"e_in_0": 2.0}, queues=waiting)).phase_index == 0


def test_a_signal_not_named_takes_the_default_and_a_number_is_every_phase_of_a_signal():
    assert _actuated({"default": 4.0, "elsewhere": {1: 9.0}}).phase_passage_s == (4.0, 4.0, 4.0)
    assert _actuated({inter_with_detectors().id: 2.5}).phase_passage_s == (2.5, 2.5, 2.5)
    assert _actuated({"elsewhere": 2.5}).phase_passage_s == (3.0, 3.0, 3.0)  # no default: 3 s
    assert _actuated(2.5).passage_s == 2.5


def test_a_phase_the_signal_does_not_have_is_refused_with_its_phases():
    inter = inter_with_detectors()
    with pytest.raises(ControllerUnavailable, match=rf"passage_s\.{inter.id} names phase 4, which signal "
                                                    rf"'{inter.id}' does not have: it has phases 1\.\.3"):
        _actuated({inter.id: {4: 2.0}})


@pytest.mark.parametrize(("passage", "said"), [
    ({"J1": {0: 2.0}}, "passage_s.J1: 0 is not a phase number"),
    ({"J1": {"left": 2.0}}, "passage_s.J1: 'left' is not a phase number"),
    ({"J1": {1: 30.0}}, "passage_s.J1.1 30 s is outside 0-25.5 s"),
    ({"J1": {1: -1}}, "passage_s.J1.1 -1 s is outside 0-25.5 s"),
    ({"default": {1: 2.0}}, "passage_s.default is every other signal's passage: seconds, not a mapping"),
    ({"J1": "fast"}, "passage_s.J1 'fast' is not a number of seconds"),
    (True, "passage_s True is not a number of seconds"),
])
def test_a_run_configuration_refuses_a_passage_it_cannot_mean(passage, said):
    with pytest.raises(ValueError, match=said.replace(".", r"\.").replace("(", r"\(")):
        RunConfig(controller="actuated", controller_options={"passage_s": passage})
