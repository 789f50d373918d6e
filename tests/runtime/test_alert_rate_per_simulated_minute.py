"""`X_per_min` is a rate per simulated minute in a live run, not per wall-clock minute.

The trial: `signalwise live --scenario corridor --speed 10` (the README's demo) raised `shield_interventions`
("more than 30 in a minute") at t = 9:55 although its `interventions.csv` held at most 8 in any simulated
minute: at speed 10 a wall minute holds ten simulated ones. The runtime hands the engine both clocks
(`evaluate(time.monotonic(), ..., run_time_s=sim_t)`); the built-in rule is driven here the same way.
"""

from __future__ import annotations

from signalwise.runtime.live.alerts import BUILTIN_RULES, AlertEngine


def _shield_rule():
    return next(r for r in BUILTIN_RULES if r.name == "shield_interventions")


def _run(per_sim_minute: int, speed: float, sim_minutes: int = 12):
    """Both clocks of a live run at `speed` (1 s ticks), the counter growing `per_sim_minute` each simulated
    minute, evenly; the alerts raised."""
    engine = AlertEngine([_shield_rule()])
    raised = []
    count = 0.0
    for sim_s in range(0, sim_minutes * 60 + 1):
        count += per_sim_minute / 60.0
        wall_s = 1000.0 + sim_s / speed
        events = engine.evaluate(wall_s, {"shield_interventions": float(int(count))}, run_time_s=float(sim_s))
        raised += [e for e in events if e.cleared_at_s is None]
    return raised


def test_eight_interventions_per_simulated_minute_at_speed_10_raise_nothing():
    # 80 per wall minute: the old per-wall-minute count raised it within the first wall minute
    assert _run(8, speed=10.0) == []


def test_forty_per_simulated_minute_raise_it_whatever_the_speed():
    for speed in (1.0, 10.0, 60.0):
        raised = _run(40, speed=speed)
        assert [a.rule for a in raised] == ["shield_interventions"], speed
        # within the first simulated minute (31 counted), stamped in simulated seconds
        assert 45 <= raised[0].raised_at_s <= 60, (speed, raised[0].raised_at_s)
        assert "simulated minute" in raised[0].message


def test_the_rule_does_not_call_the_shield_doing_its_job_unsafe_proposals():
    text = _shield_rule().description
    assert "unsafe" not in text and "cycle bound" in text and "interventions.csv" in text
