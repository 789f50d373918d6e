"""A .sumocfg written with SUMO's short option names (synonyms: `<routes>`, `<b>`, `<e>`).

SUMO reads `<b value="25200"/>` as its begin; a run reads what SUMO runs: the same window and routes, none of
them among the settings it does not apply.
"""

from __future__ import annotations

import subprocess

from signalwise.sim.scenario import from_sumocfg, load
from signalwise.sim.sumo_home import sumo_binary
from signalwise.sim.sumo_option_table import option_table


def _short_name_config(tmp_path):
    single = load("single")
    path = tmp_path / "short.sumocfg"
    path.write_text(f'<configuration><input><n value="{single.net_file}"/>'
                    f'<routes value="{single.route_files[0]}"/></input>'
                    f'<time><b value="25200"/><e value="26000"/></time>'
                    f'<processing><ignore-route-errors value="true"/></processing></configuration>')
    return single, path


def test_short_names_read_as_sumo_reads_them(tmp_path):
    single, path = _short_name_config(tmp_path)
    scenario = from_sumocfg(path)
    assert (scenario.begin_s, scenario.end_s) == (25200, 26000)
    assert scenario.route_files == single.route_files
    assert scenario.net_file == single.net_file
    assert scenario.sumocfg_settings == (("ignore-route-errors", "true"),)
    # SUMO's own reading of the same config, saved with its canonical names, reads the same
    saved = tmp_path / "saved.sumocfg"
    subprocess.run([sumo_binary(), "-c", str(path), "--save-configuration", str(saved)], check=True,
                   capture_output=True, timeout=60)
    by_sumo = from_sumocfg(saved)
    assert (by_sumo.begin_s, by_sumo.end_s, by_sumo.route_files) == \
        (scenario.begin_s, scenario.end_s, scenario.route_files)


def test_the_configs_the_package_ships_are_read_without_starting_sumo():
    option_table.cache_clear()
    load("single")
    load("grid")
    assert option_table.cache_info().misses == 0
