"""`signalwise train --config FILE`: a city's own timing and shield settings reach every training episode, the
model records them, `evaluate` runs the model under them (or under another file's), and `run` says when a run's
timing differs.

Real searches and runs on `single`, one generation of two candidates over two simulated minutes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.cli import signalwise as signalwise_here

from signalwise.control.learning.qtable import load_model
from signalwise.training.commands import _episode_settings

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, *args], capture_output=True, text=True, timeout=300)


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([SIGNALWISE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(p: subprocess.Popen) -> subprocess.CompletedProcess:
    try:
        out, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@pytest.mark.slow
def test_a_config_files_timing_and_shield_are_the_training_and_the_evaluation_rules(tmp_path):
    city = tmp_path / "city.yaml"
    city.write_text(yaml.safe_dump({"scenario": "corridor", "controller": "max-pressure",
                                    "timing": {"yellow_s": 5, "all_red_s": 2},
                                    "shield": {"max_observation_age_s": 12},
                                    "sumo_options": {"ignore-junction-blocker": 60},
                                    "sumocfg_options": "apply"}, sort_keys=False))
    out = tmp_path / "t"
    r = _cli("train", "-s", "single", "--generations", "1", "--popsize", "2", "--validation-seeds", "1",
             "--duration", "120", "--config", str(city), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "scenario, controller not applied" in r.stderr  # the network is the command's own
    meta = load_model(out / "model").meta
    assert meta["scenario"] == "single"
    assert meta["training"]["run"] == {"timing": {"profile": "safety", "yellow_s": 5, "all_red_s": 2},
                                       "shield": {"max_observation_age_s": 12},
                                       "sumo_options": {"ignore-junction-blocker": 60},
                                       "sumocfg_options": "apply"}

    # a run of the model under other clearances says so; under its training's it does not. Both only read the
    # model, so they run beside the evaluation below (which replaces meta.json whole when it appends to it)
    runs = [_start("run", "-s", "single", "-c", f"ql:{out / 'model'}", "--duration", "30", *more, "--out",
                   str(tmp_path / name)) for name, more in (("r-other", ()), ("r-same", ("--config", str(city))))]
    try:
        # evaluate: another city's clearances replace the training's timing; the shield it does not set stays the
        # training's (so evaluate runs under the training's settings where it is not told otherwise)
        other_city = tmp_path / "other.yaml"
        other_city.write_text("controller: fixed\ntiming: {yellow_s: 4, all_red_s: 1}\n")
        ev = _cli("evaluate", "--model", str(out / "model"), "--seeds", "1", "--duration", "60", "--config",
                  str(other_city), "--out", str(tmp_path / "eval2"))
    finally:
        other, same = (_result(p) for p in runs)
    assert ev.returncode == 0, ev.stderr
    assert "controller not applied: an evaluation takes only timing" in ev.stderr
    assert "under the safety timing profile with yellow_s 4, all_red_s 1" in ev.stdout
    ql_run = next((tmp_path / "eval2").glob("ql-*"))
    ran = yaml.safe_load((ql_run / "config.yaml").read_text())
    assert (ran["timing"]["yellow_s"], ran["timing"]["all_red_s"], ran["shield"]["max_observation_age_s"]) == \
        (4.0, 1.0, 12.0)
    assert ran["sumo_options"] == {"ignore-junction-blocker": 60}  # the training's SUMO settings, kept too
    assert ran["sumocfg_options"] == "apply"
    assert json.loads((ql_run / "metrics.json").read_text())["safety"]["violations"] == 0

    assert other.returncode == 0, other.stderr
    assert "trained with timing yellow_s 5, all_red_s 2; this run has yellow_s null, all_red_s null" in other.stderr
    assert same.returncode == 0, same.stderr
    assert "trained with timing" not in same.stderr


def test_timing_beside_a_config_file_and_refusals(tmp_path):
    city = tmp_path / "city.yaml"
    city.write_text("timing: {profile: benchmark, min_green_s: 8}\nstep_length_s: 0.5\n")
    assert _episode_settings(city, None, True) == \
        {"timing": {"profile": "benchmark", "min_green_s": 8, "cycle_calls": True}, "step_length_s": 0.5}
    assert _episode_settings(city, "safety", False)["timing"] == {"profile": "safety", "min_green_s": 8}
    assert _episode_settings(None, "reference", False) == {"timing": "reference"}  # a name alone stays a name
    assert _episode_settings(None, None, False) == {}

    bad = tmp_path / "bad.yaml"  # refused before SUMO or a worker starts: in this process
    for text, says in (("timing: {yellow_s: 1}\n", "timing.yellow_s"), ("shield: {nope: 1}\n", "shield.nope"),
                       ("- a list\n", "expected a mapping")):
        bad.write_text(text)
        r = signalwise_here("train", "-s", "single", "--config", str(bad), "--out", str(tmp_path / "u"))
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = signalwise_here("train", "--agent", "tabular", "--config", str(city), "--out", str(tmp_path / "u"))
    assert r.returncode == 2 and "--config: for --agent phase-score" in r.stderr
    assert not (tmp_path / "u").exists()
