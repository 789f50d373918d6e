"""bench/resco.py as a command: what it refuses before any run, a cell that fails, Ctrl-C in a sweep, and a run
whose controller raised errors (kept, and marked in the table)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.scripts import load_script

from signalwise.control.base import register
from signalwise.core import Decision

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "resco.py"
SINGLE = ROOT / "src" / "signalwise" / "sim" / "scenarios" / "single"


@pytest.fixture(scope="module")
def resco():
    module = load_script(SCRIPT, "resco_bench_sweep")
    return module


@pytest.fixture
def city(tmp_path) -> Path:
    """The single intersection over one minute: a cell runs in about 3 s, most of it starting Python."""
    cfg = tmp_path / "city.sumocfg"
    cfg.write_text(f'<configuration><input><net-file value="{SINGLE / "net.net.xml"}"/>'
                   f'<route-files value="{SINGLE / "demand.rou.xml"}"/></input>'
                   '<time><begin value="0"/><end value="60"/></time></configuration>')
    return cfg


def bench(*args: str, out: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(out)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, **kw)


def cells_kept(out: Path) -> list[Path]:
    return sorted(out.glob("cells/**/*.json"))


@pytest.mark.parametrize(("args", "says"), [
    (["--controllers", "fixed,bogus"], "error: unknown controller(s) bogus; --controllers takes "),
    (["--controllers", "maxpressure_ref:x"], "error: unknown controller(s) maxpressure_ref:x;"),
    (["--profiles", "fast"], "error: unknown profile(s) fast;"),
    (["--seeds", "0"], "error: argument --seeds: must be 1 or more, not 0"),
    (["--workers", "0"], "error: argument --workers: must be 1 or more, not 0"),
])
def test_a_wrong_argument_is_refused_in_one_line_before_any_run(city, tmp_path, args, says):
    done = bench("--networks", str(city), *args, out=tmp_path / "out")
    assert done.returncode == 2
    assert says in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_ray_missing_is_said_in_one_line(city, tmp_path):
    # Ray is installed here: the interpreter is told it is not (`import ray` raises ImportError)
    code = ("import runpy, sys; sys.modules['ray'] = None; "
            f"sys.argv = ['resco.py', '--ray', '--networks', {str(city)!r}, '--controllers', 'fixed', "
            f"'--out', {str(tmp_path / 'out')!r}]; "
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --ray needs Ray: pip install 'signalwise[ray]'"
    assert not (tmp_path / "out").exists()


def test_help_describes_every_option_with_its_default(tmp_path):
    text = " ".join(bench("--help", out=tmp_path).stdout.split())
    options = text[text.index("options:"):]
    for flag in ("--networks", "--controllers", "--profiles", "--seeds", "--workers", "--out", "--table-only",
                 "--fresh", "--ray", "--ray-address", "--reference-script", "--duration"):
        described = re.search(re.escape(flag) + r"(?: [A-Z_]+)? (\S+)", options)
        assert described and not described.group(1).startswith("--"), flag
    for default in ("(default: 5)", "(default: 2)", "(default: local)", "(default: safety,benchmark,reference)",
                    "(default: fixed,max-pressure,maxpressure_ref)"):
        assert default in options


def test_duration_on_a_named_scenario_is_said_to_be_ignored(tmp_path):
    done = bench("--networks", "single", "--controllers", "fixed", "--profiles", "benchmark", "--seeds", "1",
                 "--duration", "30", "--table-only", out=tmp_path / "out")
    assert done.returncode == 0
    assert "warning: --duration applies to .sumocfg networks only; single run over their own window" in done.stderr


def test_a_failed_cell_says_its_whole_error_is_not_kept_and_fails_the_command(city, tmp_path):
    out = tmp_path / "out"
    done = bench("--networks", str(city), "--controllers", "ql:/no/such/model", "--profiles", "benchmark",
                 "--seeds", "1", "--workers", "1", out=out)
    assert done.returncode == 1, done.stderr
    failed = next(line for line in done.stderr.splitlines() if "FAILED" in line)
    assert "FAILED ControllerUnavailable: controller 'ql:/no/such/model' cannot run" in failed
    assert "/no/such/model: no such model" in failed
    assert done.stderr.strip().splitlines()[-1].startswith("error: 1 cell(s) failed")
    assert cells_kept(out) == []  # a rerun runs it again


def test_ctrl_c_stops_the_sweep_keeps_the_finished_cells_and_says_how_to_resume(city, tmp_path):
    out = tmp_path / "out"
    args = [sys.executable, str(SCRIPT), "--networks", str(city), "--controllers", "fixed", "--profiles", "benchmark",
            "--seeds", "12", "--workers", "1", "--out", str(out)]
    # twelve cells of about 3 s, one at a time: a loaded machine that stalls this test for seconds after the first
    # cell still presses Ctrl-C mid-sweep (with four, CI's sweep once ended first, exit 0)
    # its own process group, as a terminal's Ctrl-C reaches the command and its workers; with the SIGINT a terminal
    # would give it: a suite started in the background (`make test &`) ignores SIGINT, Python leaves it ignored in
    # every child, and the sweep then ran all twelve cells and exited 0
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not cells_kept(out) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert cells_kept(out), "no cell finished within 60 s"
        os.killpg(proc.pid, signal.SIGINT)
        stderr = proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert "Traceback" not in stderr, stderr
    last = re.fullmatch(r"interrupted: (\d+) of 12 cells done; run the same command again to resume",
                        stderr.strip().splitlines()[-1])
    assert last and 1 <= int(last.group(1)) < 12
    assert len(cells_kept(out)) == int(last.group(1))
    # the same command again starts from the kept cells (here only the table, from them)
    table = bench(*args[2:-2], "--table-only", out=out)
    assert table.returncode == 0 and f"[{last.group(1)} of 12 seeds]" in table.stdout


class Crashing:
    """A controller whose every decision raises: the shield serves its fallback plan all run long."""

    name = "crashing"
    observation = "none"
    wants_detectors = False
    period_s = 5.0

    def __init__(self, inter, ctx):
        self.inter = inter

    def decide(self, obs) -> Decision:
        raise RuntimeError("crashing controller")


register("crashing", internal=True)(Crashing)


def test_a_run_with_controller_errors_is_kept_with_their_count_and_marked_in_the_table(resco, city, tmp_path):
    cells = resco.plan([str(city)], ["benchmark"], ["fixed", "crashing"], [1], resco.REFERENCE_SCRIPT)
    results = [resco.run_cell(c) for c in cells]  # in this process, where the crashing controller is registered
    fixed, crashing = results
    assert fixed["controller_errors"] == 0 and crashing["controller_errors"] > 0
    assert crashing["fallback_share"] > 0.5
    for n, (cell, result) in enumerate(zip(cells, results, strict=True), 1):
        assert resco._keep(tmp_path, cell, None, result, n, len(cells))
    grouped = resco.load_cells(tmp_path, cells)
    assert grouped[(str(city), "benchmark", "crashing")][0]["controller_errors"] == crashing["controller_errors"]
    row = resco.table(grouped, [str(city)], ["benchmark"], ["fixed", "crashing"], seeds=1).splitlines()[-1]
    fixed_txt, crashing_txt = row.split(" | ")[2:4]
    assert "controller errors" not in fixed_txt
    assert crashing_txt.endswith("**controller errors in 1 run** |")
    assert "controller errors in 2 runs" in resco.cell_notes([crashing, {**crashing, "seed": 2}], 2)


@pytest.mark.slow
def test_a_model_changed_under_the_same_path_is_run_again_and_its_other_profile_is_said(city, tmp_path):
    """Cells were kept by the `ql:PATH` string: a model trained again under the same path kept showing the old
    model's figures. They are kept by the model's digest (evaluations left out, which `evaluate` adds)."""
    import json
    import shutil

    from signalwise.control.learning.shipped import shipped_model_path

    model = tmp_path / "models" / "single" / "model"
    shutil.copytree(shipped_model_path("single"), model)
    args = ["--networks", str(city), "--controllers", f"ql:{model}", "--profiles", "benchmark", "--seeds", "1",
            "--workers", "1"]
    first = bench(*args, out=tmp_path / "out")
    assert first.returncode == 0, first.stderr
    assert "note: ql:" in first.stderr and "trained under the safety timing profile; its benchmark cells" in first.stderr
    meta = json.loads((model / "meta.json").read_text())
    meta["evaluations"] = [*meta.get("evaluations", []), {"avg_delay_s": 1.0}]  # what `evaluate` adds
    (model / "meta.json").write_text(json.dumps(meta))
    assert "1 cells, 1 cached, 0 to run" in bench(*args, out=tmp_path / "out").stderr
    meta["policy"]["weights"] = [w * 0.5 for w in meta["policy"]["weights"]]  # the model trained again
    (model / "meta.json").write_text(json.dumps(meta))
    again = bench(*args, out=tmp_path / "out")
    assert again.returncode == 0 and "1 cells, 0 cached, 1 to run" in again.stderr
    assert len(cells_kept(tmp_path / "out")) == 2
