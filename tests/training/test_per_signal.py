"""Per-signal weights (`signalwise train --per-signal`): each signal its own search, on real SUMO runs of corridor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.cli import signalwise as signalwise_here

from signalwise.control.learning.controller import controller_from_model
from signalwise.control.learning.phase_score import FEATURES, MAX_PRESSURE_WEIGHTS
from signalwise.control.learning.qtable import Model, load_model
from signalwise.core.types import Intersection, Movement, Phase, Timing
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import execute_run
from signalwise.training.policy_search import SearchConfig, run_policy_episode, search
from signalwise.training.search_starts import STARTS, model_start

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
CORRIDOR = ("J1", "J2", "J3", "J4", "J5")
#: a green that never ends of itself (only the shield's max green ends it)
HOLD_FOREVER = [1.0, -1.0, 0.0, 1e6, *([0.0] * (len(FEATURES) - 4))]


def crossing(tls_id: str) -> Intersection:
    movements = (Movement(0, "n_in_0", "s_out_0"), Movement(1, "e_in_0", "w_out_0"))
    phases = (Phase(0, "Gr", movements[:1]), Phase(1, "rG", movements[1:]))
    return Intersection(tls_id, phases, 2, movements, (), (), Timing(3.5, 2.0, (5.0,) * 2, (40.0,) * 2, 7.0, 12.0,
                                                                      40.0, 120.0, True))


def phase_score_model(policy: dict) -> Model:
    return Model(None, {}, {}, {}, {"agent": "phase-score", "policy": {"features": list(FEATURES), "period_s": 5.0,
                                                                        **policy}})


def test_a_signal_the_model_names_runs_its_own_weights_and_any_other_the_shared_ones():
    own = [1.0, -0.5, *([0.25] * (len(FEATURES) - 2))]
    model = phase_score_model({"weights": list(MAX_PRESSURE_WEIGHTS), "signal_weights": {"X": own}})
    assert list(controller_from_model(model, crossing("X")).weights) == own
    assert list(controller_from_model(model, crossing("Y")).weights) == list(MAX_PRESSURE_WEIGHTS)


@pytest.mark.slow
def test_weights_given_to_one_signal_change_that_signal_only(tmp_path):
    """One episode with J3 holding its greens to max green, against the same episode with the shared weights:
    J3's queue grows; J1, two signals away, barely moves."""
    base = {"key": "k", "weights": list(MAX_PRESSURE_WEIGHTS), "features": list(FEATURES), "measure": "count",
            "zone_m": 50.0, "sumo_seed": 3, "scenario": "corridor", "run": {}, "duration_s": 900.0, "period_s": 5.0,
            "sumocfg": None, "net": None, "routes": []}
    shared = run_policy_episode(json.dumps({**base, "run_dir": str(tmp_path / "a" / "run")}))
    held = run_policy_episode(json.dumps({**base, "run_dir": str(tmp_path / "b" / "run"),
                                          "signal_weights": {"J3": HOLD_FOREVER}}))
    assert set(shared["queues"]) == set(CORRIDOR)
    assert held["queues"]["J3"] > 1.5 * shared["queues"]["J3"] + 1.0, (shared["queues"], held["queues"])
    assert abs(held["queues"]["J1"] - shared["queues"]["J1"]) < 0.5 * (held["queues"]["J3"] - shared["queues"]["J3"])


@pytest.mark.slow
def test_a_per_signal_search_gives_every_signal_its_own_weights_and_validates_them(tmp_path):
    cfg = SearchConfig(scenario="corridor", generations=2, popsize=4, validation_seeds=1, seed=1, workers=2,
                       duration_s=600, out=tmp_path / "s", per_signal=True)
    model = search(cfg)
    sel, policy = model.meta["selection"], model.meta["policy"]
    assert sel["chosen"] == "learned" and sel["learned_avg_delay_s"] < sel["start_avg_delay_s"], sel
    assert set(policy["signal_weights"]) == set(CORRIDOR)
    weights = np.array(list(policy["signal_weights"].values()))
    assert np.all(weights[:, 0] == 1.0)  # in_halt stays the scale
    assert len({tuple(w) for w in weights}) == len(CORRIDOR)  # each searched on its own
    assert policy["weights"] == list(MAX_PRESSURE_WEIGHTS)  # the shared weights: the start
    # the start's validation episode, the learned one's, and 2 generations of 4
    assert model.meta["training"]["episodes"] == 1 + 1 + 2 * 4
    assert model.meta["training"]["method"] == "cma-es per signal"
    # the episodes read the signal graph: the corridor is a chain
    assert json.loads((tmp_path / "s" / "search.json").read_text())["neighbours"] == {
        "J1": ["J2"], "J2": ["J1", "J3"], "J3": ["J2", "J4"], "J4": ["J3", "J5"], "J5": ["J4"]}
    # the validation figure is what running the model gives: every signal read its own weights
    run = execute_run(RunConfig(scenario="corridor", controller=f"ql:{tmp_path / 's' / 'model'}", seed=sel["seeds"][0],
                                duration_s=600, record="lean", emissions=False), tmp_path / "check")
    assert run.metrics["network"]["avg_delay_s"] == pytest.approx(sel["learned_avg_delay_s"], abs=1e-3)
    # a search may start from it: each signal from its own weights
    start = model_start(tmp_path / "s" / "model")
    assert start.signal_vectors(FEATURES) == policy["signal_weights"]


@pytest.mark.slow
def test_train_per_signal_from_the_command_line_with_start_auto(tmp_path):
    p = subprocess.run([SIGNALWISE, "train", "--agent", "phase-score", "-s", "corridor", "--generations", "1",
                        "--popsize", "2", "--validation-seeds", "1", "--duration", "60", "--per-signal",
                        "--sigma", "0.5", "--neighbour-weight", "0.5", "--start", "auto", "--out", str(tmp_path / "t")],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    meta = load_model(tmp_path / "t" / "model").meta
    assert meta["training"]["config"]["per_signal"] and meta["training"]["config"]["sigma0"] == 0.5
    assert meta["training"]["config"]["neighbour_weight"] == 0.5
    # every start's validation runs say which signals there are: the chosen one is not run again
    assert meta["training"]["episodes"] == len(STARTS) * 1 + 1 * 2 + 1
    # refined weights are kept, and said to be kept, only when they won; else the model is the start, shared only
    learned = meta["selection"]["chosen"] == "learned"
    assert ("signal_weights" in meta["policy"]) == learned
    assert ("each of 5 signals has its own weights" in p.stdout) == learned
    for args, says in ((["--agent", "tabular", "--per-signal"], "--per-signal"),
                       (["--agent", "phase-score", "--sigma", "0"], "--sigma"),
                       (["--agent", "phase-score", "--neighbour-weight", "1"], "add --per-signal"),
                       (["--agent", "phase-score", "--hold-neighbours"], "add --per-signal"),
                       (["--agent", "phase-score", "--per-signal", "--neighbour-weight", "-1"], "0 or more")):
        bad = signalwise_here("train", *args, "--out", str(tmp_path / "u"))  # refused before any episode: here
        assert bad.returncode == 2 and says in bad.stderr and "Traceback" not in bad.stderr, (args, bad.stderr)


@pytest.mark.slow
def test_the_neighbours_weight_changes_what_each_signals_search_is_told(tmp_path):
    """CMA-ES ranks its candidates, so one generation from the same seed moves a signal's mean differently
    only if its candidates rank differently. Scored with its neighbours' queues, some signal's do; the same
    settings again give the same means."""
    from signalwise.training.executors import make_executor
    from signalwise.training.per_signal import search_per_signal

    chain = {"J1": ("J2",), "J2": ("J1", "J3"), "J3": ("J2", "J4"), "J4": ("J3", "J5"), "J5": ("J4",)}
    executor = make_executor(None, 2)
    try:
        means = {}
        for name, weight in (("own", 0.0), ("with-neighbours", 1.0), ("again", 1.0)):
            cfg = SearchConfig(scenario="corridor", generations=1, popsize=4, seed=1, duration_s=300,
                               out=tmp_path / name, per_signal=True, neighbour_weight=weight)
            means[name], history, episodes = search_per_signal(cfg, FEATURES, list(MAX_PRESSURE_WEIGHTS), chain,
                                                               executor, tmp_path / name)
            assert len(history) == 1 and episodes == 4
    finally:
        executor.close()
    assert means["with-neighbours"] == means["again"]
    assert any(means["own"][tls] != means["with-neighbours"][tls] for tls in CORRIDOR)


def test_a_negative_neighbour_weight_or_one_without_per_signal_is_refused_before_any_episode(tmp_path):
    from signalwise.training.train import TrainingError

    for kw in ({"per_signal": True, "neighbour_weight": -1.0}, {"neighbour_weight": 0.5}):
        with pytest.raises(TrainingError, match="neighbour_weight"):
            search(SearchConfig(scenario="corridor", out=tmp_path / "x", **kw))
    assert not (tmp_path / "x" / "episodes").exists()


def test_colour_classes_never_put_two_neighbours_together_and_cover_every_signal():
    from signalwise.training.per_signal import colour_classes

    grid = {f"{r}{c}": tuple(f"{r + dr}{c + dc}" for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
                             if 0 <= r + dr < 3 and 0 <= c + dc < 3) for r in range(3) for c in range(3)}
    triangle = {"a": ("b", "c"), "b": ("a", "c"), "c": ("a", "b"), "d": ()}
    for graph, classes in ((grid, 2), (triangle, 3)):
        groups = colour_classes(graph)
        assert len(groups) == classes and sorted(t for g in groups for t in g) == sorted(graph)
        assert all(o not in g for g in groups for t in g for o in graph[t])
    assert colour_classes(grid) == colour_classes(dict(reversed(grid.items())))  # the same classes every time


@pytest.mark.slow
def test_holding_the_neighbours_runs_a_generation_once_per_colour_class(tmp_path):
    """The corridor's chain takes two classes (J2, J4 and J1, J3, J5): a generation of 2 runs 4 episodes (the
    count is of the episodes the search ran)."""
    cfg = SearchConfig(scenario="corridor", generations=1, popsize=2, validation_seeds=1, seed=1, workers=2,
                       duration_s=60, out=tmp_path / "h", per_signal=True, hold_neighbours=True, neighbour_weight=1.0)
    model = search(cfg)
    assert model.meta["training"]["episodes"] == 1 + 1 + 1 * 2 * 2
    assert model.meta["training"]["config"]["hold_neighbours"] is True
    from signalwise.training.train import TrainingError

    with pytest.raises(TrainingError, match="hold_neighbours"):
        search(SearchConfig(scenario="corridor", out=tmp_path / "x", hold_neighbours=True))
