"""The camera in the loop, short, through `signalwise vision loop`: the controller runs on what the pipeline makes
of sumo-gui's frames, and the command says both delays and writes them to camera_loop.json."""

from __future__ import annotations

import json
import re

import pytest
from support.cli import signalwise
from support.xvfb import xvfb_unavailable_reason

pytest.importorskip("cv2")

pytestmark = pytest.mark.slow


def test_the_controller_runs_on_the_camera_and_both_delays_are_compared(tmp_path):
    reason = xvfb_unavailable_reason()
    if reason:
        pytest.skip(reason)
    done = signalwise("vision", "loop", "--out", str(tmp_path), "--scenario", "single", "--controller", "actuated",
                      "--duration", "20", "--step", "0.2", "--seed", "1")
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "camera_loop.json").read_text())
    assert result["camera"]["frames"] >= 90  # one frame per step of the 20 s (a few went to calibration)
    # the camera's data were fresh and healthy: the shield did not fall back to its plan
    assert result["camera"]["fallback_fraction"] < 0.05
    for side in ("camera", "loop_detectors"):
        metrics = json.loads((tmp_path / ("camera" if side == "camera" else "loop-detectors") /
                              "metrics.json").read_text())
        assert metrics["controller_ran"] and metrics["network"]["avg_delay_s"] == result[side]["avg_delay_s"]
    assert result["delay_change"] == pytest.approx(
        (result["camera"]["avg_delay_s"] - result["loop_detectors"]["avg_delay_s"])
        / result["loop_detectors"]["avg_delay_s"])
    said = re.search(r"average delay ([\d.]+) s fed by loops, ([\d.]+) s fed by the camera \(([+-][\d.]+)%; "
                     r"target within 10 %: (met|MISSED)\)", done.stdout)
    assert said, done.stdout
    assert float(said[1]) == pytest.approx(result["loop_detectors"]["avg_delay_s"], abs=0.05)
    assert float(said[2]) == pytest.approx(result["camera"]["avg_delay_s"], abs=0.05)
    assert float(said[3]) == pytest.approx(100 * result["delay_change"], abs=0.05)
    assert (said[4] == "met") == result["met"]
    assert f"camera_loop.json: {tmp_path / 'camera_loop.json'}" in done.stdout
