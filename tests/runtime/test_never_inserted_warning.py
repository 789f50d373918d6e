"""The warning about blocked entries and the table's "never inserted" count agree: a vehicle due at the run's
last step is never inserted too (it had no chance, and adds no delay), which the warning names apart instead of
giving a number the table contradicts (140 in the warning, 141 in the table)."""

from support.cli import signalwise

from signalwise.sim.scenario import load


def test_blocked_and_last_step_vehicles_add_up_to_the_tables_count(tmp_path):
    routes = tmp_path / "r.rou.xml"
    vehicles = [f'<vehicle id="v{i:03d}" type="car" route="r" depart="0"/>' for i in range(120)]  # one lane, at once
    routes.write_text("\n".join(['<routes><vType id="car" length="4.5"/><route id="r" edges="E_C C_W"/>', *vehicles,
                                 '<vehicle id="late" type="car" route="r" depart="60"/></routes>']))
    done = signalwise("run", "--net", str(load("single").net_file), "--routes", str(routes), "--duration", "60",
                      "--out", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr
    import json

    metrics = json.loads(next((tmp_path / "runs").glob("*/metrics.json")).read_text())
    never = metrics["network"]["never_inserted"]
    warning = next(line for line in (done.stdout + done.stderr).splitlines() if "never entered the network" in line)
    blocked = int(warning.removeprefix("warning: ").split()[0])
    assert 0 < blocked < never
    last = never - blocked
    assert (f"({never} never inserted in all: {last} more {'was' if last == 1 else 'were'} due at the run's end "
            "(60 s), where SUMO stops before the step that would insert it") in warning
