"""`compare` and `evaluate` refuse, in one line and before any run starts, what used to end in a traceback, a
failed run, or an earlier comparison's summary replaced: a non-empty --out, a controller named twice, bad
--workers and seeds out of SUMO's range."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from signalwise.control.learning.shipped import shipped_model_path
from signalwise.runtime.compare import compare_controllers
from signalwise.runtime.config import RunConfig
from signalwise.runtime.run import RunDirectoryError

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def _cli(*args) -> subprocess.CompletedProcess:
    # a process: compare and evaluate start SUMO (to check the network) before some of their refusals
    return subprocess.run([SIGNALWISE, *args], capture_output=True, text=True, timeout=300)


def _refused(p: subprocess.CompletedProcess, needle: str) -> None:
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and "error: " in p.stderr and needle in p.stderr, p.stderr


@pytest.mark.slow
def test_a_second_comparison_into_the_same_out_is_refused_and_the_first_summary_kept(tmp_path):
    out = tmp_path / "cmp"
    first = _cli("compare", "-s", "single", "-c", "fixed,max-pressure", "--seeds", "1", "--duration", "60",
                 "--workers", "1", "--out", str(out))
    assert first.returncode == 0, first.stderr
    summary = (out / "summary.json").read_text()
    assert json.loads(summary)["seeds"] == [1]
    again = _cli("compare", "-s", "single", "-c", "fixed", "--seeds", "1", "--first-seed", "7", "--duration", "60",
                 "--workers", "1", "--out", str(out))
    _refused(again, f"--out {out}: exists and is not empty: a comparison never overwrites another's results")
    assert (out / "summary.json").read_text() == summary and not (out / "fixed-s7").exists()
    # the library refuses it too, for callers that skip the command
    with pytest.raises(RunDirectoryError, match="exists and is not empty"):
        compare_controllers(RunConfig(scenario="single", duration_s=60), ["fixed"], [7], out, workers=1)


@pytest.mark.parametrize("args,needle", [
    (["-c", "fixed,fixed"], "--controllers names fixed twice"),
    (["--workers", "-1"], "--workers must be at least 1"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--first-seed", "-3"], "--first-seed must not be negative"),
    (["--first-seed", "2147483647", "--seeds", "2"], "passes SUMO's largest seed, 2147483647"),
])
@pytest.mark.slow
def test_bad_compare_options_are_refused_before_any_run_starts(tmp_path, args, needle):
    p = _cli("compare", "-s", "single", "--duration", "60", "--out", str(tmp_path / "cmp"), *args)
    _refused(p, needle)
    assert not (tmp_path / "cmp").exists()


@pytest.mark.slow
def test_evaluate_refuses_a_used_out_and_bad_workers_and_never_writes_into_a_shipped_model(tmp_path):
    model = shipped_model_path("single")
    meta = (model / "meta.json").read_bytes()
    used = tmp_path / "used"
    used.mkdir()
    (used / "summary.csv").write_text("an earlier evaluation\n")
    _refused(_cli("evaluate", "--model", str(model), "--seeds", "1", "--duration", "60", "--out", str(used)),
             "exists and is not empty: an evaluation never overwrites another's results")
    assert (used / "summary.csv").read_text() == "an earlier evaluation\n"
    _refused(_cli("evaluate", "--model", str(model), "--seeds", "1", "--duration", "60", "--workers", "-1",
                  "--out", str(tmp_path / "e")), "--workers must be at least 1")
    ok = _cli("evaluate", "--model", str(model), "--seeds", "1", "--first-seed", "7", "--duration", "60",
              "--workers", "1", "--out", str(tmp_path / "e"))
    assert ok.returncode == 0, ok.stderr
    assert "read-only (a model shipped with the package" in ok.stdout
    assert (model / "meta.json").read_bytes() == meta  # the package's model is as it was installed
    assert (tmp_path / "e" / "summary.json").is_file()


@pytest.mark.parametrize("args,needle", [
    (["--duration", "inf"], "invalid duration_s (--duration): Input should be a finite number"),
    (["--demand-scale", "nan"], "invalid demand_scale (--demand-scale): Input should be a finite number"),
])
def test_an_infinite_or_nan_number_is_refused_before_the_run(tmp_path, args, needle):
    p = _cli("run", "-s", "single", "--run-dir", str(tmp_path / "r"), *args)
    _refused(p, needle)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", [["train", "-s", "single", "--generations", "1"],
                                     ["evaluate", "--model", str(shipped_model_path("single")), "--seeds", "1"]])
def test_an_out_under_a_file_is_said_as_run_and_compare_say_it(tmp_path, command):
    (tmp_path / "x.txt").write_text("a file\n")
    p = _cli(*command, "--out", str(tmp_path / "x.txt" / "sub"))
    _refused(p, f"--out {tmp_path / 'x.txt' / 'sub'}: {tmp_path / 'x.txt'} is not a directory")


def test_demo_refuses_a_bad_duration_before_its_banner_and_audit_names_a_file_that_is_no_directory(tmp_path):
    p = _cli("demo", "--duration", "-1")
    _refused(p, "--duration must be a number of seconds above 0, not -1")
    assert p.stdout == ""  # no "its first -1 simulated s" said first
    (tmp_path / "x.txt").write_text("a file\n")
    p = _cli("audit", str(tmp_path / "x.txt"))
    assert p.returncode == 2 and f"{tmp_path / 'x.txt'}: not a directory" in p.stderr, p.stderr
