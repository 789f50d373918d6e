"""Input that used to be silently ignored or misread: an error that names the conflict, or handled right."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.cli import in_a_process, signalwise

from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import RunDirectoryError, execute_run
from signalwise.sim.backend import SimulationError
from signalwise.sim.scenario import load

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
SINGLE = load("single")
SINGLE_CFG = Path(SINGLE.net_file).with_name("scenario.sumocfg")


def _cli(*args, cwd):
    """In this process: run refusals made before SUMO starts, and publish (files into the store)."""
    return signalwise(*args, cwd=cwd)


def _errors(p) -> list[str]:
    return [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]


@pytest.mark.parametrize("args,needle", [
    (["--routes", str(SINGLE.route_files[0])], "routes given without net"),
    (["--net", str(SINGLE.net_file)], "net needs at least one routes file"),
    (["--sumocfg", str(SINGLE_CFG), "--net", str(SINGLE.net_file), "--routes", str(SINGLE.route_files[0])],
     "and net/routes both given"),
    (["--sumocfg", str(SINGLE_CFG), "--scenario", "grid"], "scenario 'grid' and"),
])
def test_conflicting_network_options_are_refused_by_name(tmp_path, args, needle):
    p = _cli("run", *args, "--duration", "30", "--out", str(tmp_path), cwd=tmp_path)
    assert p.returncode == 2 and len(_errors(p)) == 1 and needle in _errors(p)[0], p.stderr
    assert not any(tmp_path.iterdir()), "nothing half-written"


@pytest.mark.parametrize("timing,needle", [
    ({"min_green_s": 20, "max_green_s": 10}, "min_green_s (20) exceeds max_green_s (10)"),
    ({"cycle_min_s": 120, "cycle_max_s": 90}, "cycle_min_s (120) exceeds cycle_max_s (90)"),
    ({"per_intersection": {"C": {"min_green_s": 50, "max_green_s": 30}}},
     "per_intersection.C: min_green_s (50) exceeds max_green_s (30)"),
    ({"per_intersection": {"C": {"min_gren_s": 5}}}, "per_intersection.C: unknown timing key(s) min_gren_s"),
    ({"per_intersection": {"C": {"yellow_s": 9}}}, "per_intersection.C.yellow_s"),
])
def test_inconsistent_timing_is_refused(tmp_path, timing, needle):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"timing": timing}))
    p = _cli("run", "--config", str(cfg), "--duration", "30", "--out", str(tmp_path / "runs"), cwd=tmp_path)
    assert p.returncode == 2 and needle in p.stderr, p.stderr
    assert not (tmp_path / "runs").exists()


def test_an_override_for_an_intersection_the_network_lacks_is_refused(tmp_path):
    cfg = RunConfig(scenario="single", duration_s=30, timing={"per_intersection": {"Cx": {"min_green_s": 8}}})
    with pytest.raises(SimulationError, match="per_intersection names Cx, not a traffic light of this network "
                                              r"\(its traffic lights: C\)"):
        execute_run(cfg, tmp_path / "run")
    # an override for the network's own signal is applied
    r = execute_run(cfg.model_copy(update={"timing": cfg.timing.model_copy(
        update={"per_intersection": {"C": {"min_green_s": 8}}})}), tmp_path / "run2")
    model = yaml.safe_load((r.run_dir / "signal_model.json").read_text())
    assert min(model[0]["timing"]["min_green_s"]) == 8


def test_an_existing_run_directory_is_never_overwritten(tmp_path):
    cfg = RunConfig(scenario="single", controller="fixed", duration_s=30, emissions=False)
    execute_run(cfg, tmp_path / "run")
    (tmp_path / "run" / "atspm").mkdir()
    with pytest.raises(RunDirectoryError, match="exists and is not empty"):
        execute_run(cfg, tmp_path / "run")
    p = _cli("run", "--duration", "30", "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert p.returncode == 2 and "exists and is not empty" in p.stderr
    assert (tmp_path / "run" / "atspm").is_dir()  # the old run is untouched


@pytest.mark.parametrize("args,option", [
    (["run", "--duration", "30", "--out", "a-file/runs"], "--out a-file/runs"),
    (["run", "--duration", "30", "--run-dir", "a-file/run"], "--run-dir a-file/run"),
    (["compare", "--duration", "30", "--seeds", "1", "--controllers", "fixed", "--out", "a-file/cmp"],
     "--out a-file/cmp"),
])
def test_an_output_directory_that_cannot_be_made_is_refused_before_the_run(tmp_path, args, option):
    (tmp_path / "a-file").write_text("")
    p = (in_a_process if args[0] == "compare" else _cli)(*args, cwd=tmp_path)  # compare checks the network first
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert _errors(p) == [f"error: {option}: {tmp_path / 'a-file'} is not a directory"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a device every write to fails)")
def test_a_write_that_fails_past_the_checks_is_one_error_line(tmp_path):
    """Output that cannot be written (here stdout on a full device) ends the command with one line, exit 1."""
    with open("/dev/full", "w") as full:
        p = subprocess.run([SIGNALWISE, "scenarios"], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60,
                           cwd=tmp_path)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    # no file is named (stdout): where it happened and how to see the traceback (tests/test_cli_os_error.py)
    line = p.stderr.strip()
    assert line.startswith("error: No space left on device (OSError at signalwise/") and "\n" not in line, line
    assert line.endswith("SIGNALWISE_LOG_LEVEL=DEBUG logs the traceback"), line


def test_an_output_path_with_a_colon_works(tmp_path):
    r = execute_run(RunConfig(scenario="single", controller="max-pressure", duration_s=120, emissions=True),
                    tmp_path / "12:00 run")
    assert r.status == "complete"
    assert (tmp_path / "12:00 run" / "sumo" / "tripinfo.xml").stat().st_size > 0
    assert r.metrics["network"]["throughput_veh"] > 0


@pytest.mark.slow
def test_a_resolved_config_records_your_network_and_reruns_from_anywhere(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "my.sumocfg").write_text(SINGLE_CFG.read_text().replace(
        'value="net.net.xml"', f'value="{SINGLE.net_file}"').replace(
        'value="demand.rou.xml"', f'value="{SINGLE.route_files[0]}"'))
    p = in_a_process("run", "--sumocfg", "my.sumocfg", "--duration", "60", "--run-dir", "r1", cwd=work)
    assert p.returncode == 0, p.stderr
    resolved = yaml.safe_load((work / "r1" / "config.yaml").read_text())
    assert resolved["scenario"] is None
    assert resolved["sumocfg"] == str(work / "my.sumocfg")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = in_a_process("run", "--config", str(work / "r1" / "config.yaml"), "--run-dir", "r2", cwd=elsewhere)
    assert p.returncode == 0, p.stderr
    assert (elsewhere / "r2" / "events.csv").read_bytes() == (work / "r1" / "events.csv").read_bytes()


def test_a_route_over_an_unknown_edge_names_the_vehicle_and_the_edge(tmp_path):
    routes = tmp_path / "r.rou.xml"
    routes.write_text('<routes><vehicle id="car7" depart="0"><route edges="E_C nowhere_edge"/></vehicle></routes>')
    p = in_a_process("run", "--net", str(SINGLE.net_file), "--routes", str(routes), "--duration", "30",
             "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert p.returncode == 2 and len(_errors(p)) == 1
    assert "'nowhere_edge'" in p.stderr and "'car7'" in p.stderr, p.stderr


def test_gui_without_a_display_says_what_is_missing_at_once(tmp_path):
    import os
    import time

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    t0 = time.monotonic()
    p = subprocess.run([SIGNALWISE, "run", "--gui", "--duration", "30", "--out", str(tmp_path)], capture_output=True,
                       text=True, cwd=tmp_path, timeout=60, env=env)
    assert p.returncode == 2 and "--gui needs a display" in p.stderr and "xvfb-run" in p.stderr
    assert time.monotonic() - t0 < 30 and "TraCI" not in p.stderr + p.stdout


def test_a_config_file_is_obeyed_unless_the_command_line_says_otherwise(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"scenario": "corridor", "controller": "actuated", "seed": 7, "emissions": False,
                                   "duration_s": 60, "out_dir": str(tmp_path / "from-file")}))
    p = in_a_process("run", "--config", str(cfg), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    (run,) = (tmp_path / "from-file").iterdir()
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert (resolved["scenario"], resolved["controller"], resolved["seed"], resolved["emissions"]) == \
        ("corridor", "actuated", 7, False)
    p = in_a_process("run", "--config", str(cfg), "--seed", "3", "--controller", "fixed", "--run-dir", "r2", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    resolved = yaml.safe_load((tmp_path / "r2" / "config.yaml").read_text())
    assert (resolved["controller"], resolved["seed"]) == ("fixed", 3)


def test_publish_stores_an_existing_run_and_refuses_what_is_not_one(tmp_path):
    import sqlite3

    r = execute_run(RunConfig(scenario="single", controller="fixed", duration_s=120, emissions=False),
                    tmp_path / "run")
    db = tmp_path / "pub.db"
    p = _cli("publish", str(r.run_dir), "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"-> sqlite:///{db}" in p.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from intersection_records").fetchone()[0] == 2
    p = _cli("publish", str(tmp_path), "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert p.returncode == 2 and "not a complete run directory" in p.stderr
    env_db = tmp_path / "env.db"
    p = signalwise("publish", str(r.run_dir), cwd=tmp_path, env={"SIGNALWISE_DATABASE_URL": f"sqlite:///{env_db}"})
    assert p.returncode == 0 and f"-> sqlite:///{env_db}" in p.stderr and env_db.exists()


#: a network of the user's own (here the built-in `single`'s files, named by path): nothing is shipped for it
OWN_NETWORK = ["--net", str(load("single").net_file), "--routes", str(load("single").route_files[0])]


@pytest.mark.parametrize("spec,where,needle", [
    ("ql", OWN_NETWORK, "controller 'ql' cannot run at signal 'C': no model given"),  # a built-in runs its shipped model
    ("ql-train", [], "ql-train learns inside `signalwise train` only"),
])
def test_a_controller_that_cannot_load_is_an_error_before_the_run(tmp_path, spec, where, needle):
    """Found once the run has started: the run directory says it failed (a ql:PATH with no model is refused
    before, below)."""
    p = in_a_process("run", "--controller", spec, *where, "--duration", "60", "--run-dir", "r", cwd=tmp_path)
    assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr, p.stderr
    info = yaml.safe_load((tmp_path / "r" / "run.json").read_text())
    assert info["status"] == "failed" and info["reason"]
    assert not (tmp_path / "r" / "metrics.json").exists()  # no result that looks like one


def test_a_ql_path_holding_no_model_is_refused_before_a_run_directory_is_made(tmp_path):
    p = _cli("run", "-s", "single", "-c", f"ql:{tmp_path / 'nomodel'}", "--duration", "30", "--out", "out",
             cwd=tmp_path)
    assert p.returncode == 2 and _errors(p) == [f"error: controller 'ql:{tmp_path / 'nomodel'}': "
                                                f"{tmp_path / 'nomodel'}: no such model"], p.stderr
    assert not (tmp_path / "out").exists()
