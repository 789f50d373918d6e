"""A setting in a user's .sumocfg that SUMO has no option for (a typo in a calibrated config).

SUMO refuses such a config ("No option with the name ... exists"); a run, which passes most settings on only
with `sumocfg_options: apply`, listed the typo among the settings it does not apply, or dropped it silently.
"""

from __future__ import annotations

import subprocess

import pytest

from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import resolve_scenario, sumocfg_note
from signalwise.sim.scenario import ScenarioError, from_sumocfg, load
from signalwise.sim.sumo_home import sumo_binary


def _config(tmp_path, processing: str):
    single = load("single")
    path = tmp_path / "user.sumocfg"
    path.write_text(f'<configuration><input><net-file value="{single.net_file}"/>'
                    f'<route-files value="{single.route_files[0]}"/></input>'
                    f'<time><begin value="0"/><end value="60"/></time>'
                    f'<processing>{processing}</processing></configuration>')
    return path


def test_sumo_itself_refuses_the_config_and_so_does_a_run_naming_the_option_meant(tmp_path):
    path = _config(tmp_path, '<time-to-teleprt value="120"/><ignore-route-errors value="true"/>')
    sumo = subprocess.run([sumo_binary(), "-c", str(path), "--end", "1"], capture_output=True, text=True,
                          timeout=60)
    assert "No option with the name 'time-to-teleprt' exists" in sumo.stdout + sumo.stderr
    with pytest.raises(ScenarioError) as refused:
        from_sumocfg(path)
    said = str(refused.value)
    assert said.startswith(f"{path}: sets <time-to-teleprt> (did you mean time-to-teleport?),")
    assert "ignore-route-errors" not in said and "\n" not in said


@pytest.mark.parametrize("how", ["warn", "apply"])
def test_a_run_refuses_a_made_up_option_whether_the_configs_settings_are_applied_or_not(tmp_path, how):
    path = _config(tmp_path, '<no-such-option value="1"/>')
    cfg = RunConfig(sumocfg=path, sumocfg_options=how)
    with pytest.raises(ScenarioError, match="sets <no-such-option>, which the installed SUMO has no option for"):
        sumocfg_note(cfg, resolve_scenario(cfg))


def test_a_real_option_the_run_does_not_apply_is_still_only_named(tmp_path):
    cfg = RunConfig(sumocfg=_config(tmp_path, '<ignore-route-errors value="true"/>'))
    note = sumocfg_note(cfg, resolve_scenario(cfg))
    assert "ignore-route-errors true: not applied" in note
