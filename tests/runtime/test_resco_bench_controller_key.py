"""bench/resco.py keys a user's controller's cells by its code, and takes a `--config` file for every cell: a `py:`
file edited runs its cells again (the old figure was served), left alone (or put back) it is served from the cache,
and a `--config` file's `controller_options` reach the run, its digest in the key too.

Real sweeps of one cell: the single intersection over one minute, in the script's own worker process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "resco.py"
SINGLE = ROOT / "src" / "signalwise" / "sim" / "scenarios" / "single"
CONTROLLER = '''\
from signalwise.core import Decision

FAIL = False


class Hold:
    name = "hold"
    observation = "none"
    wants_detectors = False
    period_s = 5.0

    def __init__(self, inter, fail):
        self.inter, self.fail = inter, fail

    def decide(self, obs):
        if FAIL or self.fail:
            raise RuntimeError("asked to fail")
        return Decision(self.inter.id, None, "hold")


def make(inter, ctx):
    return Hold(inter, ctx.options.get("user", {}).get("fail", False))
'''


def sweep(tmp_path: Path, *more: str) -> tuple[str, list[dict]]:
    """One sweep of the one cell: what it said of the cache, and every cell kept so far."""
    done = subprocess.run([sys.executable, str(SCRIPT), "--networks", str(tmp_path / "city.sumocfg"), "--controllers",
                           "py:ctl.py:make", "--profiles", "safety", "--seeds", "1", "--workers", "1", "--out",
                           str(tmp_path / "out"), *more], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    (said,) = [line for line in done.stderr.splitlines() if " cells, " in line]
    return said, [json.loads(p.read_text()) for p in sorted((tmp_path / "out").glob("cells/**/*.json"))]


@pytest.mark.slow
def test_an_edited_controller_runs_its_cell_again_and_a_config_file_reaches_every_cell(tmp_path):
    (tmp_path / "city.sumocfg").write_text(
        f'<configuration><input><net-file value="{SINGLE / "net.net.xml"}"/>'
        f'<route-files value="{SINGLE / "demand.rou.xml"}"/></input>'
        '<time><begin value="0"/><end value="60"/></time></configuration>')
    ctl = tmp_path / "ctl.py"
    ctl.write_text(CONTROLLER)
    said, cells = sweep(tmp_path)
    assert said.startswith("1 cells, 0 cached, 1 to run") and cells[0]["controller_errors"] == 0

    said, _ = sweep(tmp_path)  # nothing changed: served from the cache
    assert said.startswith("1 cells, 1 cached, 0 to run")

    ctl.write_text(CONTROLLER.replace("FAIL = False", "FAIL = True"))
    said, cells = sweep(tmp_path)  # the file changed under the same spec: its cell runs again
    assert said.startswith("1 cells, 0 cached, 1 to run"), said
    assert sorted(c["controller_errors"] > 0 for c in cells) == [False, True]

    ctl.write_text(CONTROLLER)  # put back: its first figure is the one kept for it
    said, _ = sweep(tmp_path)
    assert said.startswith("1 cells, 1 cached, 0 to run")

    (tmp_path / "fail.yaml").write_text("controller_options:\n  user: {fail: true}\n")
    said, cells = sweep(tmp_path, "--config", "fail.yaml")
    assert said.startswith("1 cells, 0 cached, 1 to run")
    (configured,) = [c for c in cells if c.get("config_sha256")]
    assert configured["controller_errors"] > 0  # the file's option reached the controller
    said, _ = sweep(tmp_path, "--config", "fail.yaml")
    assert said.startswith("1 cells, 1 cached, 0 to run")


def test_a_config_file_setting_what_the_sweep_sets_is_refused_before_any_run(tmp_path):
    (tmp_path / "seed.yaml").write_text("seed: 3\n")
    done = subprocess.run([sys.executable, str(SCRIPT), "--networks", "single", "--controllers", "fixed",
                           "--config", str(tmp_path / "seed.yaml"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: --config {tmp_path / 'seed.yaml'}: sets seed, which the sweep sets for "
                                   "each cell (with --seeds); leave it out of the file")
    assert not (tmp_path / "out").exists()
