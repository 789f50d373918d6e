"""`signalwise train --start`: the named start reaches the search and the model's record."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.control.learning.phase_score import ALL_FEATURES, FEATURES, max_pressure_weights
from signalwise.control.learning.qtable import load_model
from signalwise.training.search_starts import DEFAULT_START, STARTS, search_start

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def test_the_default_start_is_plain_max_pressure():
    start = search_start(DEFAULT_START)
    assert start.features() == FEATURES
    assert start.vector(FEATURES) == max_pressure_weights(FEATURES)


def test_a_start_weighing_a_detector_feature_searches_every_feature():
    start = search_start("actuated")
    assert start.features() == ALL_FEATURES
    assert start.vector(ALL_FEATURES)[ALL_FEATURES.index("hold_gap")] == STARTS["actuated"].weights["hold_gap"]
    assert start.period_s == 1.0


def test_an_unknown_start_is_a_one_line_error_naming_the_known_ones():
    with pytest.raises(ValueError, match="max-pressure-hold"):
        search_start("webster")
    p = subprocess.run([SIGNALWISE, "train", "--agent", "phase-score", "--start", "webster"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "unknown --start 'webster'" in p.stderr and "Traceback" not in p.stderr
    assert all(name in p.stderr for name in STARTS)


@pytest.mark.slow
def test_train_starts_the_search_where_start_says(tmp_path):
    p = subprocess.run([SIGNALWISE, "train", "--agent", "phase-score", "-s", "single", "--generations", "1",
                        "--popsize", "2", "--validation-seeds", "1", "--duration", "300",
                        "--start", "max-pressure-hold", "--out", str(tmp_path / "t")],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "max-pressure-hold (the starting point)" in " ".join(p.stderr.split())  # rich wraps lines
    meta = load_model(tmp_path / "t" / "model").meta
    config = meta["training"]["config"]
    start = STARTS["max-pressure-hold"]
    assert config["start_name"] == "max-pressure-hold"
    assert config["start"] == list(start.vector(FEATURES)) and config["features"] == list(FEATURES)
    assert config["period_s"] == start.period_s
    if meta["selection"]["chosen"] == "start":  # the model is the start itself when the search did not beat it
        assert meta["policy"]["weights"] == list(start.vector(FEATURES))
