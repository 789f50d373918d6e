"""Scaled demand: SUMO's --scale for a run, and training episodes that meet heavier hours than the routes hold."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import signalwise as signalwise_here

from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import sumo_options
from signalwise.runtime.run import execute_run
from signalwise.sim.backend import build_command
from signalwise.sim.scenario import load
from signalwise.training.policy_search import SearchConfig, search, training_overrides
from signalwise.training.train import TrainingError

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def test_the_scale_reaches_sumo_only_when_it_changes_the_demand():
    scenario = load("single")
    plain = build_command(sumo_options(RunConfig(scenario="single"), scenario))
    heavier = build_command(sumo_options(RunConfig(scenario="single", demand_scale=1.25), scenario))
    assert "--scale" not in plain
    assert heavier[heavier.index("--scale") + 1] == "1.25"
    with pytest.raises(ValueError, match="demand_scale"):
        RunConfig(scenario="single", demand_scale=0)


def test_a_run_at_a_larger_scale_inserts_more_vehicles_on_the_same_seed(tmp_path):
    def vehicles(scale: float) -> int:
        cfg = RunConfig(scenario="single", controller="fixed", seed=3, duration_s=600, demand_scale=scale,
                        record="lean", emissions=False)
        return execute_run(cfg, tmp_path / f"x{scale}").metrics["network"]["vehicles_total"]

    plain, half_more = vehicles(1.0), vehicles(1.5)
    assert plain > 50
    assert 1.3 * plain < half_more < 1.7 * plain


def test_each_training_seed_of_a_generation_runs_its_own_scale():
    cfg = SearchConfig(scenario="single", seeds_per_generation=3, demand_scales=(1.0, 1.2),
                       run={"timing": "safety"})
    assert [training_overrides(cfg, k)["run"] for k in range(3)] == [
        {"timing": "safety", "demand_scale": 1.0}, {"timing": "safety", "demand_scale": 1.2},
        {"timing": "safety", "demand_scale": 1.0}]
    assert training_overrides(SearchConfig(scenario="single"), 0) == {}


@pytest.mark.slow
def test_a_search_on_heavier_demand_meets_more_delay_and_validates_on_the_routes_as_written(tmp_path):
    """The same search (same candidates, same seeds) twice: with the demand doubled the candidates' episodes
    are slower, while the validation, which runs the routes as written, gives the same figure for the start."""
    def run(name: str, scales: tuple[float, ...]):
        cfg = SearchConfig(scenario="single", generations=1, popsize=2, validation_seeds=1, seed=1, workers=2,
                           duration_s=600, out=tmp_path / name, demand_scales=scales)
        return search(cfg).meta

    plain, doubled = run("plain", ()), run("doubled", (2.0,))
    assert doubled["training"]["config"]["demand_scales"] == [2.0]
    history = {name: json.loads((tmp_path / name / "search.json").read_text())["history"][0]
               for name in ("plain", "doubled")}
    assert history["doubled"]["seeds"] == history["plain"]["seeds"]
    assert history["doubled"]["mean_avg_delay_s"] > 1.2 * history["plain"]["mean_avg_delay_s"]
    assert doubled["selection"]["start_avg_delay_s"] == plain["selection"]["start_avg_delay_s"]
    with pytest.raises(TrainingError, match="demand scale"):
        search(SearchConfig(scenario="single", out=tmp_path / "bad", demand_scales=(0.0,)))


def _start(*args: str) -> subprocess.Popen:
    """`signalwise ARGS` as a process of its own, started now: the test goes on beside it."""
    return subprocess.Popen([SIGNALWISE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(p: subprocess.Popen, timeout_s: float = 300) -> subprocess.CompletedProcess:
    try:
        out, err = p.communicate(timeout=timeout_s)
    finally:
        if p.poll() is None:
            p.kill()
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@pytest.mark.slow
def test_train_takes_the_scales_on_the_command_line_and_refuses_a_bad_one(tmp_path):
    from signalwise.control.learning.qtable import load_model

    training = _start("train", "--agent", "phase-score", "-s", "single", "--generations", "1", "--popsize", "2",
                      "--validation-seeds", "1", "--duration", "60", "--seeds-per-generation", "2", "--demand-scale",
                      "1", "--demand-scale", "1.3", "--out", str(tmp_path / "t"))
    try:  # refused before anything runs, in this process: beside the training
        for agent, scale in (("phase-score", "0"), ("tabular", "1.2")):
            bad = signalwise_here("train", "--agent", agent, "--demand-scale", scale, "--out", str(tmp_path / "u"))
            assert bad.returncode == 2 and "--demand-scale" in bad.stderr and "Traceback" not in bad.stderr
    finally:
        ok = _result(training, 600)
    assert ok.returncode == 0, ok.stderr
    model = tmp_path / "t" / "model"
    assert load_model(model).meta["training"]["config"]["demand_scales"] == [1.0, 1.3]
    # evaluated on the routes as written unless told: the training's scales are not the held-out traffic. The two
    # evaluations run side by side, the scaled one on a copy (each appends to its model's meta.json)
    shutil.copytree(model, tmp_path / "copy")
    evaluations = {scale: _start("evaluate", "--model", str(where), "--seeds", "1", "--duration", "300", "--workers",
                                 "1", "--out", str(tmp_path / f"ev{scale}"),
                                 *(["--demand-scale", f"{scale}"] if scale else []))
                   for scale, where in ((None, model), (1.5, tmp_path / "copy"))}
    for scale, p in evaluations.items():
        ev = _result(p)
        assert ev.returncode == 0, ev.stderr
        assert ("demand ×1.5" in ev.stdout) == bool(scale)
    [plain] = load_model(model).meta["evaluations"]
    [heavier] = load_model(tmp_path / "copy").meta["evaluations"]
    assert "demand_scale" not in plain and heavier["demand_scale"] == 1.5
    assert heavier["seeds"] == plain["seeds"]  # the same held-out traffic, only scaled
    assert heavier["baseline_avg_delay_s"] > plain["baseline_avg_delay_s"]


@pytest.mark.slow
def test_run_and_compare_take_the_scale_and_say_so(tmp_path):
    # the run and the comparison are independent processes: they run side by side
    run = _start("run", "-s", "single", "--controller", "fixed", "--duration", "120", "--demand-scale", "1.5",
                 "--record", "lean", "--no-emissions", "--run-dir", str(tmp_path / "run"))
    cmp = _start("compare", "-s", "single", "--controllers", "fixed", "--seeds", "1", "--duration", "120",
                 "--demand-scale", "1.5", "--workers", "1", "--out", str(tmp_path / "cmp"))
    try:  # refused before anything runs, in this process: beside them
        bad = signalwise_here("compare", "-s", "single", "--demand-scale", "-1", "--out", str(tmp_path / "x"))
        assert bad.returncode == 2 and "demand_scale" in bad.stderr and "Traceback" not in bad.stderr
    finally:
        run, cmp = _result(run), _result(cmp)
    assert run.returncode == 0, run.stderr
    assert "demand ×1.5" in run.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["demand_scale"] == 1.5
    assert cmp.returncode == 0, cmp.stderr
    compared = json.loads(next((tmp_path / "cmp").glob("fixed-s1/metrics.json")).read_text())
    # the same seed and scale: the same traffic as the single run
    assert compared["network"]["vehicles_total"] == metrics["network"]["vehicles_total"]
