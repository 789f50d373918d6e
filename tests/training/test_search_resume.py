"""A phase-score search keeps its CMA-ES at the end of every generation, and `signalwise train --resume` goes on
from there: 2 generations, then a resume to 4, give the search of 4 in a row, to the last bit of its covariance.
Real SUMO runs, on the smallest scenario with the fewest episodes a search has (2 candidates, 1 seed)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from support.cli import in_a_process, signalwise

from signalwise.control.learning.qtable import load_model
from signalwise.training.policy_search import STATE_FILE, SearchConfig, load_state, search

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
# 200 s episodes: what is compared is the search's state, bit for bit, whatever the episodes' length; an
# episode's cost is mostly its worker process's start, and a Ctrl-C once the first generation is done leaves three
# generations and the validation to run
DURATION = "200"
SETTINGS = ["-s", "single", "--popsize", "2", "--validation-seeds", "1", "--duration", DURATION, "--seed", "4",
            "--workers", "2"]


def train(out: Path, generations: int, *more: str) -> subprocess.CompletedProcess:
    return in_a_process("train", *SETTINGS, "--generations", str(generations), "--out", str(out), *more)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """4 generations in one go."""
    out = tmp_path_factory.mktemp("straight") / "s"
    search(SearchConfig(scenario="single", generations=4, popsize=2, validation_seeds=1, seed=4, workers=2,
                        duration_s=float(DURATION), out=out))
    return out


def assert_same_search(a: Path, b: Path) -> None:
    """The same CMA-ES after the same generations, bit for bit, and the same model."""
    sa, sb = load_state(a), load_state(b)
    assert sa["generations_done"] == sb["generations_done"] == 4
    ea, eb = sa["strategies"], sb["strategies"]
    assert np.array_equal(ea.mean, eb.mean) and ea.sigma == eb.sigma and np.array_equal(ea.C, eb.C)
    assert np.array_equal(ea.adapt_sigma.ps, eb.adapt_sigma.ps) and np.array_equal(ea.pc, eb.pc)
    assert ea.countiter == eb.countiter == 4
    assert [h["weights"] for h in sa["history"]] == [h["weights"] for h in sb["history"]]
    ma, mb = load_model(a / "model").meta, load_model(b / "model").meta
    assert ma["policy"] == mb["policy"]
    assert ma["selection"]["learned_avg_delay_s"] == mb["selection"]["learned_avg_delay_s"]
    assert ma["training"]["seeds"] == mb["training"]["seeds"]


@pytest.mark.slow
def test_two_generations_then_a_resume_to_four_are_four_in_a_row(straight, tmp_path):
    out = tmp_path / "r"
    first = train(out, 2)
    assert first.returncode == 0, first.stderr
    wall_2 = load_model(out / "model").meta["training"]["wall_s"]
    r = train(out, 4, "--resume")
    assert r.returncode == 0, r.stderr
    assert_same_search(straight, out)
    training = load_model(out / "model").meta["training"]
    assert training["generations"] == 4
    # the episodes of the search of 4 in a row (8 candidates' and one validation: the learned and the start on 1
    # seed), as that search counts them; the first session's validation, whose model the resume replaced, apart.
    # It counted 4 * 2 + 2 * 2, so an interrupted training reported more episodes than the same one in one go
    assert training["episodes"] == load_model(straight / "model").meta["training"]["episodes"] == 4 * 2 + 2
    assert training["replaced_validation_episodes"] == 2
    assert "replaced_validation_episodes" not in load_model(straight / "model").meta["training"]
    assert training["wall_s"] > wall_2  # both sessions' time
    said = r.stdout
    assert f"training {training['wall_s']:.1f} s in all (meta.json training.wall_s, every session summed)" in said
    assert "(10 episodes, besides 2 validation episodes of the sessions it resumed;" in said
    # a resume takes the settings the search began with, and more generations: refused before any episode, so
    # in this process
    for more, words in ((["--popsize", "3"], "another popsize (3)"), ([], "fewer than the 4")):
        bad = signalwise("train", *SETTINGS, "--generations", "3", "--out", str(out), "--resume", *more)
        assert bad.returncode == 2 and words in bad.stderr, bad.stderr


@pytest.mark.slow
def test_ctrl_c_in_a_search_says_how_to_go_on_and_the_resume_ends_where_a_straight_run_does(straight, tmp_path):
    """Ctrl-C lost the whole search: "a phase-score search is not resumed"."""
    out = tmp_path / "c"
    proc = subprocess.Popen([SIGNALWISE, "train", *SETTINGS, "--generations", "4", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        # a generation is done (there is a state to go on from): three more and the validation are left to run, a
        # margin for a loaded machine (200 s episodes are short)
        while not (out / STATE_FILE).is_file():
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    last = [ln for ln in err.splitlines() if ln.startswith("error:")][-1]
    assert last == (f"error: interrupted; the search in {out} stops at its last generation; the same command with "
                    "--resume goes on from there"), last
    assert 1 <= load_state(out)["generations_done"] < 4 and not (out / "model").exists()
    r = train(out, 4, "--resume")
    assert r.returncode == 0, r.stderr
    assert_same_search(straight, out)
    assert json.loads((out / "search.json").read_text())["config"]["generations"] == 4


def test_a_planted_state_file_naming_os_system_is_refused(tmp_path):
    """The state is a pickle, which can name any callable: one that names anything outside a search state's
    modules is refused before it is called (the docs say this narrows what a planted file can do, not all of it)."""
    import os
    import pickle

    from signalwise.training.policy_search import STATE_FILE, TrainingError, load_state

    marker = tmp_path / "ran"

    class Planted:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    (tmp_path / STATE_FILE).write_bytes(pickle.dumps({"es": Planted()}))
    with pytest.raises(TrainingError, match="names posix.system"):
        load_state(tmp_path)
    assert not marker.exists()
