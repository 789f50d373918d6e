"""A vehicle first seen already speeding is over the threshold for its whole first speed window: the speeding
rule counts its sustained second from the window's start, not from the first speed."""

from __future__ import annotations

import math

from signalwise.vision.speed import SpeedEstimator
from signalwise.vision.violations import SpeedingRule

FPS = 5.0


def _first_violation_s(speed_at, seconds: float = 6.0, window_s: float = 1.5) -> float | None:
    """Feed positions of a vehicle on a straight road (speed_at(t) in m/s) through speed and rule; when it fires."""
    est, rule = SpeedEstimator(window_s), SpeedingRule(13.89, 2.0, 1.0)
    x = 0.0
    for k in range(int(seconds * FPS)):
        t = k / FPS
        if k:
            x += speed_at(t) / FPS
        v = est.add(1, t, x, 0.0)
        if rule.observe(1, t, v, est.over_since(1, rule.threshold_mps)) is not None:
            return t
    return None


def test_a_vehicle_seen_speeding_from_its_first_frame_is_called_with_its_first_speed():
    assert _first_violation_s(lambda t: 20.0) == 1.6  # the window spans 1.5 s at the 9th frame (1.6 s)


def test_the_window_counts_only_where_the_fit_was_over_the_threshold():
    # 12 m/s, then from 2 s on accelerating 4 m/s^2: over 15.89 m/s from about 2.97 s
    t_over = 2.0 + (15.89 - 12.0) / 4.0
    fired = _first_violation_s(lambda t: 12.0 if t < 2.0 else 12.0 + 4.0 * (t - 2.0))
    assert fired is not None and fired >= t_over + 1.0 - 0.25, fired


def test_no_window_no_shortcut():
    est = SpeedEstimator(1.5)
    est.add(7, 0.0, 0.0, 0.0)
    assert est.over_since(7, 10.0) is None and est.over_since(8, 10.0) is None
    assert math.isnan(est.add(7, 0.2, 4.0, 0.0))
