"""When a speeding call comes: once a second of a vehicle's positions shows its mean speed, minus the uncertainty,
over the threshold. A vehicle first seen speeding is called a second after it was first seen; one that comes into
view speeding and brakes is called on its first second when that second's mean was over; one that only went over
for a moment, or accelerates through the threshold, is called only once a whole second of it was over."""

from __future__ import annotations

from signalwise.vision.violations import SpeedingRule

FPS = 5.0


def _first_violation(speed_at, seconds: float = 6.0):
    """Feed positions of a vehicle on a straight road (speed_at(t) in m/s, positions to the centimetre) through
    the rule; (when it fires, the measurement) or None."""
    rule = SpeedingRule(13.89, 2.0, 1.0)
    x = 0.0
    for k in range(int(seconds * FPS)):
        t = k / FPS
        if k:
            x += speed_at(t) / FPS
        m = rule.observe(1, t, round(x, 2), 0.0, 0.05)
        if m is not None:
            return t, m
    return None


def test_a_vehicle_seen_speeding_from_its_first_frame_is_called_a_second_later():
    t, m = _first_violation(lambda t: 20.0)
    assert t == 1.0 and m.start_s == 0.0 and m.positions == 6 and abs(m.speed_mps - 20.0) < m.uncertainty_mps


def test_a_vehicle_accelerating_through_the_threshold_is_called_once_a_second_of_it_was_over():
    # 12 m/s, then from 2 s on accelerating 4 m/s^2: over 15.89 m/s from about 2.97 s
    t_over = 2.0 + (15.89 - 12.0) / 4.0
    t, m = _first_violation(lambda t: 12.0 if t < 2.0 else 12.0 + 4.0 * (t - 2.0))
    assert t >= t_over + 0.5 and m.lower_mps > 15.89  # the second's mean is over: its middle was
    # seen from the start accelerating through the threshold (at 0.73 s): its first second began under
    t, _m = _first_violation(lambda t: 13.0 + 4.0 * t)
    assert t >= (15.89 - 13.0) / 4.0 + 0.5


def _braking(v0: float, hold_s: float, decel: float = 4.5):
    return lambda t: v0 if t < hold_s else max(0.0, v0 - decel * (t - hold_s))


def test_a_vehicle_that_comes_into_view_speeding_and_brakes_is_called_on_its_first_second():
    """19 m/s for 0.6 s, then braking at 4.5 m/s^2 (over 15.89 m/s until about 1.3 s): its first second's mean is
    18.6 m/s."""
    t, m = _first_violation(_braking(19.0, 0.6))
    assert t == 1.0 and 18.0 < m.speed_mps < 19.0


def test_a_vehicle_that_never_went_over_for_a_second_is_never_called():
    # accelerating through the threshold at 2.78 s, seen until 3.6 s: over for 0.8 s
    assert _first_violation(lambda t: 14.5 + 0.5 * t, seconds=3.7) is None
    # a vehicle at the cap of the bench's ordinary traffic (1 m/s under the threshold) that brakes
    assert _first_violation(_braking(14.89, 0.6)) is None
    # 17 m/s braking at 6 m/s^2 from the first frame: over at first, 14 m/s on average over its first second
    assert _first_violation(_braking(17.0, 0.0, 6.0)) is None
