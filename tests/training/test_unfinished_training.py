"""An interrupted tabular training leaves checkpoints for --resume and no finished-looking OUT/model (as a
phase-score search does); a checkpoint says it holds fewer episodes than asked, and `run` warns of it and
`models add` refuses it unless told. Real SUMO episodes on `single`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import signalwise

from signalwise.control.learning.agent import Hyper
from signalwise.control.learning.qtable import ModelError, load_model, unfinished
from signalwise.training.train import TrainConfig, train

pytestmark = pytest.mark.slow

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _config(out: Path, episodes: int) -> TrainConfig:
    return TrainConfig(scenario="single", episodes=episodes, seed=2, workers=1, batch=1, out=out, duration_s=60,
                       hyper=Hyper(guide_visits=10))


def _interrupted(out: Path) -> None:
    """3 episodes asked, Ctrl-C while the second round ends: one round checkpointed."""
    def on_episode(record) -> None:  # noqa: ANN001
        if record.episode == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_config(out, 3), on_episode=on_episode)


def _run(model: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, "run", "-s", "single", "-c", f"ql:{model}", "--duration", "30",
                           "--run-dir", "r"], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_an_interrupted_tabular_training_leaves_no_model_and_its_checkpoint_says_it_is_unfinished(tmp_path):
    out = tmp_path / "t"
    _interrupted(out)
    assert not (out / "model").exists()  # nothing that looks like the model the training makes
    checkpoint = out / "checkpoints" / "ep-00001"
    training = load_model(checkpoint).meta["training"]
    assert (training["episodes"], training["episodes_asked"]) == (1, 3)
    assert unfinished(load_model(checkpoint).meta) == "a checkpoint of an unfinished training: 1 of the 3 episodes asked"
    with pytest.raises(ModelError, match=r"no such model yet: the training in .* stopped after 1 of 3 episodes"):
        load_model(out / "model")
    db = ["--db", f"sqlite:///{tmp_path / 'r.db'}"]
    env = {"SIGNALWISE_MODEL_REGISTRY": str(tmp_path / "none"), "SIGNALWISE_MODEL_CACHE": str(tmp_path / "cache")}
    refused = signalwise("models", "add", str(checkpoint), *db, env=env)
    assert refused.returncode == 2
    assert "not registered: a checkpoint of an unfinished training: 1 of the 3 episodes asked" in refused.stderr
    told = signalwise("models", "add", str(checkpoint), "--unfinished", *db, env=env)
    assert told.returncode == 0 and "registered v1" in told.stdout
    ran = _run(checkpoint, tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert f"warning: ql: {checkpoint} is a checkpoint of an unfinished training: 1 of the 3 episodes asked" \
        in ran.stderr
    # resumed to its end: the model is installed, finished, and runs and registers without a word
    train(_config(out, 3), resume=True)
    model = load_model(out / "model")
    assert (model.meta["training"]["episodes"], model.meta["training"]["episodes_asked"]) == (3, 3)
    assert unfinished(model.meta, out / "model") is None
    added = signalwise("models", "add", str(out / "model"), *db, env=env)
    assert added.returncode == 0 and "registered v2" in added.stdout


def test_a_model_an_older_interrupted_training_left_is_told_by_its_training_state(tmp_path):
    """Trainings made before meta.json kept the episodes asked installed OUT/model after every round: such a
    model is read against the train_state.json beside it."""
    out = tmp_path / "t"
    _interrupted(out)
    shutil.copytree(out / "checkpoints" / "ep-00001", out / "model")
    meta = json.loads((out / "model" / "meta.json").read_text())
    del meta["training"]["episodes_asked"]
    (out / "model" / "meta.json").write_text(json.dumps(meta))
    why = unfinished(meta, out / "model")
    assert why == (f"the model an interrupted training left (its train_state.json in {out}): 1 of the 3 "
                   "episodes asked")
    refused = signalwise("models", "add", str(out / "model"), "--db", f"sqlite:///{tmp_path / 'r.db'}",
                         env={"SIGNALWISE_MODEL_REGISTRY": str(tmp_path / "none")})
    assert refused.returncode == 2 and why in refused.stderr
    ran = _run(out / "model", tmp_path)
    assert ran.returncode == 0 and why in ran.stderr, ran.stderr[-2000:]
