"""`signalwise run --gui` on your own network: sumo-gui opens, the run goes, and it ends on its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.xvfb import xvfb_unavailable_reason

from signalwise.sim.scenario import load

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))


def test_a_gui_run_starts_and_ends_without_anyone_at_the_window(tmp_path):
    """sumo-gui waits for its play button before the first step and, once TraCI lets go, keeps its window open:
    the run sat at 0 sim-min, and after the last step never wrote its evidence until the window was closed."""
    reason = xvfb_unavailable_reason()
    if reason:
        pytest.skip(reason)
    sumocfg = Path(load("single").net_file).with_name("scenario.sumocfg")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    p = subprocess.Popen(["xvfb-run", "-a", SIGNALWISE, "run", "--sumocfg", str(sumocfg), "--gui", "--duration", "60",
                          "--controller", "actuated", "--no-emissions", "--run-dir", str(tmp_path / "run")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        _out, err = p.communicate(timeout=45)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # xvfb-run, Xvfb, signalwise and sumo-gui: all of this test's
        p.communicate()
        pytest.fail("the --gui run did not end on its own within 45 s")
    assert p.returncode == 0, err
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "complete"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["network"]["vehicles_total"] > 0 and metrics["safety"]["violations"] == 0
