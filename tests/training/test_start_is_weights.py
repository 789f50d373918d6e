"""`train --start max-pressure` starts from max-pressure's *weights* (halting vehicles in minus out, no hold),
not from the max-pressure controller `evaluate` compares against: what train prints must not say they are one."""

from __future__ import annotations

import json

import pytest
from support.cli import in_a_process, signalwise


def _flat(text: str) -> str:
    """The text with rich's wrapping and help boxes undone."""
    return " ".join(text.replace("│", " ").split())


@pytest.mark.slow
def test_train_names_the_start_for_what_it_is_and_what_the_model_keeps(tmp_path):
    p = in_a_process("train", "--agent", "phase-score", "-s", "single", "--generations", "1", "--popsize", "2",
                     "--validation-seeds", "1", "--duration", "60", "--out", "t", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    text = _flat(p.stdout)  # the result on stdout
    assert "(the starting point)" not in text and "starting (max-pressure)" not in text
    assert "the start, the weights of max-pressure (halting in − out, no hold)" in text, text
    chosen = json.loads((tmp_path / "t" / "model" / "meta.json").read_text())["selection"]["chosen"]
    kept = ("the model keeps the learned weights" if chosen == "learned" else
            "the model keeps the start: the weights of max-pressure (halting in − out, no hold), not the max-pressure "
            "controller")
    assert kept in text, text


def test_start_help_says_a_start_is_weights_not_the_controller():
    p = signalwise("train", "--help", "--agent", "phase-score")
    text = _flat(p.stdout)
    assert "not the max-pressure controller evaluate compares against" in text, text
