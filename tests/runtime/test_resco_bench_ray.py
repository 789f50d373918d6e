"""bench/resco.py --ray: the cells as Ray tasks on a local Ray (`--ray-address local`, the default) give
what the local worker processes give: the same cells kept in the same place, the same figures, the same
resume and the same report of a cell that fails.

One sweep of three cells on each path (fixed and max-pressure on the single intersection over one minute,
and a controller whose model does not exist), run side by side: one Ray start for the module, overlapping
the local run. Ray keeps its sessions in a directory of the test's own (RAY_TMPDIR), which ends empty of
processes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from support.cli import stop_if_running

# slow (`make test-all`, not `make test`): the tests here share one module fixture of many seconds
pytestmark = pytest.mark.slow

pytest.importorskip("ray", reason="Ray is not installed (pip install 'signalwise[ray]'): no --ray sweep")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "resco.py"
SINGLE = ROOT / "src" / "signalwise" / "sim" / "scenarios" / "single"
GOOD = "fixed,max-pressure"
MISSING = "ql:/no/such/model"
SWEEP = ["--controllers", f"{GOOD},{MISSING}", "--profiles", "benchmark", "--seeds", "1", "--workers", "2"]


def processes_under(ray_tmp: Path) -> dict[int, str]:
    """By process id, the command lines of the processes that hold a file under `ray_tmp` open (each of
    Ray's logs to its session directory there) or were started with RAY_TMPDIR=`ray_tmp`. Their command lines
    cannot tell: Ray's agents and workers retitle themselves (`ray::IDLE`), which may overwrite their
    environment too."""
    mark, under = f"RAY_TMPDIR={ray_tmp}".encode(), f"{ray_tmp}/"
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if mark in (proc / "environ").read_bytes().split(b"\0") or any(
                    os.readlink(fd).startswith(under) for fd in (proc / "fd").iterdir()):
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
                found[int(proc.name)] = cmdline.decode(errors="replace")
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return found


def failed_lines(stderr: str) -> list[str]:
    """A sweep's failed cells as it says them, without their place in its order (`[3/3] `)."""
    return sorted(line.split("] ", 1)[1] for line in stderr.splitlines() if ": FAILED " in line)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """The same three cells on Ray and on local processes, and a second --ray run of the two that ran."""
    tmp = tmp_path_factory.mktemp("resco-ray")
    city = tmp / "city.sumocfg"
    city.write_text(f'<configuration><input><net-file value="{SINGLE / "net.net.xml"}"/>'
                    f'<route-files value="{SINGLE / "demand.rou.xml"}"/></input>'
                    '<time><begin value="0"/><end value="60"/></time></configuration>')
    # short: Ray's socket paths under it must stay within a Unix socket's 107 characters (under pytest's
    # tmp_path they may not)
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray-"))
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)}

    def bench(out: Path, *args: str, **kw):
        return [sys.executable, str(SCRIPT), "--networks", str(city), *args, "--out", str(out)], \
            dict(cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

    try:
        # Ray's start, most of its wall time, overlaps the local run (one worker: the machine has few cores)
        cmd, kw = bench(tmp / "ray", *SWEEP, "--ray")
        on_ray = subprocess.Popen(cmd, **kw)
        try:
            cmd, kw = bench(tmp / "processes", *SWEEP[:-1], "1")
            processes = subprocess.run(cmd, timeout=120, **kw)
            ray_out, ray_err = on_ray.communicate(timeout=240)
        finally:
            stop_if_running(on_ray)  # the local run failed, or Ray hangs
        first = subprocess.CompletedProcess(on_ray.args, on_ray.returncode, ray_out, ray_err)
        kept = {p: p.stat().st_mtime_ns for p in sorted((tmp / "ray").glob("cells/**/*.json"))}
        cmd, kw = bench(tmp / "ray", "--controllers", GOOD, *SWEEP[2:], "--ray")
        again = subprocess.run(cmd, timeout=120, **kw)
        # Ray's processes end with the command that started them (its atexit shutdown), a moment after it
        deadline = time.monotonic() + 15
        while (left := processes_under(ray_tmp)) and time.monotonic() < deadline:
            time.sleep(0.2)
        yield {"ray": first, "processes": processes, "again": again, "kept": kept, "out": tmp,
               "ray_tmp": ray_tmp, "left": left}
    finally:
        for pid in processes_under(ray_tmp):  # whatever Ray left (the test below fails): only this test's own
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def cells(out: Path) -> dict[str, dict]:
    return {str(p.relative_to(out)): json.loads(p.read_text()) for p in sorted(out.glob("cells/**/*.json"))}


def test_ray_keeps_every_cell_where_processes_do_and_writes_the_table(sweeps):
    ray, processes = sweeps["ray"], sweeps["processes"]
    assert "3 cells, 0 cached, 3 to run on Ray" in ray.stderr
    assert "3 cells, 0 cached, 3 to run on 1 worker(s)" in processes.stderr
    on_ray, local = cells(sweeps["out"] / "ray"), cells(sweeps["out"] / "processes")
    assert sorted(on_ray) == sorted(local) and len(on_ray) == 2, (ray.stderr[-3000:],
                                                                   processes.stderr[-3000:])
    assert {c["controller"] for c in on_ray.values()} == {"fixed", "max-pressure"}
    # the table the first run printed and kept (the second run keeps its own, of two cells, in its place)
    table = (sweeps["out"] / "processes" / "table.md").read_text()
    assert ray.stdout == processes.stdout == table
    assert (sweeps["out"] / "ray" / "table.md").exists()
    row = next(line for line in table.splitlines() if line.startswith("| city.sumocfg | benchmark |"))
    fixed, max_pressure, missing = row.split(" | ")[2:5]
    assert fixed and max_pressure.endswith("%)") and missing == "– |"


def test_ray_gives_the_same_figures_as_local_processes(sweeps):
    on_ray, local = cells(sweeps["out"] / "ray"), cells(sweeps["out"] / "processes")
    for path, figures in on_ray.items():
        assert figures["vehicles_total"] > 0 and figures["avg_delay_s"] > 0
        assert {k: v for k, v in figures.items() if k != "wall_s"} == \
            {k: v for k, v in local[path].items() if k != "wall_s"}, path


def test_a_cell_that_fails_on_ray_is_said_as_on_processes_and_fails_the_command(sweeps):
    ray, processes = sweeps["ray"], sweeps["processes"]
    assert ray.returncode == processes.returncode == 1
    said = failed_lines(ray.stderr)
    assert said == failed_lines(processes.stderr), ray.stderr[-3000:]
    assert len(said) == 1 and said[0].startswith(f"city.sumocfg benchmark {MISSING} s1: FAILED "
                                                 f"ControllerUnavailable: controller '{MISSING}' cannot run")
    assert "RayTaskError" not in ray.stderr and "Traceback" not in ray.stderr
    assert ray.stderr.strip().splitlines()[-1].startswith("error: 1 cell(s) failed")


def test_a_second_ray_run_runs_no_cell_again(sweeps):
    again = sweeps["again"]
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 cells, 2 cached, 0 to run on Ray" in again.stderr
    assert "Started a local Ray instance" not in again.stderr  # nothing to run: no Ray started
    out = sweeps["out"] / "ray"
    assert {p: p.stat().st_mtime_ns for p in sorted(out.glob("cells/**/*.json"))} == sweeps["kept"]
    assert "| city.sumocfg | benchmark |" in again.stdout


def test_ray_runs_in_its_temp_dir_and_leaves_no_process(sweeps):
    assert list((sweeps["ray_tmp"] / "ray").glob("session_*")), "Ray did not run under RAY_TMPDIR"
    assert sweeps["left"] == {}
