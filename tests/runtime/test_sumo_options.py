"""`sumo_options` in a run configuration: SUMO options a calibrated network needs reach the simulation, its
evidence replay too, and the options a run sets itself are refused by name. Real SUMO runs on `single`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from support.cli import signalwise as signalwise_here

from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import applied_sumo_options, resolve_scenario, sumocfg_note
from signalwise.runtime.run import execute_run
from signalwise.sim.scenario import unapplied_note

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
SINGLE = Path(__file__).parents[2] / "src" / "signalwise" / "sim" / "scenarios" / "single"


def test_the_options_reach_sumo_and_the_replay_that_records_the_emissions(tmp_path):
    """At most three vehicles in the network at once (SUMO's --max-num-vehicles) holds most of an hour's
    vehicles outside. The evidence replay drives the same traffic only if it starts SUMO with the option too."""
    runs = {}
    for name, options in (("as-written", {}), ("three-at-most", {"max-num-vehicles": 3})):
        cfg = RunConfig(scenario="single", controller="fixed", duration_s=300, evidence="replay",
                        sumo_options=options, out_dir=tmp_path)
        runs[name] = execute_run(cfg, tmp_path / name).metrics
    free, capped = runs["as-written"]["network"], runs["three-at-most"]["network"]
    assert capped["never_inserted"] > 10 * max(1, free["never_inserted"])
    assert capped["avg_delay_s"] > 2 * free["avg_delay_s"]
    assert runs["three-at-most"]["evidence"] == {"mode": "replay", "same_traffic": True}
    assert "max-num-vehicles: 3" in (tmp_path / "three-at-most" / "config.yaml").read_text()


@pytest.mark.parametrize(("options", "why"), [
    ({"seed": 3}, "seed: set by the run: the run's seed (--seed)"),
    ({"tripinfo-output": "t.xml"}, "tripinfo-output: the run writes its own outputs"),
    ({"tls.all-off": True}, "tls.all-off: set by the run: the run controls the signals"),
    ({"--lateral-resolution": 0.8}, "--lateral-resolution: not a SUMO option name"),
    # SUMO's other names for the same options: resolved through the installed SUMO's own table
    ({"n": "other.net.xml"}, "n: set by the run (SUMO's other name for net-file)"),
    ({"c": "other.sumocfg"}, "c: set by the run (SUMO's other name for configuration-file)"),
    ({"netstate-output": "/tmp/x.xml"}, "netstate-output: the run writes its own outputs and logs (its run "
                                        "directory) (SUMO's other name for netstate-dump)"),
    # options that write files without the -output of their name
    ({"netstate-dump": "/tmp/x.xml"}, "netstate-dump: the run writes its own outputs"),
    ({"save-configuration": "/tmp/x.xml"}, "save-configuration: the run writes its own outputs"),
    ({"output-prefix": "/tmp/"}, "output-prefix: the run writes its own outputs"),
    ({"device.ssm.probability": 1}, "device.ssm.probability: the run writes its own outputs"),
    # a file to read: sumo_options name none
    ({"weight-files": "w.xml"}, "weight-files: names a file"),
    ({"gui-settings-file": "/etc/passwd"}, "gui-settings-file: names a file"),
    ({"ignore-junction-blocker-typo": 60}, "ignore-junction-blocker-typo: not an option of the installed SUMO"),
])
def test_an_option_the_run_sets_itself_is_refused_with_the_reason(options, why):
    with pytest.raises(ValidationError, match=why.replace("(", r"\(").replace(")", r"\)")):
        RunConfig(scenario="single", sumo_options=options)


def test_the_command_line_refuses_it_in_one_line_and_names_what_a_sumocfg_sets_that_no_option_applies(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sumo_options: {step-length: 0.1}\n")
    p = signalwise_here("run", "-s", "single", "--config", str(bad), "--duration", "10", "--out", str(tmp_path))
    assert p.returncode == 2 and "step-length: set by the run" in p.stderr and "Traceback" not in p.stderr
    cfg_file = tmp_path / "city.sumocfg"
    cfg_file.write_text(f"""<configuration>
    <input><net-file value="{SINGLE / 'net.net.xml'}"/><route-files value="{SINGLE / 'demand.rou.xml'}"/></input>
    <processing><ignore-junction-blocker value="60"/><lateral-resolution value="0.8"/></processing>
</configuration>""")
    scenario = resolve_scenario(RunConfig(sumocfg=cfg_file))
    assert "sets ignore-junction-blocker 60, lateral-resolution 0.8: not applied" in unapplied_note(scenario)
    # the ones a run's sumo_options apply are no longer named; with all of them applied, nothing is said
    assert "sets lateral-resolution 0.8: not applied" in unapplied_note(scenario, {"ignore-junction-blocker": 60})
    assert unapplied_note(scenario, {"ignore-junction-blocker": 60, "lateral-resolution": 0.8}) is None


def _city_config(tmp_path: Path, processing: str) -> Path:
    """A user's .sumocfg on the built-in single's network, with `processing` settings of its own."""
    path = tmp_path / "city" / "city.sumocfg"
    path.parent.mkdir()
    path.write_text(f"""<configuration>
    <input><net-file value="{SINGLE / 'net.net.xml'}"/><route-files value="{SINGLE / 'demand.rou.xml'}"/></input>
    <time><step-length value="0.5"/></time>
    <processing>{processing}</processing>
</configuration>""")
    return path


def test_sumocfg_options_apply_starts_sumo_with_the_configs_own_settings(tmp_path):
    """A calibrated network's .sumocfg as it stands: with `sumocfg_options: apply` its processing settings reach
    SUMO and the evidence replay; the ones a run sets itself (here its step length) stay the run's and are still
    named; the default leaves them all out and names them."""
    city = _city_config(tmp_path, '<max-num-vehicles value="3"/>')
    runs = {}
    for mode in ("warn", "apply"):
        cfg = RunConfig(sumocfg=city, controller="fixed", duration_s=300, evidence="replay",
                        sumocfg_options=mode, out_dir=tmp_path)
        runs[mode] = execute_run(cfg, tmp_path / mode)
    left, applied = runs["warn"].metrics["network"], runs["apply"].metrics["network"]
    assert applied["never_inserted"] > 10 * max(1, left["never_inserted"])
    assert runs["apply"].metrics["evidence"] == {"mode": "replay", "same_traffic": True}
    warned = {mode: " ".join(r.metrics.get("warnings", [])) for mode, r in runs.items()}
    assert "max-num-vehicles 3" in warned["warn"] and "sumocfg_options: apply" in warned["warn"]
    assert "max-num-vehicles" not in warned["apply"] and "step-length 0.5: not applied" in warned["apply"]
    assert "sumocfg_options: apply" not in warned["apply"]
    # an option of the run's configuration wins over the .sumocfg's value
    cfg = RunConfig(sumocfg=city, sumocfg_options="apply", sumo_options={"max-num-vehicles": 50})
    assert applied_sumo_options(cfg, resolve_scenario(cfg)) == {"max-num-vehicles": 50}


def test_a_file_the_sumocfg_names_beside_itself_is_found_from_any_working_directory(tmp_path, monkeypatch):
    """SUMO reads a path in a .sumocfg relative to the file; on the command line it would be read from the
    working directory, so an applied option's file is made absolute. A run from elsewhere starts."""
    city = _city_config(tmp_path, '<weights.random-factor value="1.5"/>'
                                  '</processing><input><weight-files value="weights.xml"/></input><processing>')
    (city.parent / "weights.xml").write_text("<meandata/>\n")
    monkeypatch.chdir(tmp_path)
    cfg = RunConfig(sumocfg=Path("city/city.sumocfg"), controller="fixed", duration_s=60, sumocfg_options="apply",
                    out_dir=tmp_path)
    options = applied_sumo_options(cfg, resolve_scenario(cfg))
    assert options == {"weights.random-factor": "1.5", "weight-files": str(city.parent.resolve() / "weights.xml")}
    result = execute_run(cfg, tmp_path / "elsewhere")
    assert result.metrics["network"]["vehicles_total"] > 0
    assert sumocfg_note(cfg, resolve_scenario(cfg)).startswith("city.sumocfg sets step-length 0.5: not applied")


def test_a_misspelt_controller_option_is_refused_by_name_where_a_run_or_a_live_change_takes_it(tmp_path):
    """`min_hold: 20` for max-pressure's `min_hold_s` was ignored without a word and the run went on with 10 s.
    A key no controller reads is refused, by the command in one line and by a live run's controller change."""
    from signalwise.runtime.live.changes import ControllerChange

    with pytest.raises(ValidationError, match="unknown controller option.s. min_hold; known: .*min_hold_s"):
        RunConfig(scenario="single", controller_options={"min_hold": 20})
    with pytest.raises(ValidationError, match="unknown controller option.s. min_hold"):
        ControllerChange(controller="max-pressure", controller_options={"min_hold": 20})
    assert RunConfig(scenario="single", controller_options={"min_hold_s": 20, "measure": "density"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("controller_options: {min_hold: 20}\n")
    p = signalwise_here("run", "-s", "single", "--config", str(bad), "--duration", "10", "--out", str(tmp_path))
    assert p.returncode == 2 and "unknown controller option(s) min_hold" in p.stderr and "Traceback" not in p.stderr
