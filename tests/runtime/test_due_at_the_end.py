"""A vehicle due exactly at the run's end on a network where nothing is blocked.

SUMO loads it and stops before the step that would insert it; it writes the vehicle as undeparted with no
delay. RESCO's delay (the reference over libsumo: every tripinfo row, the undeparted ones included) counts it as
one more vehicle due with none, and so does a run; the "never inserted 1" the table shows then said nothing of
why, as a vehicle blocked at its entry gets a warning and this one did not.
"""

from __future__ import annotations

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.scenario import load

END_S = 120


def _routes(folder, departs):
    path = folder / "few.rou.xml"
    path.write_text('<routes><route id="we" edges="W_C C_E"/>'
                    + "".join(f'<vehicle id="v{i}" route="we" depart="{d}"/>' for i, d in enumerate(departs))
                    + "</routes>")
    return path


def test_a_vehicle_due_at_the_end_counts_as_due_with_no_delay_and_the_run_says_why(tmp_path):
    routes = _routes(tmp_path, [0, 10, 20, END_S])
    result = execute_run(RunConfig(net=load("single").net_file, routes=[routes], controller="fixed",
                                   duration_s=END_S, emissions=False), tmp_path / "run")
    net = result.metrics["network"]
    assert (net["vehicles_total"], net["throughput_veh"], net["never_inserted"]) == (4, 3, 1)
    said = [w for w in result.metrics.get("warnings", []) if "never inserted" in w]
    assert said == [f"1 vehicle never inserted: no entry was blocked; it was due at the run's end ({END_S} s), "
                    "where SUMO stops before the step that would insert it: no delay counted, as RESCO's delay "
                    "counts such a vehicle (one more vehicle due, with none)"]


def test_a_run_whose_vehicles_all_entered_says_nothing_of_it(tmp_path):
    routes = _routes(tmp_path, [0, 10, 20])
    result = execute_run(RunConfig(net=load("single").net_file, routes=[routes], controller="fixed",
                                   duration_s=END_S, emissions=False), tmp_path / "run")
    assert result.metrics["network"]["never_inserted"] == 0
    assert not [w for w in result.metrics.get("warnings", []) if "never inserted" in w]
