"""Webster on the street: the cycle a signal runs is the cycle its plan says, within the cycle bounds. A real
SUMO run of the built-in corridor under a city's policy (4 s yellow, 4.5 s at J3, 2 s all-red, 8 s minimum green,
cycle 60-120 s), cycles measured in the hi-res event log between two starts of a signal's first phase's green.

Webster's effective greens are shown with the start-up lost time the plan counts in its lost time: a plan that
showed the effective greens ran 2 s per phase short of its cycle (a 60 s plan ran 57 s, below cycle_min_s).
"""

from __future__ import annotations

import pytest

from signalwise.core.eventlog import read_events
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run

CYCLE_MIN_S, CYCLE_MAX_S = 60.0, 120.0
#: preemption events (call, entry, dwell, exit, ...): a cycle around a preemption is not the plan's
PREEMPT_EVENTS = range(102, 112)


@pytest.mark.parametrize("step_s", [1.0, 0.5])
def test_the_measured_cycle_of_every_signal_is_its_plans_cycle_within_the_bounds(tmp_path, step_s):
    timing = {"yellow_s": 4.0, "all_red_s": 2.0, "min_green_s": 8, "max_green_s": 45, "cycle_min_s": CYCLE_MIN_S,
              "cycle_max_s": CYCLE_MAX_S, "per_intersection": {"J3": {"yellow_s": 4.5}}}
    cfg = RunConfig(scenario="corridor", controller="webster", duration_s=1500, step_length_s=step_s,
                    timing=timing, emissions=False, record="lean", evidence="inline")
    result = execute_run(cfg, tmp_path / "run")
    plans = result.metrics["webster"]["plans"]
    events = list(read_events(result.run_dir / "events.csv"))
    assert len(plans) == 5 and all(len(p) >= 2 for p in plans.values())  # each re-planned at least once
    checked = 0
    for tls, tls_plans in plans.items():
        starts = [e.time_s for e in events if e.device_id == tls and e.event_code == 1 and e.parameter == 1]
        preempted = [e.time_s for e in events if e.device_id == tls and e.event_code in PREEMPT_EVENTS]
        replanned = [t for t, _p in tls_plans[1:]]
        for begin, end in zip(starts, starts[1:], strict=False):
            if any(begin <= t <= end for t in preempted + replanned):
                continue  # a preemption or the change to a new plan falls in it
            in_force = [p for t, p in tls_plans if t <= begin][-1]
            assert end - begin == pytest.approx(in_force["cycle_s"], abs=1e-6), (tls, begin)
            checked += 1
    assert checked >= 40
    for tls, tls_plans in plans.items():
        for _t, plan in tls_plans:
            assert CYCLE_MIN_S <= plan["cycle_s"] <= CYCLE_MAX_S, (tls, plan)
            assert all(abs(g / step_s - round(g / step_s)) < 1e-6 for g in plan["green_s"]), (tls, plan)
    # J3's 4.5 s yellow shows as 5 s at 1 s steps and 4.5 s at 0.5 s steps: its four phases lose that, 2 s of
    # all-red and 2 s of start-up lost time each
    assert plans["J3"][0][1]["lost_time_s"] == pytest.approx(4 * ({1.0: 5.0, 0.5: 4.5}[step_s] + 2.0 + 2.0))
