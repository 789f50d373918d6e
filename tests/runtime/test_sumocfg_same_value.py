"""A .sumocfg setting that the run gives the same value (time-to-teleport 200 in the config and in --config) is
applied in effect: the run does not warn that it was not."""

from __future__ import annotations

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.sim.scenario import load

SINGLE = load("single")


def test_a_setting_the_run_gives_the_same_value_is_not_named_and_a_different_one_is(tmp_path):
    (tmp_path / "r.rou.xml").write_text('<routes><vehicle id="v" depart="0"><route edges="E_C C_W"/></vehicle>'
                                        "</routes>")
    sumocfg = tmp_path / "mine.sumocfg"
    sumocfg.write_text(f'<configuration><input><net-file value="{SINGLE.net_file}"/>'
                       f'<route-files value="{tmp_path / "r.rou.xml"}"/></input>'
                       '<time><begin value="0"/><end value="30"/></time>'
                       '<processing><time-to-teleport value="200"/></processing></configuration>')

    def notes(teleport_s: float, name: str) -> list[str]:
        cfg = RunConfig(sumocfg=sumocfg, controller="fixed", emissions=False, record="lean",
                        time_to_teleport_s=teleport_s)
        return [w for w in execute_run(cfg, tmp_path / name).metrics.get("warnings", ()) if "not applied" in w]

    assert notes(200.0, "same") == []
    different = notes(300.0, "different")
    assert len(different) == 1 and different[0].startswith("mine.sumocfg sets time-to-teleport 200: "), different
