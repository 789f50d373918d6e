"""What a killed training leaves can be resumed or run again in the same --out, and a model already there is not
silently replaced. The interruptions are the files a kill leaves between two writes; real SUMO runs on `single`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.cli_checks import refused

from signalwise.control.learning.agent import Hyper
from signalwise.control.learning.qtable import load_model
from signalwise.training.train import TrainConfig, train

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def tabular(out: Path, episodes: int) -> TrainConfig:
    return TrainConfig(scenario="single", episodes=episodes, seed=3, workers=1, batch=1, out=out, duration_s=120,
                       hyper=Hyper(guide_visits=10))


def same_tables(a: Path, b: Path) -> bool:
    ma, mb = load_model(a), load_model(b)
    return ma.meta["training"]["episodes"] == mb.meta["training"]["episodes"] and all(
        np.array_equal(ma.tables[n].q, mb.tables[n].q) and np.array_equal(ma.tables[n].visits, mb.tables[n].visits)
        for n in ma.tables)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> tuple[Path, str]:
    """1 episode, then --resume to 2: the training directory (copied, never changed, by each test) and its state
    at 1 episode."""
    out = tmp_path_factory.mktemp("resumed") / "t"
    train(tabular(out, 1))
    state_at_1 = (out / "train_state.json").read_text()
    train(tabular(out, 2), resume=True)
    return out, state_at_1


@pytest.mark.parametrize("left", ["the model ahead of its state", "no model"])
def test_a_resume_goes_on_from_the_checkpoint_its_state_names(resumed, tmp_path, left):
    trained, state_at_1 = resumed
    out = tmp_path / "t"
    shutil.copytree(trained, out)
    whole = tmp_path / "whole"
    shutil.copytree(out / "model", whole)
    # killed while installing the second round's model: the state still says 1 episode
    (out / "train_state.json").write_text(state_at_1)
    if left == "no model":
        shutil.rmtree(out / "model")
    train(tabular(out, 2), resume=True)
    assert same_tables(out / "model", whole)  # episode 1 trained once, on the table of episode 0
    assert json.loads((out / "train_state.json").read_text())["episodes_done"] == 2


def test_a_tabular_training_does_not_replace_a_model_already_in_its_out(tmp_path):
    out = tmp_path / "t"
    (out / "model").mkdir(parents=True)
    meta = '{"agent": "phase-score"}'
    (out / "model" / "meta.json").write_text(meta)
    r = subprocess.run([SIGNALWISE, "train", "--agent", "tabular", "-s", "single", "--guide-visits", "10",
                        "--episodes", "1", "--duration", "30", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    refused(r, "a model is already there")
    assert (out / "model" / "meta.json").read_text() == meta


@pytest.mark.slow
def test_a_killed_search_with_restarts_runs_again_into_its_directory(tmp_path):
    out = tmp_path / "ps"
    search = [SIGNALWISE, "train", "--agent", "phase-score", "-s", "single", "--generations", "1", "--popsize", "2",
              "--validation-seeds", "1", "--duration", "60", "--restarts", "2", "--out", str(out)]
    # killed in the second search: the first one's model written, the second one's episodes half-written
    first = out / "restarts" / "seed-1"
    (first / "model").mkdir(parents=True)
    (first / "model" / "meta.json").write_text('{"left": "by the killed search"}')
    (out / "restarts" / "seed-2" / "episodes" / "gen-0000").mkdir(parents=True)
    r = subprocess.run(search, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    model = load_model(out / "model")
    assert set(model.meta["selection"]["restarts"]["candidates"]) == {"1", "2"}
    assert load_model(first / "model").meta["training"]["seed"] == 1  # the first search ran again


@pytest.mark.slow
def test_ctrl_c_says_how_to_go_on(tmp_path):
    """It said 'error: interrupted' alone: a tabular training goes on with --resume, a search starts over."""
    import signal
    import time

    out = tmp_path / "t"
    proc = subprocess.Popen([SIGNALWISE, "train", "--agent", "tabular", "-s", "single", "--episodes", "40",
                             "--batch", "1", "--workers", "1", "--duration", "120", "--guide-visits", "10",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints").is_dir():  # a round is done: there is a checkpoint to go on from
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    last = [ln for ln in err.splitlines() if ln.startswith("error:")][-1]
    assert last == (f"error: interrupted; the training in {out} stops at its last checkpoint; the same command "
                    "with --resume goes on from there"), last
