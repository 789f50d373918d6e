"""`signalwise train --resume` of a tabular training (`--guide-visits auto`): it trains on, validates again and
replaces its own validation runs, also after being killed in a round or in the validation — real SUMO runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from support.cli import signalwise as signalwise_here

from signalwise.control.learning.qtable import ModelError, load_model
from signalwise.training.commands import learning_errors
from signalwise.training.selection import ValidationFailed
from signalwise.training.train import training_seed

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
SEED = 5
SHORT = ["--scenario", "single", "--batch", "2", "--workers", "2", "--seed", str(SEED), "--validation-seeds", "1",
         "--duration", "60"]


def train(out: Path, episodes: int, *more: str) -> subprocess.CompletedProcess:
    return subprocess.run([SIGNALWISE, "train", *SHORT, "--episodes", str(episodes), "--out", str(out), *more],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def two_episodes(tmp_path_factory) -> Path:
    """Both candidate thresholds trained for 2 episodes, validated, the choice installed."""
    out = tmp_path_factory.mktemp("resume") / "t"
    r = train(out, 2)
    assert r.returncode == 0, r.stderr
    assert (out / "validation" / "summary.json").is_file()
    return out


def copy_of(trained: Path, tmp_path: Path) -> Path:
    out = tmp_path / "t"
    shutil.copytree(trained, out)  # mtimes kept: the copied runs stay older than a validation run after it
    return out


def interrupted_run(run_dir: Path) -> None:
    """What `kill -9` leaves of a run: its start, nothing more."""
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"status": "running"}))
    (run_dir / "config.yaml").write_text("controller: max-pressure\n")


@pytest.fixture(scope="module")
def resumed_after_a_kill(two_episodes, tmp_path_factory) -> tuple[Path, int, subprocess.CompletedProcess]:
    """`two_episodes` killed in the round after its checkpoint, then resumed to 4 episodes: guide-10 (trained
    first) left its episode 2 half-written, guide-30 had not started, so one resume (the costly part of both
    tests below) takes up an interrupted round and a clean checkpoint. Returns the directory, the resume's
    start (ns) and what the command said."""
    out = copy_of(two_episodes, tmp_path_factory.mktemp("killed"))
    interrupted_run(out / "guide-10" / "episodes" / "ep-00002")
    t0 = time.time_ns()
    r = train(out, 4, "--resume")
    assert r.returncode == 0, r.stderr
    return out, t0, r


def assert_validated_since(out: Path, t0_ns: int) -> None:
    """out/validation holds one complete validation, run after `t0_ns`, and the installed model's figures are its."""
    vdir = out / "validation"
    assert not (out / "validation.previous").exists()
    summary = json.loads((vdir / "summary.json").read_text())
    assert summary["failures"] == {}
    assert (vdir / "summary.json").stat().st_mtime_ns >= t0_ns
    runs = sorted(p.parent for p in vdir.rglob("run.json"))
    assert len(runs) == 4  # max-pressure, the two candidates, the better table behind max-pressure alone: 1 seed
    for run in runs:
        assert json.loads((run / "run.json").read_text())["status"] == "complete"
        assert (run / "run.json").stat().st_mtime_ns >= t0_ns  # this validation's, not the first one's
    sel = load_model(out / "model").meta["selection"]
    measured = summary["metrics"]["avg_delay_s"]["controllers"]
    assert sel["max_pressure_avg_delay_s"] == pytest.approx(measured["max-pressure"]["mean"], abs=1e-3)
    for n, delay in sel["candidates"].items():
        spec = f"ql:{(out / f'guide-{n}' / 'model').resolve()}"
        assert delay == pytest.approx(measured[spec]["mean"], abs=1e-3)


@pytest.mark.slow
def test_a_resume_trains_on_then_replaces_the_validation_of_its_directory(resumed_after_a_kill):
    out, t0, _ = resumed_after_a_kill
    training = load_model(out / "model").meta["training"]
    assert training["episodes"] == 4
    assert training["seeds"] == [training_seed(SEED, e) for e in range(4)]
    for n in (10, 30):
        assert json.loads((out / f"guide-{n}" / "train_state.json").read_text())["episodes_done"] == 4
    assert_validated_since(out, t0)


@pytest.mark.slow
def test_a_resume_after_a_kill_redoes_the_interrupted_round_and_validation(resumed_after_a_kill, tmp_path):
    resumed, _, _ = resumed_after_a_kill
    ep = json.loads((resumed / "guide-10" / "episodes" / "ep-00002" / "run.json").read_text())
    assert ep["status"] == "complete" and ep["seed"] == training_seed(SEED, 2)

    # then killed while validating again: the installed model's runs set aside, the new ones half-written
    out = copy_of(resumed, tmp_path)
    (out / "validation").rename(out / "validation.previous")
    interrupted_run(out / "validation" / "max-pressure-s505000")
    t0 = time.time_ns()
    r = train(out, 4, "--resume")  # nothing left to train: only the validation runs again
    assert r.returncode == 0, r.stderr
    assert load_model(out / "model").meta["training"]["episodes"] == 4
    assert_validated_since(out, t0)


@pytest.mark.slow
def test_the_model_records_the_whole_trainings_wall_time_which_the_command_prints(resumed_after_a_kill):
    """After --resume, meta.json's training.wall_s was the kept threshold's table alone (2.2 s) where the command
    printed "7 s in all": both thresholds' sessions, the validation and its own start-up."""
    out, _, r = resumed_after_a_kill
    meta = load_model(out / "model").meta
    wall = meta["training"]["wall_s"]
    tables = [load_model(out / f"guide-{n}" / "model").meta["training"]["wall_s"] for n in (10, 30)]
    assert wall == meta["selection"]["wall_s"]  # both tables, each over its two sessions, and the validation
    assert wall > max(tables) and wall >= sum(tables) - 0.1
    said = r.stdout  # a line per line, not folded at 80 columns
    assert f"(4 episodes; training {wall:.1f} s in all (meta.json training.wall_s, every session summed), " \
           "this command " in said, said


def test_a_failed_validation_run_exits_1_and_bad_input_still_2(tmp_path):
    @learning_errors
    def validating():
        raise ValidationFailed("validation run(s) failed: max-pressure s505000: SUMO died")

    with pytest.raises(typer.Exit) as failed:
        validating()
    assert failed.value.exit_code == 1
    assert issubclass(ValidationFailed, ModelError)  # callers catching model errors still catch it

    (tmp_path / "not-a-model").mkdir()
    r = signalwise_here("models", "show", str(tmp_path / "not-a-model"))  # a refusal: no SUMO, no worker
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr


@pytest.mark.slow
def test_a_killed_phase_score_search_runs_again_into_its_directory_and_a_finished_one_resumes_to_itself(tmp_path):
    out = tmp_path / "ps"
    search = ["train", "--agent", "phase-score", "-s", "single", "--generations", "1", "--popsize", "2",
              "--validation-seeds", "1", "--duration", "60", "--seed", str(SEED), "--out", str(out)]
    for key in (0, 1):  # killed in its first generation: the episodes' run directories half-written
        run_dir = out / "episodes" / "gen-0000" / f"{key}-s{training_seed(SEED, 0)}"
        run_dir.mkdir(parents=True)
        (run_dir / "run.json").write_text(json.dumps({"status": "running"}))
    r = subprocess.run([SIGNALWISE, *search], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert load_model(out / "model").meta["training"]["generations"] == 1
    assert not (out / "episodes").exists()

    meta = (out / "model" / "meta.json").read_text()
    again = signalwise_here(*search, "--resume")  # its generations all done: no episode runs, so in this process
    assert again.returncode == 0, again.stderr
    assert (out / "model" / "meta.json").read_text() == meta
