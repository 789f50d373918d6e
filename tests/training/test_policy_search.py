"""The phase-score policy search on real SUMO runs: it improves on its start, and the CLI says what it ran."""

from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.cli import signalwise as signalwise_here
from support.networks import generated_network_with_pockets

from signalwise.control.learning.phase_score import MAX_PRESSURE_WEIGHTS
from signalwise.control.learning.qtable import load_model, save_model
from signalwise.control.learning.shipped import shipped_model_path
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.training.policy_search import SearchConfig, search

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, "train", "--generations", "1", "--popsize", "2", "--validation-seeds", "1",
                           "--duration", "60", *args], capture_output=True, text=True, timeout=600)


# A `signalwise train` process costs about 5 s of CPU, most of it imports (cma brings scipy.stats and
# matplotlib): where two tests can read one training, they share it.
@pytest.fixture(scope="module")
def own_network(tmp_path_factory):
    """SUMO's generator's network with turn pockets shorter than a car, and a model trained on its files under the
    benchmark profile with --shared-lanes split (the profile's own is skip): (net, trips, process, model)."""
    folder = tmp_path_factory.mktemp("own")
    net, trips = generated_network_with_pockets(folder)
    p = _train("--agent", "phase-score", "--net", str(net), "--routes", str(trips), "--measure", "density",
               "--shared-lanes", "split", "--timing", "benchmark", "--out", str(folder / "t"))
    return net, trips, p, folder / "t" / "model"


@pytest.fixture(scope="module")
def restarts_with_cycle_calls(tmp_path_factory):
    """Two restarts whose episodes all run with --cycle-calls, no --agent (phase-score is the default): (process,
    training directory)."""
    out = tmp_path_factory.mktemp("restarts") / "t"
    return _train("-s", "single", "--restarts", "2", "--cycle-calls", "--out", str(out)), out


@pytest.mark.slow
def test_a_short_search_on_single_beats_its_max_pressure_start(tmp_path):
    # the first off-peak and the whole 20-minute peak, where holds matter, without the last off-peak (~30 % of
    # this test's CPU). Search seeds 1-10 at 2400 s: learned won on 9 (seed 1 by 5.9 %); the whole hour, 6 of 1-8
    cfg = SearchConfig(scenario="single", generations=2, popsize=4, seeds_per_generation=1, validation_seeds=2,
                       seed=1, workers=2, duration_s=2400, out=tmp_path / "s")
    model = search(cfg)
    sel = model.meta["selection"]
    # validation seeds are neither training nor held-out seeds; the learned weights win there
    assert sel["chosen"] == "learned", sel
    assert sel["learned_avg_delay_s"] < sel["start_avg_delay_s"]
    assert model.meta["policy"]["weights"] != list(MAX_PRESSURE_WEIGHTS)
    assert model.meta["training"]["violations"] == 0
    assert not set(sel["seeds"]) & set(model.meta["training"]["seeds"])
    assert load_model(tmp_path / "s" / "model").meta["policy"] == model.meta["policy"]
    # the lane before a turn pocket counts as the default max-pressure counts it under the safety profile
    assert model.meta["policy"]["shared_lanes"] == "split"


def test_the_shipped_model_runs_under_the_shield_with_no_violation(tmp_path):
    path = shipped_model_path("single")
    cfg = RunConfig(scenario="single", controller=f"ql:{path}", duration_s=900, emissions=False, out_dir=tmp_path)
    m = execute_run(cfg, tmp_path / "run").metrics
    assert m["safety"]["violations"] == 0 and m["safety"]["checked"]  # rules it checked, each with a count
    assert m["controller_ran"] and m["network"]["fallback_fraction"] < 0.05


def test_a_bare_ql_on_a_built_in_runs_the_shipped_model_and_says_so(tmp_path):
    p = subprocess.run([SIGNALWISE, "run", "-s", "single", "-c", "ql", "--duration", "60", "--no-emissions",
                        "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert f"using the model shipped for 'single' ({shipped_model_path('single')})" in p.stderr
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert str(shipped_model_path("single")) in config  # the run records which model it ran


def test_a_bare_ql_on_your_own_network_is_an_error(tmp_path):
    single = Path(shipped_model_path("single")).parents[3] / "sim" / "scenarios" / "single"
    cfgs = sorted(single.glob("*.sumocfg"))
    p = subprocess.run([SIGNALWISE, "run", "--sumocfg", str(cfgs[0]), "-c", "ql", "--duration", "60",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)  # probes the network
    assert p.returncode == 2 and "no model given" in p.stderr and "Traceback" not in p.stderr


def test_train_refuses_an_unknown_agent_in_one_line():
    p = signalwise_here("train", "--agent", "dqn")
    assert p.returncode == 2 and "--agent must be phase-score or tabular" in p.stderr


def test_train_phase_score_from_the_command_line(tmp_path):
    p = subprocess.run([SIGNALWISE, "train", "--agent", "phase-score", "-s", "single", "--generations", "1",
                        "--popsize", "2", "--validation-seeds", "1", "--duration", "60", "--timing", "benchmark",
                        "--out", str(tmp_path / "t")], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "weights: in_halt +1" in p.stdout and "validation (seeds [601000]" in p.stdout
    meta = load_model(tmp_path / "t" / "model").meta
    assert meta["agent"] == "phase-score" and meta["training"]["run"] == {"timing": "benchmark"}
    assert meta["training"]["episodes"] == 1 * 2 + 2 * 1
    # measured over max-pressure's lane zones under the profile, and the model says so
    assert meta["policy"]["zone_m"] == 50.0 and "measured over 50 m lane zones" in p.stdout
    assert meta["policy"]["shared_lanes"] == "split"  # as max-pressure's own, under RESCO's rules too
    model = tmp_path / "t" / "model"
    assert f"next: signalwise evaluate --model {model}  (held-out seeds against max-pressure); " \
           f"signalwise run -s single -c ql:{model} --timing benchmark; signalwise models add {model}" in p.stdout
    bad = signalwise_here("train", "--agent", "phase-score", "--timing", "rush-hour", "--out", str(tmp_path / "u"))
    assert bad.returncode == 2 and "rush-hour" in bad.stderr and "Traceback" not in bad.stderr
    bad = signalwise_here("train", "--agent", "phase-score", "--zone-m", "-1", "--out", str(tmp_path / "v"))
    assert bad.returncode == 2 and "--zone-m" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_train_with_shared_lanes_split_on_a_network_with_turn_pockets(own_network, tmp_path):
    """SUMO's generator makes pockets shorter than a car: the model trained with the split (asked for against the
    benchmark profile's skip) reads the lane before each pocket, records it, and runs on it under the shield; the
    same weights with the lanes skipped decide otherwise."""
    net, trips, p, trained = own_network
    assert p.returncode == 0, p.stderr
    assert "the lane before a turn pocket counts for each pocket, split" in p.stdout
    model = load_model(trained)
    assert model.meta["policy"]["shared_lanes"] == "split" and model.meta["training"]["violations"] == 0
    model.meta["policy"]["shared_lanes"] = "skip"
    save_model(tmp_path / "skip", model)
    states = {}
    for name, path in (("split", trained), ("skip", tmp_path / "skip")):
        # they first decide apart at 72 s; 180 s (not 300) leaves a margin past it
        cfg = RunConfig(net=net, routes=[trips], controller=f"ql:{path}", duration_s=180, emissions=False,
                        record="lean", out_dir=tmp_path)
        result = execute_run(cfg, tmp_path / f"run-{name}")
        assert result.metrics["safety"]["violations"] == 0 and result.metrics["controller_ran"]
        states[name] = (result.run_dir / "signal_states.csv").read_text()
    assert states["split"] != states["skip"]
    bad = signalwise_here("train", "--agent", "phase-score", "--shared-lanes", "all", "--out", str(tmp_path / "u"))
    assert bad.returncode == 2 and "--shared-lanes must be skip or split" in bad.stderr


@pytest.mark.slow
def test_train_with_cycle_calls_records_the_rule_its_episodes_ran_under(restarts_with_cycle_calls, tmp_path):
    p, out = restarts_with_cycle_calls  # no --agent: the phase-score search is the default
    assert p.returncode == 0, p.stderr  # every episode's audit held the shield to its calls
    meta = load_model(out / "model").meta
    assert meta["agent"] == "phase-score"
    assert meta["training"]["run"] == {"timing": {"profile": "safety", "cycle_calls": True}}
    tabular = signalwise_here("train", "--agent", "tabular", "--cycle-calls", "--out", str(tmp_path / "u"))
    assert tabular.returncode == 2 and "--cycle-calls" in tabular.stderr and "Traceback" not in tabular.stderr


@pytest.mark.slow
def test_restarts_keep_the_search_that_validates_best_on_common_seeds(restarts_with_cycle_calls, tmp_path):
    """Two searches (seeds 1 and 2) each with its own training and validation seeds; then both models run on
    the first one's validation seed and the lower delay is the model. The second search's figure there is
    what a run of its model on that seed gives."""
    p, out = restarts_with_cycle_calls
    assert p.returncode == 0, p.stderr
    meta = load_model(out / "model").meta
    r = meta["selection"]["restarts"]
    assert r["seeds"] == [601000] and set(r["candidates"]) == {"1", "2"}
    assert r["chosen"] == min((d, int(seed)) for seed, d in r["candidates"].items())[1]
    assert f"restarts (validation seeds [601000], avg delay): seed 1 {r['candidates']['1']:.1f} s" in p.stdout
    searched = {seed: load_model(out / "restarts" / f"seed-{seed}" / "model").meta for seed in (1, 2)}
    assert searched[1]["selection"]["seeds"] == [601000] and searched[2]["selection"]["seeds"] == [602000]
    assert meta["policy"] == searched[r["chosen"]]["policy"]
    first = searched[1]["selection"]
    assert r["candidates"]["1"] == first[f"{first['chosen']}_avg_delay_s"]  # not run again
    second = execute_run(RunConfig.model_validate({  # under the episodes' run settings (--cycle-calls)
        **meta["training"]["run"], "scenario": "single", "controller": f"ql:{out / 'restarts' / 'seed-2' / 'model'}",
        "seed": 601000, "duration_s": 60, "record": "lean", "emissions": False}), tmp_path / "check")
    assert r["candidates"]["2"] == pytest.approx(second.metrics["network"]["avg_delay_s"], abs=1e-3)
    assert meta["training"]["episodes"] == 2 * (1 * 2 + 2 * 1) + 1
    assert meta["training"]["seed"] == 1 and meta["training"]["config"]["restarts"] == 2
    for agent, restarts in (("phase-score", "0"), ("tabular", "3")):
        bad = signalwise_here("train", "--agent", agent, "--restarts", restarts, "--out", str(tmp_path / "u"))
        assert bad.returncode == 2 and "--restarts" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_evaluate_runs_where_and_how_the_model_trained_unless_told_otherwise(own_network, tmp_path):
    """A model trained on your own network (--net/--routes) under the benchmark profile is evaluated on those
    files under that profile when no network or profile is given; --timing and --scenario override."""
    import yaml

    net, routes, p, trained = own_network
    assert p.returncode == 0, p.stderr

    def evaluate(name, *more):
        # each on its own copy of the model, so the three (independent) run side by side and each reads back
        # its own evaluation
        model = tmp_path / name / "model"
        shutil.copytree(trained, model)
        out = tmp_path / name / "eval"
        r = subprocess.run([SIGNALWISE, "evaluate", "--model", str(model), "--seeds", "1", "--duration", "60",
                            "--workers", "2", "--out", str(out), *more], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        ran = yaml.safe_load((out / "max-pressure-s1" / "config.yaml").read_text())
        return r.stdout, ran, load_model(model).meta["evaluations"][-1]

    with ThreadPoolExecutor(3) as pool:
        default, timing, scenario = pool.map(lambda more: evaluate(*more),
                                             [("default",), ("timing", "--timing", "safety"),
                                              ("scenario", "--scenario", "single")])
    stdout, ran, ev = default
    assert "under the benchmark timing profile" in stdout
    assert ev["timing"] == "benchmark" and ev["scenario"] == "net.net.xml"
    assert Path(ran["net"]) == net.resolve() and ran["timing"]["profile"] == "benchmark"
    stdout, ran, ev = timing
    assert ev["timing"] == "safety" and ran["timing"]["profile"] == "safety" and Path(ran["net"]) == net.resolve()
    _, ran, ev = scenario
    assert ev["scenario"] == "single" and ran["scenario"] == "single" and ev["timing"] == "benchmark"
    bad = signalwise_here("evaluate", "--model", str(trained), "--scenario", "single", "--net", str(net),
                          "--routes", str(routes))
    assert bad.returncode == 2 and "one network" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_run_and_compare_say_when_a_model_trained_under_another_timing_profile(tmp_path):
    """The shipped single model trained under the safety profile: running it under the benchmark profile says so
    (once, in run and in compare); under its own profile nothing is said."""
    model = shipped_model_path("single")
    calls = tmp_path / "calls.yaml"
    calls.write_text("timing:\n  cycle_calls: true\n")
    commands = {"run-benchmark": ("run", "-s", "single", "-c", f"ql:{model}", "--timing", "benchmark"),
                "compare-benchmark": ("compare", "-s", "single", "--controllers", f"ql:{model},max-pressure",
                                      "--seeds", "1", "--timing", "benchmark", "--workers", "1"),
                "run-safety": ("run", "-s", "single", "-c", f"ql:{model}"),
                "run-calls": ("run", "-s", "single", "-c", f"ql:{model}", "--config", str(calls))}

    def cli(name):
        p = subprocess.run([SIGNALWISE, *commands[name], "--duration", "60", "--out", str(tmp_path / name)],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        return p.stderr

    with ThreadPoolExecutor(len(commands)) as pool:  # independent processes: side by side
        said = dict(zip(commands, pool.map(cli, commands), strict=True))
    assert said["run-benchmark"].count(
        f"ql: {model} trained under the safety timing profile; this run is under benchmark") == 1
    assert said["compare-benchmark"].count("trained under the safety timing profile") == 1
    assert "timing profile" not in said["run-safety"]
    # trained with the cycle bound from the last green: a run whose bound counts from calls says so too
    assert said["run-calls"].count("trained with the cycle bound counting from each link's last green") == 1
    assert "cycle_calls: true" in said["run-calls"]
