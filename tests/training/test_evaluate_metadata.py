"""`signalwise evaluate` on a model whose meta.json was edited by hand or damaged: one `error:` line naming the part
of the file, exit 2, before any run and with the file left as it was (a part set to null counts as absent). The
shipped `single` model is the base."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.cli_checks import refused
from support.models import damaged_copy
from typer.testing import CliRunner

from signalwise.cli import app

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))

DAMAGED = {
    "training is a list": (lambda m: m.__setitem__("training", []), "training"),
    "training.config is a list": (lambda m: m["training"].__setitem__("config", []), "training.config"),
    "training.run is a string": (lambda m: m["training"].__setitem__("run", "x"), "training.run"),
    "training.seeds is a number": (lambda m: m["training"].__setitem__("seeds", 5), "training.seeds"),
    "selection is a string": (lambda m: m.__setitem__("selection", "x"), "selection"),
    "evaluations is a mapping": (lambda m: m.__setitem__("evaluations", {}), "evaluations"),
    "no network": (lambda m: m.__setitem__("scenario", None), "--scenario"),
    "policy is null": (lambda m: m.__setitem__("policy", None), "without its policy"),
    "policy.features is a number": (lambda m: m["policy"].__setitem__("features", 5), "features must be a list"),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_evaluate_refuses_damaged_metadata_in_one_line_before_any_run(tmp_path, case):
    change, words = DAMAGED[case]
    model = damaged_copy(tmp_path / "model", change)
    before = (model / "meta.json").read_text()
    # in this process (a `signalwise` process costs a second of imports, nine times): refused before any run
    result = CliRunner().invoke(app, ["evaluate", "--model", str(model), "--seeds", "1", "--duration", "30",
                                      "--out", str(tmp_path / "eval")])
    refused(subprocess.CompletedProcess([], result.exit_code, "", result.output), words)
    assert not (tmp_path / "eval").exists()  # refused before any run
    assert (model / "meta.json").read_text() == before


def test_the_seeds_that_chose_among_restarts_are_not_held_out():
    """A later search that wins keeps its own validation seeds in `selection.seeds`; the first search's, on which
    every search was compared, are in `selection.restarts.seeds` and were seen too."""
    from signalwise.training.train import used_seeds

    meta = {"training": {"seeds": [11, 12]}, "selection": {"seeds": [602000], "restarts": {"seeds": [601000]}}}
    assert used_seeds(meta) == {11, 12, 602000, 601000}


@pytest.mark.slow
def test_seeds_the_model_saw_are_refused_with_a_first_seed_that_works(tmp_path):
    """The message said to pass the first held-out seed 'with fewer seeds', which fewer seeds did not need; the
    --first-seed it names now holds --seeds held-out seeds in a row."""
    import json
    import re
    import shutil

    from signalwise.control.learning.shipped import shipped_model_path

    model = tmp_path / "model"
    shutil.copytree(shipped_model_path("single"), model)
    seen = sorted(json.loads((model / "meta.json").read_text())["selection"]["seeds"])
    args = ["evaluate", "--model", str(model), "--seeds", "2", "--duration", "30", "--workers", "1"]
    result = CliRunner().invoke(app, [*args, "--first-seed", str(seen[0]), "--out", str(tmp_path / "a")])
    refused(subprocess.CompletedProcess([], result.exit_code, "", result.output), "used in training or validation")
    free = int(re.search(r"pass --first-seed (\d+)", result.output).group(1))
    assert free > seen[0]
    result = CliRunner().invoke(app, [*args, "--first-seed", str(free), "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    # the window the runs covered is said: the network's whole one unless --duration cut it, as here
    assert "0.5 simulated min per run" in result.output and "whole window" not in result.output
