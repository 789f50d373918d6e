"""The learning benchmarks and every bench/ script's --help, as a researcher runs them (there is no tests/bench/):
`--help` prints the script's own help and starts nothing; a one-seed table row says n/a where it has no CI
or p-value."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))


def bench(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The script in a session of its own: on a timeout its whole process group goes (a benchmark it started too)."""
    with subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=ROOT, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail(f"{' '.join(args)} still running after {timeout} s")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


#: every script's `--help` run as `python bench/NAME.py --help` would, in one interpreter (the libraries' imports are
#: shared: a process per script cost a minute of the suite); a script that starts its work instead hits the timeout
HELP_RUNNER = """
import contextlib, io, json, os, runpy, sys
sys.path.insert(0, "bench")
path, modules = list(sys.path), set(sys.modules)
said = {}
for script in sys.argv[1:]:
    # each script on the path it starts with, and the repository's own helpers imported afresh: a helper an earlier
    # script put on the path (tests/support) must not hide that this one cannot find it
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        where = getattr(sys.modules[name], "__file__", None) or ""
        if os.sep + "tests" + os.sep in where or os.sep + "bench" + os.sep in where:
            del sys.modules[name]
    sys.argv = [script, "--help"]
    out, err, code = io.StringIO(), io.StringIO(), "returned without exiting"
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
    except BaseException as exc:
        code = f"raised {type(exc).__name__}: {exc}"
    said[script] = [code, out.getvalue(), err.getvalue()]
sys.__stdout__.write(json.dumps(said))
"""


@pytest.mark.slow
def test_help_prints_usage_and_starts_nothing():
    import json

    scripts = [f"bench/{name}" for name in SCRIPTS]
    r = bench("-c", HELP_RUNNER, *scripts, timeout=120)  # run_all.py ran every benchmark here, for hours
    assert r.returncode == 0, r.stderr[-2000:]
    said = json.loads(r.stdout)
    assert sorted(said) == scripts
    for script, (code, out, err) in said.items():
        name = script.removeprefix("bench/")
        assert code in (0, None), (script, code, err[-500:])
        assert out.startswith(f"usage: {name}"), (script, out[:300])
        assert "Traceback" not in err and "==" not in out.splitlines()[0], script


def test_help_shows_the_whole_description_and_its_commands_as_written():
    vision = bench("bench/vision_accuracy.py", "--help").stdout
    assert "top-down and oblique\nvideos, grade every figure" in vision  # not cut after its first line
    for script in ("learning_profiles.py", "pressure_variants.py"):
        text = bench(f"bench/{script}", "--help").stdout
        # a command continued on the next line keeps its backslash, not a run of spaces
        assert re.search(r" \\\n +--", text) and not re.search(r"\S {4,}--[a-z]", text), script


def _bench_module(name: str):
    """A bench script as a module, to call what it prints its table with (its runs take minutes)."""
    import importlib.util

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return module


def test_learning_quality_prints_a_one_seed_row_without_a_ci_or_p_value():
    fmt = _bench_module("learning_quality").fmt
    row = {"scenario": "single", "episodes": 1, "runs_with": None, "guide_visits": "30", "ql": [50.0, None, None],
           "max_pressure": [48.0, None, None], "change_pct": 4.2, "p_welch": None, "p_paired": None,
           "fallback_fraction": 0.01, "violations_training": 0, "violations_evaluation": 0, "train_wall_s": 12.0,
           "worker_peak_rss_mb": 150, "qtable_kib": 30}
    line = fmt(row)  # one seed: no CI, no p-value, and no crash
    assert "| 50.0 s | 48.0 s | +4.2 % | n/a | n/a |" in line
    row.update(ql=[50.0, 47.0, 53.0], p_welch=0.0312, p_paired=0.0101)
    assert "| 50.0 ± 3.0 s | 48.0 s | +4.2 % | 0.031 | 0.010 |" in fmt(row)


def test_learning_profiles_has_no_p_value_for_one_seed_and_no_scipy_warning():
    import warnings

    p_values = _bench_module("learning_profiles").p_values
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's warning on a sample without variance would fail here
        assert p_values([30.0], [32.0]) == (None, None)
    welch, paired = p_values([30.0, 31.0, 29.5], [33.0, 34.5, 32.0])
    assert 0 < welch < 0.05 and 0 < paired < 0.05


@pytest.mark.parametrize(("args", "words"), [
    (["bench/ingest_bench.py", "--records", "2000", "--db", "sqlite"], "--records must be at least"),
    (["bench/violations_store_bench.py", "--rows", "10", "--db", "sqlite", "--images", "0"], "not a database URL"),
])
def test_a_bench_option_it_cannot_use_is_one_error_line(args, words):
    r = bench(*args)
    assert r.returncode == 2, (r.stdout, r.stderr[-1500:])
    assert "Traceback" not in r.stderr and words in r.stderr.splitlines()[-1]
