"""Smaller things a traffic engineer's trial of the vision pipeline found:

- the evidence box is drawn white on black, so it shows on a red car (a red box vanished on one);
- a stream's `summary.json` gives the rate its frames came at (`fps_source`, measured) apart from the rate its
  header states (`fps_declared`: an MJPEG stream over HTTP states none, and FFmpeg says 25);
- a vehicle that stops hard reads 0 m/s once it stands, not a second of 1-4 m/s from the parabola curving back;
- `signalwise detectors` gives each lane's signal links, and per approach the groups a camera file's
  `stop_lines[].links` take."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.cli import signalwise


def test_the_evidence_box_shows_on_a_red_car():
    from signalwise.vision.evidence import EvidenceJob, annotate

    image = np.full((200, 200, 3), 85, np.uint8)
    image[60:140, 80:120] = (0, 0, 255)  # a red car, BGR
    out = annotate(EvidenceJob(None, image, (80, 60, 120, 140), (), None, ()))
    edge = out[60, 85:115].astype(int)  # the box's top edge, over the car
    red = np.array([0, 0, 255])
    assert max(np.abs(p - red).sum() for p in edge) > 400  # not red on red: white or black there
    ring = out[56:65, 100].astype(int)  # across the top edge: both a near-white and a near-black pixel
    assert ring.sum(axis=1).max() > 700 and ring.sum(axis=1).min() < 60, ring


def test_a_vehicle_that_stops_hard_reads_no_speed_once_it_stands():
    """10 m/s braking to a stop within 2 m (25 m/s^2), positions to the pixel (1/8 m), 10 frames/s: 0.3 s after it
    stood it reads under 0.5 m/s, and 0 from then on (the parabola's overshoot read 1.5-4.2 m/s for a second)."""
    from signalwise.vision.speed import SpeedEstimator

    est, fps, stop_at = SpeedEstimator(), 10.0, 3.4
    readings = []
    for k in range(60):
        t = k / fps
        dt = t - 3.0
        x = 10 * dt if dt < 0 else (10 * dt - 12.5 * dt * dt if dt < 0.4 else 2.0)
        readings.append((t, est.add(1, t, round(x * 8) / 8, 0.0)))
    after = [v for t, v in readings if t >= stop_at + 0.3 - 1e-9]
    assert after[0] < 0.5 and after[1:] == [0.0] * (len(after) - 1), after
    assert all(v > 9.0 for t, v in readings if 1.5 <= t <= 3.0)


@pytest.mark.slow
def test_a_streams_summary_gives_the_rate_it_came_at_and_the_one_it_states(tmp_path):
    from vision_scenes import small_scene

    from signalwise.vision.mjpeg_server import MjpegServer

    scene = small_scene(seed=5)
    frames = [f for f, _t, _truth, _s in scene.frames(3.0)]
    (tmp_path / "cam.yaml").write_text(json.dumps(scene.camera_config()))
    server = MjpegServer(frames, fps=10).start()
    try:
        p = signalwise("vision", "run", "--video", server.url, "--camera", str(tmp_path / "cam.yaml"),
                       "--out", str(tmp_path / "out"), "--max-frames", "40")
    finally:
        server.stop()
    assert p.returncode == 0, p.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert 8.5 <= summary["fps_source"] <= 11.5, summary
    assert summary["fps_declared"] == 25.0  # what FFmpeg says of an MJPEG stream over HTTP, which states none


def test_the_detector_plan_gives_the_links_a_camera_stop_line_takes():
    p = signalwise("detectors", "-s", "single", "--format", "json")
    assert p.returncode == 0, p.stderr
    (signal,) = json.loads(p.stdout)["signals"]
    by_lane = {d["lane"]: d["links"] for d in signal["detectors"]}
    assert by_lane["N_C_1"] == [0, 1] and by_lane["N_C_2"] == [2] and by_lane["N_C_3"] == [3]
    # the through and right lanes of each approach (phase 1 or 3), and its left-turn lane (phase 2 or 4) apart: the
    # links tests/runtime/test_live_cameras.py gives its stop lines
    groups = {a: [(g["phase"], g["links"]) for g in gs] for a, gs in signal["approach_links"].items()}
    assert groups == {"north": [(1, [0, 1, 2]), (2, [3])], "east": [(3, [4, 5, 6]), (4, [7])],
                      "south": [(1, [8, 9, 10]), (2, [11])], "west": [(3, [12, 13, 14]), (4, [15])]}
    table = signalwise("detectors", "-s", "single", env={"COLUMNS": "200"})
    assert "links" in table.stdout and ("C: a camera file's stop_lines[].links, one group per stop line: north "
                                        "[0, 1, 2] (phase 1), [3] (phase 2);") in table.stdout, table.stdout
