"""A training's --out directory given where its model is expected says where the model is: `train --out
models/x` writes the model to models/x/model, and `ql:models/x` was refused as 'an interrupted save?'."""

import shutil

import pytest
from support.cli import signalwise

from signalwise.control.learning.qtable import ModelError, load_model
from signalwise.control.learning.shipped import shipped_model_path
from signalwise.store.model_registry import RegistryError, read_model_dir


@pytest.fixture
def training_out(tmp_path):
    out = tmp_path / "models" / "single"
    shutil.copytree(shipped_model_path("single"), out / "model")
    return out


def test_the_model_inside_a_training_directory_is_named(training_out, tmp_path):
    with pytest.raises(ModelError, match=f"did you mean {training_out / 'model'}"):
        load_model(training_out)
    with pytest.raises(RegistryError, match="did you mean"):
        read_model_dir(training_out)
    done = signalwise("run", "-s", "single", "-c", f"ql:{training_out}", "--duration", "30",
                      "--out", str(tmp_path / "runs"))
    assert done.returncode == 2 and f"did you mean {training_out / 'model'}" in done.stderr


def test_a_directory_without_a_model_anywhere_keeps_the_interrupted_save_hint(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="an interrupted save"):
        load_model(tmp_path / "empty")
