"""Webster on a network whose window begins at a time of day (a .sumocfg's begin past one planning period):
a real SUMO run.

`single`'s net and routes under a .sumocfg of the user's kind beginning at 1200 s (the 20 minutes of peak
demand, 1200-2400 s): the first plan comes from the route files' demand, and the first re-plan one planning
period (900 s) after the begin, on the stop-bar counts of those 900 s, not at the first step on no counts.
"""

from __future__ import annotations

import pytest

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.scenario import BUILTIN_DIR

BEGIN_S = 1200.0


def test_the_first_replan_is_one_planning_period_after_a_late_begin_on_measured_counts(tmp_path):
    single = BUILTIN_DIR / "single"
    sumocfg = tmp_path / "late.sumocfg"
    sumocfg.write_text(f"""<configuration>
  <input><net-file value="{single / 'net.net.xml'}"/><route-files value="{single / 'demand.rou.xml'}"/></input>
  <time><begin value="{BEGIN_S:g}"/><end value="{BEGIN_S + 960:g}"/></time>
</configuration>
""")
    cfg = RunConfig(sumocfg=sumocfg, controller="webster", emissions=False, evidence="inline")
    plans = execute_run(cfg, tmp_path / "run").metrics["webster"]["plans"]["C"]
    (t0, nominal), *replans = plans
    assert t0 == BEGIN_S
    # the peak's demand in the route files (1200-2100 s; scenario.yaml's second window), by the busiest lane of
    # each phase at 1800 veh/h per lane: E-W lane 1 carries half the 775 through + the 165 right turns,
    # (387.5 + 165) / 1800 = 0.307; the E-W left pocket 165 / 1800 = 0.092; N-S lane 1 (194 + 83) / 1800 = 0.154;
    # the N-S pocket 83 / 1800 = 0.046: Y = 0.599 (300 veh/h on every lane, the default, gives 0.667)
    assert nominal["flow_ratio_sum"] == pytest.approx(0.599, abs=0.005)
    # one re-plan, at the first decision from 2100 s on (a green's end: within a cycle)
    assert len(replans) == 1
    t1, counted = replans[0]
    assert BEGIN_S + 900 <= t1 < BEGIN_S + 900 + nominal["cycle_s"]
    # on the vehicles counted over the peak: a demand near the nominal one, not the zero of no counts
    assert abs(counted["flow_ratio_sum"] - nominal["flow_ratio_sum"]) < 0.25 * nominal["flow_ratio_sum"]


def test_the_live_runtimes_fallback_planner_waits_one_planning_period_from_a_late_begin(tmp_path):
    """A live run re-plans each signal's Webster fallback from its stop-bar counts (`plan_every_s`); from a late
    begin its first plan cycle must not re-plan on the counts of no period yet and overwrite the fallback."""
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime

    single = BUILTIN_DIR / "single"
    sumocfg = tmp_path / "late.sumocfg"
    sumocfg.write_text(f"""<configuration>
  <input><net-file value="{single / 'net.net.xml'}"/><route-files value="{single / 'demand.rou.xml'}"/></input>
  <time><begin value="{BEGIN_S:g}"/><end value="{BEGIN_S + 1200:g}"/></time>
</configuration>
""")
    rt = LiveRuntime(RunConfig(sumocfg=sumocfg, controller="fixed", interval_s=60.0),
                     LiveOptions(speed=None, duration_s=180, in_process=True, state_every_s=600, plan_every_s=60),
                     tmp_path / "live")
    rt.open()
    before = rt.stepper.shields["C"].fallback.green_s
    rt.run()
    planner = rt._planners["C"]
    assert [t for t, _p in planner.plans] == [BEGIN_S] and planner.needs_counts_at == BEGIN_S + 900
    # the fallback is still the plan of the route files' demand (the peak: 59 s of green for the E-W through phase)
    assert rt.stepper.shields["C"].fallback.green_s == before == pytest.approx([30.0, 11.0, 59.0, 19.0])
