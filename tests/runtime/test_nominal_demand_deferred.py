"""The nominal demand (veh/h per lane, from a network's route files where its scenario has none) is read when a
controller or a shield's fallback plan first asks for it: Webster at its start, the fallback plan the first time
the shield follows it. A run whose shields never fall back does not read the route files for it, and a fallback
plan worked out late is the plan the demand gives, as if worked out at the start."""

from __future__ import annotations

import pytest

from signalwise.control import ControlContext
from signalwise.control.webster import PLANNING_PERIOD_S, nominal_flows, plan_for
from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import LoopStepper, open_field, resolve_scenario, sumo_options
from signalwise.sim import route_demand
from signalwise.sim.scenario import nominal_lane_flows

DURATION_S = 60.0


def _demand_reads() -> int:
    info = route_demand._read_cached.cache_info()
    return info.hits + info.misses


@pytest.mark.parametrize(("controller", "reads_at_start"), [("max-pressure", 0), ("webster", 1)])
def test_the_route_files_demand_is_read_when_first_asked_for(controller, reads_at_start):
    cfg = RunConfig(scenario="resco:cologne1", controller=controller, duration_s=DURATION_S, record="lean")
    scenario = resolve_scenario(cfg)
    end_s = scenario.begin_s + DURATION_S
    fld = open_field(cfg, scenario, sumo_options(cfg, scenario, end_s=end_s))
    try:
        before = _demand_reads()
        stepper = LoopStepper(cfg, fld, end_s)
        while not stepper.done:
            stepper.step()
        assert _demand_reads() - before == reads_at_start
        fallbacks = {tls: sh.fallback.green_s for tls, sh in stepper.shields.items()}  # read now, if not yet
        assert _demand_reads() - before == 1
    finally:
        fld.backend.close()
    movements = [m for i in stepper.intersections for m in i.movements]
    demand = nominal_lane_flows(scenario, movements, stepper.t0, min(PLANNING_PERIOD_S, end_s - stepper.t0))
    assert demand  # cologne1's route files give it
    ctx = ControlContext(nominal_lane_flow_vph=demand)
    assert fallbacks == {i.id: list(plan_for(i, nominal_flows(i, ctx)).green_s) for i in stepper.intersections}
