"""The camera in the loop, short: the controller runs on what the pipeline makes of sumo-gui's frames."""

from __future__ import annotations

import json

import pytest
from support.xvfb import xvfb_unavailable_reason

pytest.importorskip("cv2")

pytestmark = pytest.mark.slow


def test_the_controller_runs_on_the_camera_and_both_delays_are_compared(tmp_path):
    reason = xvfb_unavailable_reason()
    if reason:
        pytest.skip(reason)
    from signalwise.runtime.camera_loop import CameraLoopOptions, run_camera_loop

    result = run_camera_loop(CameraLoopOptions(tmp_path, "single", "actuated", duration_s=20.0, step_s=0.2, seed=1),
                             say=lambda _m: None)
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
    assert json.loads((tmp_path / "camera_loop.json").read_text())["met"] == result["met"]
