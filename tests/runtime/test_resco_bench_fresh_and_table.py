"""bench/resco.py: a --fresh sweep resumed by the same command after a Ctrl-C, a selection with no cell kept,
`--workers` cut to the CPUs, and a table that says what its cells are (seeds, changes, one teleport)."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "resco.py"
SINGLE = ROOT / "src" / "signalwise" / "sim" / "scenarios" / "single"
STALE_S = -1.0  # the delay of figures kept before a --fresh sweep (no run gives it)


@pytest.fixture(scope="module")
def resco():
    return load_script(SCRIPT, "resco_bench_fresh_and_table")


@pytest.fixture
def city(tmp_path) -> str:
    """The single intersection over one minute: a cell runs in about 3 s, most of it starting Python."""
    cfg = tmp_path / "city.sumocfg"
    cfg.write_text(f'<configuration><input><net-file value="{SINGLE / "net.net.xml"}"/>'
                   f'<route-files value="{SINGLE / "demand.rou.xml"}"/></input>'
                   '<time><begin value="0"/><end value="60"/></time></configuration>')
    return str(cfg.resolve())  # as the bench names it


def bench(*args: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(out)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def keep(resco, out: Path, cells: list[dict], delay_s=lambda cell: 40.0 + cell["seed"], **figures) -> None:
    """Cells' figures as a sweep keeps them (with the sweep's own writer), without running them."""
    for n, cell in enumerate(cells, 1):
        result = {**cell, "avg_delay_s": delay_s(cell), "never_inserted": 0, "vehicles_total": 100, "teleports": 0,
                  "violations": 0, "controller_errors": 0, "wall_s": 0.0, **figures}
        assert resco._keep(out, cell, None, result, n, len(cells))


def run_again(resco, out: Path, cells: list[dict]) -> list[Path]:
    """The cells' files whose figures a run gave (not the stale ones kept before the --fresh sweep)."""
    paths = []
    for cell in cells:
        try:
            if json.loads(resco.cell_path(out, cell).read_text())["avg_delay_s"] != STALE_S:
                paths.append(resco.cell_path(out, cell))
        except FileNotFoundError:
            pass
    return paths


def interrupt_after(args: list[str], finished, at_least: int) -> tuple[int, str]:
    """Start the command in its own process group (as a terminal's Ctrl-C reaches it and its workers), press
    Ctrl-C once `finished()` holds `at_least` cells; its exit status and stderr."""
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while len(finished()) < at_least and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert len(finished()) >= at_least, "no cell finished within 60 s"
        os.killpg(proc.pid, signal.SIGINT)
        stderr = proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, stderr


def test_fresh_after_ctrl_c_keeps_the_old_figures_and_the_same_command_resumes_it(resco, city, tmp_path):
    """--fresh deleted every planned cell up front: after a Ctrl-C, the same command ran them all again, and the
    figures kept before the first --fresh were lost. Now each is replaced when its new run finishes, and the
    same command runs only what this --fresh sweep has not run yet."""
    out = tmp_path / "out"
    cells = resco.plan([city], ["benchmark"], ["fixed"], range(1, 13), resco.REFERENCE_SCRIPT)
    keep(resco, out, cells, delay_s=lambda cell: STALE_S)
    args = [sys.executable, str(SCRIPT), "--networks", city, "--controllers", "fixed", "--profiles", "benchmark",
            "--seeds", "12", "--workers", "1", "--fresh", "--out", str(out)]

    status, stderr = interrupt_after(args, lambda: run_again(resco, out, cells), 1)
    assert status == 130 and "Traceback" not in stderr, stderr
    last = re.fullmatch(r"interrupted: (\d+) of 12 cells done; run the same command again to resume",
                        stderr.strip().splitlines()[-1])
    first = run_again(resco, out, cells)
    assert last and int(last.group(1)) == len(first) < 12
    assert len(list(out.glob("cells/**/*.json"))) == 12  # the others keep their figures until they run again
    stamps = {path: path.stat().st_mtime_ns for path in first}

    status, stderr = interrupt_after(args, lambda: run_again(resco, out, cells), len(first) + 1)
    assert status == 130 and "Traceback" not in stderr, stderr
    assert f"12 cells, {len(first)} already run by this --fresh sweep, {12 - len(first)} to run on 1 worker(s)" \
        in stderr.splitlines()
    assert {path: path.stat().st_mtime_ns for path in first} == stamps  # none of them ran again
    second = run_again(resco, out, cells)
    assert re.fullmatch(f"interrupted: {len(second)} of 12 cells done; run the same command again to resume",
                        stderr.strip().splitlines()[-1])
    assert len(second) > len(first)


def test_a_finished_fresh_sweep_ends_and_the_next_fresh_runs_every_cell_again(resco, city, tmp_path, capsys):
    out = tmp_path / "out"
    cells = resco.plan([city], ["benchmark"], ["fixed"], [1, 2], resco.REFERENCE_SCRIPT)
    keep(resco, out, cells)  # figures from before
    since_ns = resco.fresh_since_ns(out, cells)
    assert not any(resco.is_kept(out, c, since_ns) for c in cells)
    assert resco.fresh_since_ns(out, cells) == since_ns  # the same cells again: the same sweep
    time.sleep(0.05)  # a cell's file time after the mark's (a real cell runs for seconds)
    keep(resco, out, cells)  # the sweep's own runs
    args = argparse.Namespace(out=out, fresh=True, table_only=False, workers=1)
    assert resco.run_sweep(cells, args) == 0  # none left to run: the sweep is done, its mark gone
    assert "2 cells, 2 already run by this --fresh sweep, 0 to run" in capsys.readouterr().err
    assert not (out / resco.FRESH_MARK).exists()
    again_ns = resco.fresh_since_ns(out, cells)  # the next --fresh: every cell runs again
    assert again_ns > since_ns and not any(resco.is_kept(out, c, again_ns) for c in cells)
    assert resco.fresh_since_ns(out, cells[:1]) > again_ns  # other cells: a sweep of their own


def test_a_cell_that_fails_leaves_no_figures_from_before(resco, city, tmp_path):
    """In a --fresh sweep the cell's old figures are still there when its new run fails: the table must not
    show them as the new ones."""
    out = tmp_path / "out"
    (cell,) = resco.plan([city], ["benchmark"], ["fixed"], [1], resco.REFERENCE_SCRIPT)
    keep(resco, out, [cell])
    assert not resco._keep(out, cell, "RuntimeError: boom", None, 1, 1)
    assert not resco.cell_path(out, cell).exists() and resco.load_cells(out, [cell]) == {}


def test_fresh_with_table_only_is_refused(city, tmp_path):
    done = bench("--networks", city, "--controllers", "fixed", "--seeds", "1", "--fresh", "--table-only",
                 out=tmp_path / "out")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --fresh runs the cells again and --table-only runs none: give one of them"


def test_a_selection_with_no_cell_kept_says_so_and_keeps_the_table(resco, city, tmp_path):
    out = tmp_path / "out"
    keep(resco, out, resco.plan([city], ["benchmark"], ["fixed"], [1, 2], resco.REFERENCE_SCRIPT))
    (out / "table.md").write_text("the table of the cells kept\n")
    done = bench("--networks", "single", "--controllers", "fixed", "--profiles", "benchmark", "--seeds", "2",
                 "--table-only", out=out)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip() == (f"no cell of this selection is kept in {out / 'cells'} (networks single; profiles "
                                   f"benchmark; controllers fixed; seeds 1–2): no table, {out / 'table.md'} left as "
                                   "it was")
    assert (out / "table.md").read_text() == "the table of the cells kept\n"


def test_sections_the_cells_cannot_fill_are_left_out(resco, city, tmp_path):
    out = tmp_path / "out"
    keep(resco, out, resco.plan([city], ["safety"], ["fixed", "max-pressure"], [1, 2], resco.REFERENCE_SCRIPT))
    done = bench("--networks", city, "--controllers", "fixed,max-pressure", "--profiles", "safety", "--seeds", "2",
                 "--table-only", out=out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Average delay (RESCO definition)")
    assert "Price of safety" not in done.stdout and "Checks" not in done.stdout
    assert (out / "table.md").read_text() == done.stdout
    # with the benchmark profile's cells beside them, the price of safety has a row
    keep(resco, out, resco.plan([city], ["benchmark"], ["fixed", "max-pressure"], [1, 2], resco.REFERENCE_SCRIPT))
    both = bench("--networks", city, "--controllers", "fixed,max-pressure", "--profiles", "safety,benchmark",
                 "--seeds", "2", "--table-only", out=out)
    assert "Price of safety (delay under the safety profile / under the benchmark profile):" in both.stdout


def header(stdout: str) -> str:
    return stdout.splitlines()[0]


def test_the_header_says_a_change_vs_fixed_only_where_the_table_shows_one(resco, city, tmp_path):
    out = tmp_path / "out"
    keep(resco, out, resco.plan([city], ["reference"], ["fixed", "max-pressure"], [1, 2], resco.REFERENCE_SCRIPT))
    alone = bench("--networks", city, "--controllers", "max-pressure", "--profiles", "reference", "--seeds", "2",
                  "--table-only", out=out)
    assert header(alone.stdout) == "Average delay (RESCO definition), s: mean ± 95% CI over seeds 1–2."
    beside = bench("--networks", city, "--controllers", "fixed,max-pressure", "--profiles", "reference", "--seeds",
                   "2", "--table-only", out=out)
    assert header(beside.stdout) == ("Average delay (RESCO definition), s: mean ± 95% CI over seeds 1–2; change vs "
                                     "fixed under the same profile, Welch p.")
    assert "%, p " in [line for line in beside.stdout.splitlines() if line.startswith("|")][-1]  # the last row


def test_the_header_says_the_seeds_the_cells_have(resco, city, tmp_path):
    out = tmp_path / "out"
    keep(resco, out, resco.plan([city], ["benchmark"], ["max-pressure"], [1], resco.REFERENCE_SCRIPT))
    args = ["--networks", city, "--controllers", "max-pressure", "--profiles", "benchmark", "--table-only"]
    partial = bench(*args, "--seeds", "3", out=out)  # an interrupted sweep's: 1 of its 3 seeds
    assert header(partial.stdout) == ("Average delay (RESCO definition), s: mean ± 95% CI over seeds 1–3, or over "
                                      "the seeds a cell has where it says [k of 3 seeds].")
    assert "[1 of 3 seeds]" in partial.stdout
    one = bench(*args, "--seeds", "1", out=out)
    assert header(one.stdout) == "Average delay (RESCO definition), s: seed 1."


def test_one_teleport_and_one_violation_are_singular(resco):
    row = {"seed": 1, "profile": "safety", "controller": "fixed", "avg_delay_s": 40.0, "teleports": 1,
           "violations": 1}
    assert resco.cell_notes([row], 1) == ", 1 teleport, **1 violation**"
    assert resco.cell_notes([row, {**row, "seed": 2}], 2) == ", 2 teleports, **2 violations**"


def test_workers_above_the_cpus_are_cut_to_them_and_said(resco, city, tmp_path):
    out = tmp_path / "out"
    keep(resco, out, resco.plan([city], ["benchmark"], ["fixed"], [1], resco.REFERENCE_SCRIPT))
    cpus = len(os.sched_getaffinity(0))
    done = bench("--networks", city, "--controllers", "fixed", "--profiles", "benchmark", "--seeds", "1",
                 "--workers", str(cpus + 6), out=out)
    assert done.returncode == 0, done.stderr
    assert (f"note: --workers {cpus + 6} is more than the {cpus} CPU(s) this process may use: {cpus} run at once"
            in done.stderr.splitlines())
    assert f"1 cells, 1 cached, 0 to run on {cpus} worker(s)" in done.stderr.splitlines()
    assert resco.usable_workers(cpus + 6, "local") == cpus  # a Ray started here has these CPUs too
    assert resco.usable_workers(cpus + 6, "ray://head:10001") == cpus + 6  # a cluster's are its own
    assert resco.usable_workers(1) == 1


@pytest.mark.parametrize("script", ["pressure_variants.py", "safety_price.py"])
def test_the_other_sweeps_say_no_cell_is_kept_and_leave_the_table_alone(tmp_path, script):
    """They print their tables with resco.py's machinery: over no kept cell, a word on stderr and the kept table
    untouched, not an empty table over it."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "table.md").write_text("a table kept earlier\n")
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--table-only", "--networks", "resco:cologne1",
                           "--seeds", "1", "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no cell of this selection is kept" in done.stderr and "resco:cologne1" in done.stderr
    assert done.stdout == ""
    assert (out / "table.md").read_text() == "a table kept earlier\n"
