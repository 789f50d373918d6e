"""What `signalwise vision run` says it could not judge, its crossings' `joined` column, and speeds no vehicle goes.

- A kind of violation nobody looked for (no speed_limit_mps: no speeding; no stop lines or no --signals: no red
  light) is said in the summary, not left as a 0 that reads "nobody sped".
- A crossing on the path between a lost track and the one continuing it (`joined`, which calls no red light) is
  marked in crossings.csv, so a red crossing without a violation is not taken for a miss.
- A track measured faster than the camera's `max_plausible_speed_mps` (a 5 frame/s video read as 25 frame/s) calls
  no speeding violation and is flagged in the summary.
"""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
import yaml
from support.cli import signalwise
from vision_scenes import small_scene, write_signals


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """10 s of the small scene (320x240, 10 frames/s), its camera file's contents and its signal states."""
    from signalwise.vision.synthetic import write_video

    d = tmp_path_factory.mktemp("judgement")
    scene = small_scene(seed=9, speeder_share=0.3)
    truth = write_video(d / "clip.mp4", scene, 10.0)
    write_signals(d / "signals.csv", truth["states"])
    return d, scene.camera_config()


def _run(d, tmp_path, camera: dict, *args):
    tmp_path.mkdir()
    (tmp_path / "cam.yaml").write_text(yaml.safe_dump(camera))
    out = tmp_path / "out"
    p = signalwise("vision", "run", "--video", str(d / "clip.mp4"), "--camera", str(tmp_path / "cam.yaml"),
                   "--out", str(out), *map(str, args))
    assert p.returncode == 0, p.stderr
    return p.stdout, json.loads((out / "summary.json").read_text())


@pytest.mark.slow
def test_a_kind_nobody_looked_for_is_said_not_counted_as_zero(clip, tmp_path):
    d, camera = clip
    no_limit = {k: v for k, v in camera.items() if k != "speed_limit_mps"} | {"speed_limit_mp": 13.89}
    stdout, summary = _run(d, tmp_path / "a", no_limit)
    assert "red light: not judged (no --signals: the signal states are unknown)" in stdout.splitlines()
    assert "speeding: not judged (the camera file gives no speed_limit_mps)" in stdout.splitlines()
    assert "violations" not in stdout.splitlines()[0]  # no "0 red-light and 0 speeding violations"
    assert summary["not_judged"] == {"red_light": "no --signals: the signal states are unknown",
                                     "speeding": "the camera file gives no speed_limit_mps"}
    # stop lines are what a red light is judged at: signal states without them judge none either
    stdout, summary = _run(d, tmp_path / "b", {**camera, "stop_lines": []}, "--signals", d / "signals.csv")
    assert "red light: not judged (the camera file gives no stop_lines)" in stdout.splitlines()
    assert re.search(r", \d+ speeding violations -> ", stdout.splitlines()[0]) and "speeding: not judged" not in stdout
    # both judged: both counted, nothing said of either
    stdout, summary = _run(d, tmp_path / "c", camera, "--signals", d / "signals.csv")
    assert "red-light and" in stdout and "not judged" not in stdout and summary["not_judged"] == {}


def _camera(**extra):
    """A 400x120 view of an east approach at 6 px/m, its stop line at x = 120 px (traffic drives west)."""
    from signalwise.vision.camera import camera_from_dict

    ppm = extra.pop("ppm", 6.0)
    w, h = extra.pop("size", (400, 120))
    pairs = [{"px": [x, y], "m": [x / ppm, -y / ppm]} for x in (0, w / 2, w - 1) for y in (0, h / 2, h - 1)]
    return camera_from_dict({
        "camera_id": "c", "device_id": "d", "calibration": pairs, "frame_size": [w, h],
        "stop_lines": [{"name": "e", "approach": "east", "px": [[120, 10], [120, h - 10]], "links": [0]}],
        "zones": [{"name": "e-queue", "approach": "east", "px": [[120, 10], [120, h - 10], [w - 10, h - 10],
                                                                  [w - 10, 10]]}], **extra})


class _Boxes:
    """A detector that sees exactly the boxes the script puts at each frame: {frame: [(x1, y1, x2, y2), ...]}."""

    name = "scripted"

    def __init__(self, boxes: dict[int, list], fps: float):
        self.boxes, self.fps = boxes, fps

    def detect(self, image, time_s):
        from signalwise.vision.detections import Detections

        here = self.boxes.get(round(time_s * self.fps), [])
        if not here:
            return Detections.empty()
        return Detections(np.array(here, np.float32), np.ones(len(here), np.float32))


def _video(path, n: int, fps: float, size=(400, 120)):
    import cv2

    w, h = size
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    rng = np.random.default_rng(1)
    for _ in range(n):
        out.write(rng.integers(0, 255, (h, w, 3), np.uint8))
    out.release()


def test_crossings_csv_says_which_crossings_were_joined(tmp_path):
    """On red: a car seen crossing is a red-light violation (joined false); one lost 1 m before the line and found
    past it under a new track is counted (joined true) and calls none, by design: nobody saw it on the line."""
    from signalwise.vision.video_run import check_inputs, run_video

    fps = 5.0
    seen = {k: 300.0 - 6.0 * k for k in range(40)}  # 5 m/s westwards, over the line at frame 30
    lost = {k: x for k, x in seen.items() if x > 126.0 or x < 80.0}  # unseen 1.6 s from 1 m before the line
    boxes = {k: [(x - 13.5, 44, x + 13.5, 55)] for k, x in seen.items()}
    for k, x in lost.items():  # the second car, in the other half of the lane, 50 frames later
        boxes.setdefault(k + 50, []).append((x - 13.5, 70, x + 13.5, 81))
    _video(tmp_path / "v.avi", 100, fps)
    (tmp_path / "cam.yaml").write_text(yaml.safe_dump(_camera().model_dump(exclude_none=True)))
    write_signals(tmp_path / "s.csv", [(0.0, "r"), (20.0, "r")], device="d")  # red all through the 20 s
    inputs = check_inputs(str(tmp_path / "v.avi"), tmp_path / "cam.yaml", tmp_path / "s.csv")
    run_video(inputs, tmp_path / "out", detector=_Boxes(boxes, fps))
    rows = list(csv.DictReader(open(tmp_path / "out" / "crossings.csv")))
    assert [(r["signal_state"], r["joined"]) for r in rows] == [("r", "false"), ("r", "true")], rows
    violations = list(csv.DictReader(open(tmp_path / "out" / "violations.csv")))
    assert [(v["kind"], v["track_id"]) for v in violations] == [("red_light", rows[0]["track_id"])]


def test_a_speed_no_vehicle_goes_calls_no_speeding_and_is_flagged():
    """Two cars at 25 frames/s, 2 px/m: one at 20 m/s (a speeder on a 13.89 m/s road), one at 100 m/s (what a
    5 frame/s video read as 25 frame/s measures). The first is ticketed, the second flagged, not ticketed."""
    from signalwise.vision.pipeline import Pipeline

    fps, ppm = 25.0, 2.0
    camera = _camera(ppm=ppm, size=(800, 100), speed_limit_mps=13.89, speed_tolerance_mps=2.0)
    boxes = {}
    for k in range(100):
        slow, fast = 780 - 20 * ppm * k / fps, 780 - 100 * ppm * k / fps
        boxes[k] = [(slow - 15, 20, slow + 15, 40)] + ([(fast - 15, 60, fast + 15, 80)] if fast > 130 else [])
    pipe = Pipeline(camera, _Boxes(boxes, fps))
    image = np.zeros((100, 800, 3), np.uint8)
    violations = [v for k in range(100) for v in pipe.process(image, k / fps).violations]
    assert [v.kind for v in violations] == ["speeding"] and violations[0].speed_mps == pytest.approx(20, abs=1)
    assert pipe.implausible_tracks == 1 and pipe.fastest_implausible_mps == pytest.approx(100, abs=3)


@pytest.mark.slow
def test_a_5_fps_video_run_as_25_fps_is_flagged_in_the_summary(tmp_path):
    """The camera engineer's case (the rate confirmed with --fps-override): every speed five times the real one;
    the fastest tracks are flagged, and no violation is stored at a speed over the plausible limit."""
    from signalwise.vision.synthetic import write_video

    scene = small_scene(fps=5.0, speeder_share=0.5, seed=11, arrivals_per_s=0.2)
    write_video(tmp_path / "clip5.mp4", scene, 40.0)
    (tmp_path / "cam.yaml").write_text(yaml.safe_dump(scene.camera_config()))
    p = signalwise("vision", "run", "--video", str(tmp_path / "clip5.mp4"), "--camera", str(tmp_path / "cam.yaml"),
                   "--fps", "25", "--fps-override", "--accept-suspect-calibration", "--out", str(tmp_path / "out"))
    assert p.returncode == 0, p.stderr
    line = next((x for x in p.stdout.splitlines() if "implausible speeds" in x), "")
    assert "(> 252 km/h, 70 m/s; fastest" in line and line.endswith(
        "check the fps and calibration; their speeds judged no speeding"), p.stdout
    fast = json.loads((tmp_path / "out" / "summary.json").read_text())["implausible_speeds"]
    assert fast["tracks"] >= 1 and fast["limit_mps"] == 70.0 and fast["fastest_mps"] > 70
    speeds = [float(v["speed_mps"]) for v in csv.DictReader(open(tmp_path / "out" / "violations.csv"))]
    assert speeds and max(speeds) <= 70.0


def test_a_plausible_speed_limit_at_or_under_the_speeding_threshold_is_refused():
    from signalwise.vision.camera import CameraFileError

    with pytest.raises(CameraFileError, match=r"max_plausible_speed_mps: 15 m/s is not above speed_limit_mps \+ "
                                              r"speed_tolerance_mps \(15.89 m/s\)"):
        _camera(speed_limit_mps=13.89, speed_tolerance_mps=2.0, max_plausible_speed_mps=15)
    assert _camera(max_plausible_speed_mps=15).max_plausible_speed_mps == 15  # no limit: nothing to be above
