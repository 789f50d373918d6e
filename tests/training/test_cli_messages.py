"""What the training commands tell people: bad values, an empty registry, a model that loses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.training.commands import _selection_line

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _cli(*args):
    return subprocess.run([SIGNALWISE, *args], capture_output=True, text=True, timeout=120)


def test_evaluate_refuses_zero_seeds_with_one_line():
    p = _cli("evaluate", "--model", "/nonexistent", "--seeds", "0")
    assert p.returncode == 2 and "--seeds must be at least 1" in p.stderr and "Traceback" not in p.stderr


def test_an_empty_registry_says_how_to_add_a_model(tmp_path):
    p = _cli("models", "list", "--db", f"sqlite:///{tmp_path / 'reg.db'}")
    assert p.returncode == 0 and "no model registered" in p.stdout and "signalwise models add" in p.stdout
    assert "signalwise models import" in p.stdout
    assert not (tmp_path / "reg.db").exists()  # said without leaving an empty database behind


@pytest.mark.slow
def test_a_registry_that_cannot_be_opened_is_one_line(tmp_path):
    p = _cli("models", "add", str(tmp_path), "--db", f"sqlite:///{tmp_path}")  # a directory: SQLite cannot open it
    assert p.returncode == 1 and "error: cannot open database" in p.stderr and "Traceback" not in p.stderr
    p = _cli("models", "add", str(tmp_path), "--db", "sqlite:////nonexistent-dir/x.db")
    assert p.returncode == 2 and "error: cannot open database: /nonexistent-dir/x.db: no such directory" in p.stderr


def test_a_model_that_loses_to_max_pressure_is_said_to_lose():
    sel = {"seeds": [500001], "candidates": {"10": 40.4, "30": 40.4}, "guide_visits": 30, "trained_with": 30,
           "guide_only_avg_delay_s": 40.1, "max_pressure_avg_delay_s": 35.0}
    line = _selection_line(sel)
    assert "LOSES to max-pressure" in line and "40.1 s vs 35.0 s" in line and "--episodes" in line
    assert "LOSES" not in _selection_line({**sel, "max_pressure_avg_delay_s": 45.0})
