"""What a Webster run records of its plans (the engineer's re-trial, finding 5): the lost time in readable seconds
(24.999999999999996 s read for 25 s), and only the plans that ran: a 900 s run re-planned at its last step, t=900,
and recorded an 87 s cycle no signal ever showed. A real SUMO run of the built-in corridor."""

from __future__ import annotations

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run


def test_a_webster_run_records_the_plans_that_ran_with_their_lost_time_to_the_millisecond(tmp_path):
    cfg = RunConfig(scenario="corridor", controller="webster", duration_s=900, emissions=False, record="lean",
                    evidence="inline")
    result = execute_run(cfg, tmp_path / "run")
    begin_s, end_s = result.metrics["begin_s"], result.metrics["begin_s"] + result.metrics["simulated_s"]
    plans = result.metrics["webster"]["plans"]
    assert set(plans) == {"J1", "J2", "J3", "J4", "J5"}, plans
    lost = [plan["lost_time_s"] for made in plans.values() for _t, plan in made]
    assert lost == [round(s, 3) for s in lost], lost
    for tls, made in plans.items():
        assert made[0][0] == begin_s, (tls, made)  # the plan it began with
        assert all(t < end_s for t, _plan in made), (tls, made)  # none made when the run was over
