"""A model trained over its network's default window (no --duration) records that window, and `compare` and
`evaluate` compare runs with it: they said nothing, or named the window of the network the runs use as the one it
trained on. A model from before the window was recorded is said to be of unknown episode length, never guessed.

Real SUMO runs: `single`'s files as a user's .sumocfg whose window ends at 120 s."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.runtime.commands import note_model_conditions
from signalwise.runtime.config import RunConfig
from signalwise.sim.scenario import load
from signalwise.training.policy_search import SearchConfig, search

pytestmark = pytest.mark.slow  # a training and the runs that read its window: seconds each

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
SUMOCFG = """<configuration>
    <input><net-file value="my.net.xml"/><route-files value="my.rou.xml"/></input>
    <time><begin value="0"/><end value="120"/></time>
</configuration>
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, *args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """The network, a tabular model and a phase-score model, both trained over the .sumocfg's window."""
    root = tmp_path_factory.mktemp("window")
    sc = load("single")
    shutil.copy(sc.net_file, root / "my.net.xml")
    shutil.copy(sc.route_files[0], root / "my.rou.xml")
    (root / "my.sumocfg").write_text(SUMOCFG)
    r = cli("train", "--agent", "tabular", "--sumocfg", "my.sumocfg", "--episodes", "1", "--batch", "1",
            "--workers", "1", "--validation-seeds", "1", "--out", "tabular", cwd=root)
    assert r.returncode == 0, r.stderr
    search(SearchConfig(scenario=None, sumocfg=root / "my.sumocfg", generations=1, popsize=2, validation_seeds=1, seed=3,
                        workers=2, out=root / "search"))
    return root


def notes(capsys, root: Path, model: Path, **run) -> list[str]:
    """What `compare` says of the model before its runs, over `--net my.net.xml --routes my.rou.xml` (their
    window is SUMO's default hour, not the .sumocfg's 120 s)."""
    cfg = RunConfig(net=root / "my.net.xml", routes=[root / "my.rou.xml"], **run)
    capsys.readouterr()
    note_model_conditions(cfg, [f"ql:{model}"], [1000])
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("ql:")]


@pytest.mark.parametrize("trainer", ["tabular", "search"])
def test_the_model_records_the_window_it_trained_on_and_compare_says_when_runs_cover_another(root, capsys, trainer):
    model = root / trainer / "model"
    training = json.loads((model / "meta.json").read_text())["training"]
    assert training["window_s"] == [0.0, 120.0]
    assert notes(capsys, root, model, duration_s=60) == [
        f"ql: {model} trained on episodes of 120 s; these runs cover 60 s (--duration 120 runs the window it "
        "learned on)"]
    # without --duration the runs cover the network's hour: said too (it said nothing)
    assert notes(capsys, root, model) == [
        f"ql: {model} trained on episodes of 120 s; these runs cover 3600 s (--duration 120 runs the window it "
        "learned on)"]
    assert notes(capsys, root, model, duration_s=120) == []


def test_a_model_that_does_not_record_its_window_is_said_to_be_unknown(root, capsys, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(root / "tabular" / "model", old)
    meta = json.loads((old / "meta.json").read_text())
    meta["training"].pop("window_s", None)  # as a model trained before it was kept
    (old / "meta.json").write_text(json.dumps(meta))
    assert notes(capsys, root, old, duration_s=900) == [
        f"ql: {old} does not record the length of its training episodes (a model trained before it was kept); "
        "these runs cover 900 s"]  # it said: "over the network's whole window (3600 s here)", which was not it
    assert notes(capsys, root, old) == []


def test_evaluate_says_the_length_of_the_episodes_it_trained_on(root):
    r = cli("evaluate", "--model", "tabular/model", "--seeds", "1", "--first-seed", "900", "--duration", "60",
            "--workers", "2", "--out", "eval", cwd=root)
    assert r.returncode == 0, r.stderr
    assert "1 simulated min per run; the model trained on episodes of 2 min" in r.stdout, r.stdout
