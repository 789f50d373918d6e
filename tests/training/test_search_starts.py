"""`signalwise train --start`: the named start reaches the search and the model's record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import signalwise as signalwise_here

from signalwise.control.learning.phase_score import FEATURES, PhaseScoreController, max_pressure_weights
from signalwise.control.learning.qtable import load_model
from signalwise.control.learning.shipped import shipped_model_path
from signalwise.core.types import (
    Intersection,
    LaneState,
    Movement,
    Observation,
    Phase,
    SignalStatus,
    SourceHealth,
    Timing,
)
from signalwise.training.policy_search import run_policy_episode
from signalwise.training.search_starts import AUTO_START, DEFAULT_START, STARTS, search_start

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def test_the_default_start_is_plain_max_pressure():
    start = search_start(DEFAULT_START)
    assert start.features() == FEATURES
    assert start.vector(FEATURES) == max_pressure_weights(FEATURES)


def test_max_pressure_pays_changes_a_young_green_that_max_pressure_hold_keeps():
    """Both make a change pay for its clearance; only max-pressure-hold keeps a young green against a larger
    queue elsewhere."""
    moves = (Movement(0, "ns", "out_s"), Movement(1, "ew", "out_w"))
    inter = Intersection("X", (Phase(0, "Gr", (moves[0],)), Phase(1, "rG", (moves[1],))), 2, moves, (), (),
                         Timing(3.0, 1.0, (5, 5), (60, 60), 7, 14.5, 40, 150))

    def decide(name, ns_veh, ew_veh, green_s):
        lanes = {"ns": LaneState(ns_veh, ns_veh, 0, 0, 0), "ew": LaneState(ew_veh, ew_veh, 0, 0, 0)}
        obs = Observation(100.0, "X", lanes, signal=SignalStatus(0, "green", green_s), sources=(SourceHealth("lanes"),))
        start = STARTS[name]
        return PhaseScoreController(inter, start.vector(FEATURES), features=FEATURES).decide(obs).phase_index

    assert decide("max-pressure-hold", 2, 10, 5.0) is None and decide("max-pressure-pays", 2, 10, 5.0) == 1
    # the clearance is paid for by both: a queue not half again the green's keeps it
    assert decide("max-pressure-pays", 8, 10, 30.0) is None and decide("max-pressure-hold", 8, 10, 30.0) is None
    assert decide("max-pressure-pays", 6, 10, 30.0) == 1


def test_a_start_weighing_a_detector_feature_searches_it_beside_the_default_features():
    start = search_start("actuated")
    assert start.features() == (*FEATURES, "hold_gap")
    assert start.vector(start.features())[-1] == STARTS["actuated"].weights["hold_gap"]
    assert start.period_s == 1.0


def test_an_added_feature_is_searched_from_zero_and_a_weighed_one_keeps_its_weight():
    start = search_start("actuated").adding(["switch_halt_red", "hold_gap"])
    assert start.features() == (*FEATURES, "hold_gap", "switch_halt_red")
    assert start.vector(start.features())[-2:] == (STARTS["actuated"].weights["hold_gap"], 0.0)
    with pytest.raises(ValueError, match="unknown feature.*waiting_s.*switch_red_min"):
        search_start(DEFAULT_START).adding(["waiting_s"])
    p = signalwise_here("train", "--agent", "phase-score", "--add-feature", "waiting_s")
    assert p.returncode == 2 and p.stderr.startswith("error: unknown feature(s) waiting_s")
    assert len(p.stderr.strip().splitlines()) == 1


def test_an_unknown_start_is_a_one_line_error_naming_the_known_ones():
    with pytest.raises(ValueError, match="max-pressure-hold"):
        search_start("webster")
    p = signalwise_here("train", "--agent", "phase-score", "--start", "webster")
    assert p.returncode == 2 and "unknown --start 'webster'" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert all(name in p.stderr for name in (*STARTS, AUTO_START))


@pytest.mark.slow
def test_train_starts_the_search_where_start_says(tmp_path):
    p = subprocess.run([SIGNALWISE, "train", "--agent", "phase-score", "-s", "single", "--generations", "1",
                        "--popsize", "2", "--validation-seeds", "1", "--duration", "60",
                        "--start", "max-pressure-hold", "--add-feature", "switch_halt_red", "--out", str(tmp_path / "t")],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "the start, the weights of max-pressure-hold (" in " ".join(p.stdout.split())  # the summary
    meta = load_model(tmp_path / "t" / "model").meta
    config = meta["training"]["config"]
    features = (*FEATURES, "switch_halt_red")  # the added feature searched from 0
    start = STARTS["max-pressure-hold"]
    assert config["start_name"] == "max-pressure-hold"
    assert config["start"] == [*start.vector(FEATURES), 0.0] and config["features"] == list(features)
    assert config["period_s"] == start.period_s
    assert meta["policy"]["features"] == list(features)
    if meta["selection"]["chosen"] == "start":  # the model is the start itself when the search did not beat it
        assert meta["policy"]["weights"] == [*start.vector(FEATURES), 0.0]


@pytest.mark.slow
def test_auto_runs_every_start_on_the_validation_seeds_and_searches_from_the_lowest(tmp_path):
    p = subprocess.run([SIGNALWISE, "train", "--agent", "phase-score", "-s", "single", "--generations", "1",
                        "--popsize", "2", "--validation-seeds", "1", "--duration", "300", "--workers", "2",
                        "--start", "auto", "--out", str(tmp_path / "t")],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    meta = load_model(tmp_path / "t" / "model").meta
    sel, config = meta["selection"], meta["training"]["config"]
    starts = sel["starts"]
    delays = starts["candidates"]
    assert list(delays) == list(STARTS)  # every start, each with its own figure
    chosen = min(delays, key=delays.get)
    assert starts["chosen"] == chosen and len(set(delays.values())) > 1  # the figures differ: the choice means something
    # the search started there: the chosen start's weights, features and period
    begin = STARTS[chosen]
    assert config["start_name"] == chosen and config["features"] == list(begin.features())
    assert config["start"] == list(begin.vector(begin.features())) and config["period_s"] == begin.period_s
    # the final validation compares the learned weights against that start's own figure, on the same seeds
    assert sel["start_avg_delay_s"] == delays[chosen]
    assert meta["training"]["episodes"] == 1 * 2 + len(STARTS) * 1 + 1
    # each figure is what that start's weights give on the validation seed, run on their own
    for name, start in STARTS.items():
        got = run_policy_episode(json.dumps({
            "key": name, "weights": list(start.vector(start.features())), "features": list(start.features()),
            "measure": "count", "sumo_seed": sel["seeds"][0], "scenario": "single", "run": {}, "duration_s": 300,
            "period_s": start.period_s, "run_dir": str(tmp_path / "check" / name), "sumocfg": None, "net": None,
            "routes": [], "zone_m": config["zone_m"]}))
        assert round(got["avg_delay_s"], 3) == delays[name], name
    text = " ".join((p.stderr + p.stdout).split())  # the starts (stderr, wrapped by rich), the summary (stdout)
    assert all(f"{name} {d:.1f} s" in text for name, d in delays.items())
    assert f"-> the search starts at the weights of {chosen}" in text and f"the start, the weights of {chosen} (" in text


@pytest.mark.slow
def test_period_overrides_the_starts_decision_period_and_the_model_keeps_it(tmp_path):
    p = subprocess.run([SIGNALWISE, "train", "--agent", "phase-score", "-s", "single", "--generations", "1",
                        "--popsize", "2", "--validation-seeds", "1", "--duration", "60", "--period", "2",
                        "--out", str(tmp_path / "t")], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    meta = load_model(tmp_path / "t" / "model").meta
    assert STARTS[DEFAULT_START].period_s != 2
    assert meta["training"]["config"]["period_s"] == 2 and meta["policy"]["period_s"] == 2
    bad = signalwise_here("train", "--agent", "phase-score", "--period", "0")
    assert bad.returncode == 2 and "--period must be above 0" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_a_phase_score_model_is_a_start_with_its_weights_period_and_measure(tmp_path):
    shipped = shipped_model_path("single")
    policy = json.loads((Path(shipped) / "meta.json").read_text())["policy"]
    for where in (shipped, Path(shipped) / "meta.json"):
        start = search_start(str(where))
        assert start.vector(tuple(policy["features"])) == tuple(policy["weights"])
        assert (start.period_s, start.measure) == (policy["period_s"], policy["measure"])
    (tmp_path / "tabular").mkdir()
    (tmp_path / "tabular" / "meta.json").write_text(json.dumps({"agent": "tabular", "tables": {}}))
    with pytest.raises(ValueError, match="a tabular model"):
        search_start(str(tmp_path / "tabular"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no meta.json"):
        search_start(str(tmp_path / "empty"))


@pytest.mark.slow
def test_train_fine_tunes_a_model_given_as_start(tmp_path):
    shipped = shipped_model_path("single")
    policy = json.loads((Path(shipped) / "meta.json").read_text())["policy"]
    args = [SIGNALWISE, "train", "--agent", "phase-score", "-s", "single", "--generations", "1", "--popsize", "2",
            "--validation-seeds", "1", "--duration", "60", "--timing", "benchmark", "--start", str(shipped)]
    wrong = subprocess.run([*args, "--out", str(tmp_path / "w")], capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 2 and "add --measure density" in wrong.stderr and "Traceback" not in wrong.stderr
    p = subprocess.run([*args, "--measure", "density", "--out", str(tmp_path / "t")], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    meta = load_model(tmp_path / "t" / "model").meta
    config = meta["training"]["config"]
    assert config["start_name"] == str(shipped) and config["period_s"] == policy["period_s"]
    assert dict(zip(config["features"], config["start"], strict=True)) == \
        dict(zip(policy["features"], policy["weights"], strict=True))
    if meta["selection"]["chosen"] == "start":  # kept when the short search did not beat it on validation
        assert meta["policy"]["weights"] == policy["weights"]


def test_a_start_model_with_too_few_weights_says_so_in_its_own_terms(tmp_path):
    """It said 'zip() argument 2 is shorter than argument 1'."""
    import shutil

    from signalwise.training.search_starts import model_start

    model = tmp_path / "m"
    shutil.copytree(shipped_model_path("single"), model)
    meta = json.loads((model / "meta.json").read_text())
    meta["policy"]["weights"] = meta["policy"]["weights"][:3]
    (model / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"not a readable model \(3 weights for \d+ features\)"):
        model_start(model)
    full = json.loads((shipped_model_path("single") / "meta.json").read_text())["policy"]["weights"]
    meta["policy"].update(weights=full, signal_weights={"C": full[:3]})
    (model / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"not a readable model \(3 weights at signal C for \d+ features\)"):
        model_start(model)
