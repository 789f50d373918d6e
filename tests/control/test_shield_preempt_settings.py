"""The run configuration refuses a preemption that cannot work, saying why, and has an explicit off switch."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from signalwise.runtime.config import RunConfig


@pytest.mark.parametrize(("key", "value", "reason"), [
    ("preempt_distance_m", 0.01, "at least 30 m: nearer, an emergency vehicle at 50 km/h is about 2 s from the stop"),
    ("preempt_distance_m", 0, "shield.preempt: false turns preemption off"),
    ("preempt_distance_m", -5, "at least 30 m"),
    ("preempt_max_dwell_s", 0.5, "at least 10 s: less ends the preemption while a vehicle called at 150 m"),
    ("preempt_max_dwell_s", 0, "at least 10 s"),
])
def test_a_preemption_setting_below_its_minimum_is_refused_with_the_reason(key, value, reason):
    with pytest.raises(ValidationError) as err:
        RunConfig(shield={key: value})
    assert reason in str(err.value) and f"{value:g} is too small: at least" in str(err.value)


def test_the_minimums_themselves_and_the_off_switch_are_accepted():
    cfg = RunConfig(shield={"preempt_distance_m": 30, "preempt_max_dwell_s": 10})
    assert (cfg.shield.preempt_distance_m, cfg.shield.preempt_max_dwell_s) == (30.0, 10.0) and cfg.shield.preempt
    assert RunConfig(shield={"preempt": False}).shield.preempt is False
