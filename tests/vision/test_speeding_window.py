"""A vehicle first seen already speeding is over the threshold for its whole first speed window: the speeding
rule counts its sustained second from the window's start, not from the first speed. One that comes into view over
the threshold and brakes within the window is over at the window's start and on average through it."""

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
        if rule.observe_speed(est, 1, t, v) is not None:
            return t
    return None


def test_a_vehicle_seen_speeding_from_its_first_frame_is_called_with_its_first_speed():
    assert _first_violation_s(lambda t: 20.0) == 1.6  # the window spans 1.5 s at the 9th frame (1.6 s)


def test_the_window_counts_only_where_the_fit_was_over_the_threshold():
    # 12 m/s, then from 2 s on accelerating 4 m/s^2: over 15.89 m/s from about 2.97 s
    t_over = 2.0 + (15.89 - 12.0) / 4.0
    fired = _first_violation_s(lambda t: 12.0 if t < 2.0 else 12.0 + 4.0 * (t - 2.0))
    assert fired is not None and fired >= t_over + 1.0 - 0.25, fired
    # seen from the start accelerating through the threshold (at 0.73 s): its first window is over on average,
    # but it began under, so the second over the threshold counts from when it went over
    t_over = (15.89 - 13.0) / 4.0
    fired = _first_violation_s(lambda t: 13.0 + 4.0 * t)
    assert fired is not None and fired >= t_over + 1.0, fired


def _braking(v0: float, hold_s: float, decel: float = 4.5):
    return lambda t: v0 if t < hold_s else max(0.0, v0 - decel * (t - hold_s))


def test_a_vehicle_that_comes_into_view_speeding_and_brakes_is_called_at_its_first_speed():
    """19 m/s for 0.6 s, then braking at 4.5 m/s^2 (over 15.89 m/s until about 1.3 s): by its first speed (1.6 s)
    it is under the threshold, and no window was over all through; over at the start and on average it was."""
    assert _first_violation_s(_braking(19.0, 0.6)) == 1.6


def test_a_vehicle_that_never_went_over_is_never_called():
    # accelerating through the threshold at 2.78 s, seen until 3.6 s: over for 0.8 s, under at each window's start
    assert _first_violation_s(lambda t: 14.5 + 0.5 * t, seconds=3.7) is None
    # a vehicle at the cap of the bench's ordinary traffic (1 m/s under the threshold) that brakes
    assert _first_violation_s(_braking(14.89, 0.6)) is None


def test_no_window_no_shortcut():
    est = SpeedEstimator(1.5)
    est.add(7, 0.0, 0.0, 0.0)
    assert est.over_window(7, 10.0) is None and est.over_window(8, 10.0) is None
    assert math.isnan(est.add(7, 0.2, 4.0, 0.0))


def test_a_window_that_starts_over_but_brakes_below_on_average_is_not_over():
    """17 m/s braking at 6 m/s^2 from the first frame: over at the window's start, 11.6 m/s on average."""
    est, x = SpeedEstimator(1.5), 0.0
    for k in range(9):
        t = k / FPS
        if k:
            x += max(0.0, 17.0 - 6.0 * t) / FPS
        est.add(1, t, x, 0.0)
    assert est.over_window(1, 15.89) is None
    assert est.over_window(1, 11.0) is not None  # (start, mean) over a lower threshold
