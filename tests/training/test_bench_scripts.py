"""The learning benchmarks and every bench/ script's --help, as a researcher runs them (there is no tests/bench/):
`--help` prints the script's own help and starts nothing, and a minimal learning_quality.py run reaches its table.
Real SUMO runs."""

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


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_prints_usage_and_starts_nothing(script):
    r = bench(f"bench/{script}", "--help", timeout=30)  # run_all.py ran every benchmark here, for hours
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: {script}"), r.stdout[:300]
    assert "Traceback" not in r.stderr and "==" not in r.stdout.splitlines()[0]


def test_help_shows_the_whole_description_and_its_commands_as_written():
    vision = bench("bench/vision_accuracy.py", "--help").stdout
    assert "top-down and oblique\nvideos, grade every figure" in vision  # not cut after its first line
    for script in ("learning_profiles.py", "pressure_variants.py"):
        text = bench(f"bench/{script}", "--help").stdout
        # a command continued on the next line keeps its backslash, not a run of spaces
        assert re.search(r" \\\n +--", text) and not re.search(r"\S {4,}--[a-z]", text), script


def test_learning_quality_with_one_held_out_seed_prints_its_row(tmp_path):
    r = bench("bench/learning_quality.py", "--scenarios", "single", "--episodes", "1", "--seeds", "1",
              "--workers", "1", "--out", str(tmp_path / "lq"), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    row = [ln for ln in r.stdout.splitlines() if ln.startswith("| single |")]
    assert len(row) == 1 and "| n/a |" in row[0], r.stdout  # one seed: no CI, no p-value, and no crash
    assert (tmp_path / "lq" / "learning_quality.json").is_file()


def test_learning_profiles_with_one_held_out_seed_says_no_p_value(tmp_path):
    r = bench("bench/learning_profiles.py", "--networks", "single", "--generations", "1", "--popsize", "2",
              "--seeds", "1", "--profiles", "safety", "--out", str(tmp_path / "lp"), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    row = [ln for ln in r.stdout.splitlines() if ln.startswith("| single | safety |")]
    assert len(row) == 1 and "n/a / n/a" in row[0], r.stdout
    assert "RuntimeWarning" not in r.stderr and "nan" not in row[0]


@pytest.mark.parametrize(("args", "words"), [
    (["bench/ingest_bench.py", "--records", "2000", "--db", "sqlite"], "--records must be at least"),
    (["bench/violations_store_bench.py", "--rows", "10", "--db", "sqlite", "--images", "0"], "not a database URL"),
])
def test_a_bench_option_it_cannot_use_is_one_error_line(args, words):
    r = bench(*args)
    assert r.returncode == 2, (r.stdout, r.stderr[-1500:])
    assert "Traceback" not in r.stderr and words in r.stderr.splitlines()[-1]
