"""`--guide-visits auto`: candidates trained, compared on validation seeds, the choice installed — real SUMO runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.cli import signalwise as signalwise_here

from signalwise.control.learning.qtable import ModelError, load_model
from signalwise.training.selection import GUIDE_ONLY, validation_seeds
from signalwise.training.train import check_heldout, heldout_seeds, training_seed

# slow (`make test-all`, not `make test`): the tests here share one module fixture of many seconds
pytestmark = pytest.mark.slow

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


@pytest.fixture(scope="module")
def selected(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("auto") / "t"
    r = subprocess.run([SIGNALWISE, "train", "--scenario", "single", "--episodes", "2", "--duration", "60",
                        "--seed", "4", "--validation-seeds", "2", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "validation (seeds" in r.stdout
    return out


def test_auto_trains_both_thresholds_and_installs_the_one_with_the_lower_validation_delay(selected):
    sel = load_model(selected / "model").meta["selection"]
    assert sel["seeds"] == validation_seeds(4, 2) == [504_000, 504_001]
    summary = json.loads((selected / "validation" / "summary.json").read_text())["metrics"]["avg_delay_s"]
    measured = {k: v["mean"] for k, v in summary["controllers"].items()}
    candidates = {int(n): d for n, d in sel["candidates"].items()}
    assert set(candidates) == {10, 30}
    for n, d in candidates.items():  # the recorded figures are the validation runs' own
        spec = f"ql:{(selected / f'guide-{n}' / 'model').resolve()}"
        assert d == pytest.approx(measured[spec], abs=1e-3)
        assert load_model(selected / f"guide-{n}" / "model").meta["hyperparameters"]["guide_visits"] == n
    assert sel["max_pressure_avg_delay_s"] == pytest.approx(measured["max-pressure"], abs=1e-3)
    best = min(candidates, key=lambda n: (candidates[n], -n))
    assert sel["trained_with"] == best
    expected = GUIDE_ONLY if sel["guide_only_avg_delay_s"] < candidates[best] else best
    assert sel["guide_visits"] == expected
    chosen, installed = load_model(selected / f"guide-{best}" / "model"), load_model(selected / "model")
    np.testing.assert_array_equal(chosen.tables["C"].q, installed.tables["C"].q)
    assert installed.meta["deployment"]["guide_visits"] == expected


def test_validation_seeds_are_neither_training_nor_evaluation_seeds(selected):
    model = load_model(selected / "model")
    val = model.meta["selection"]["seeds"]
    assert not set(val) & set(model.meta["training"]["seeds"])
    assert all(training_seed(4, 0) > s > 100 for s in val)
    with pytest.raises(ModelError, match="training or validation"):
        check_heldout(model, [val[0]])
    assert not set(heldout_seeds(model, 3, first=val[0])) & set(val)


def test_a_second_auto_run_into_the_same_directory_is_refused(selected):
    r = signalwise_here("train", "--scenario", "single", "--episodes", "2", "--out", str(selected))
    assert r.returncode == 2 and "--resume" in r.stderr and "Traceback" not in r.stderr
