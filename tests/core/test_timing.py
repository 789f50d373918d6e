from __future__ import annotations

import pytest

from signalwise.core import ite_all_red_s, ite_yellow_s, ped_clearance_s, webster_plan


def test_ite_yellow_grows_with_speed_and_is_clamped():
    assert ite_yellow_s(13.9) == pytest.approx(1 + 13.9 / 6.1, abs=0.1)  # 50 km/h -> 3.3 s
    assert ite_yellow_s(5.0) == 3.0
    assert ite_yellow_s(40.0) == 6.0
    assert ite_yellow_s(13.9, grade=-0.05) > ite_yellow_s(13.9)  # downhill needs longer


def test_all_red_and_pedestrian_clearance():
    assert ite_all_red_s(20.0, 13.9) == pytest.approx((20 + 6.1) / 13.9, abs=0.05)
    assert ped_clearance_s(16.5) == 15.0


def test_webster_cycle_and_splits():
    plan = webster_plan([0.3, 0.2], lost_time_per_phase_s=5.0, cycle_min_s=30, cycle_max_s=150)
    assert plan.cycle_s == pytest.approx((1.5 * 10 + 5) / (1 - 0.5), abs=0.2)  # 40 s
    assert plan.green_s[0] / plan.green_s[1] == pytest.approx(1.5, rel=0.01)
    assert not plan.oversaturated


def test_webster_oversaturation_is_capped_and_reported():
    plan = webster_plan([0.5, 0.45], lost_time_per_phase_s=6.0, cycle_min_s=40, cycle_max_s=150)
    assert plan.oversaturated and plan.cycle_s == 150.0 and plan.flow_ratio_sum == pytest.approx(0.95)
    low = webster_plan([0.01, 0.01], lost_time_per_phase_s=4.0, cycle_min_s=40, cycle_max_s=150)
    assert low.cycle_s >= 40.0


def test_webster_respects_min_and_max_green():
    plan = webster_plan([0.6, 0.01], 5.0, 40, 120, min_green_s=[5, 12], max_green_s=[60, 60])
    assert plan.green_s[1] >= 12 and plan.green_s[0] <= 60
