"""`signalwise live --camera VIDEO=CAMERA.yaml` makes the calibration checks `vision run` makes before a run: a
camera seen at under 2.75 px per road metre (or whose surveyed points miss the fit by over 0.5 m RMS) is refused at
start, one `error:` line naming why (exit 2), unless `--accept-suspect-calibration` is given; accepted, its stream
runs marked so that every violation it stores carries the reasons (`judged_with.calibration_suspect`)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("cv2", reason="camera inputs need OpenCV (pip install 'signalwise[vision]')")

from test_live_cameras import CHANNEL, LINKS  # noqa: E402

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
COARSE = "zone n-queue is seen at 2.00 px per road metre, under the 2.75 the detector needs to tell vehicles apart"


def _coarse_camera(folder: Path) -> str:
    """A 1 s clip of the synthetic intersection seen at 2 px per road metre and its camera file mapped on to
    `single`'s signal C (as test_live_camera_command.py maps its own), as `--camera`: an input the run takes but for
    its resolution."""
    from signalwise.vision.synthetic import Scene, write_video

    scene = Scene(width_px=320, height_px=240, px_per_m=2.0, fps=10.0, seed=3, arrivals_per_s=0.3)
    write_video(folder / "clip.avi", scene, 1.0, fourcc="MJPG")
    cfg = scene.camera_config(camera_id="cam-1", device_id="C")
    for line in cfg["stop_lines"]:
        line["links"] = LINKS[line["approach"]]
    for zone in cfg["zones"]:
        zone["channel"] = CHANNEL[zone["approach"]]
    (folder / "cam.yaml").write_text(yaml.safe_dump(cfg))
    return f"{folder / 'clip.avi'}={folder / 'cam.yaml'}"


def test_a_camera_seen_too_coarsely_is_refused_at_start(tmp_path):
    camera = _coarse_camera(tmp_path)
    env = {**os.environ, "SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}",
           "SIGNALWISE_EVIDENCE_DIR": str(tmp_path / "evidence")}
    done = subprocess.run([SIGNALWISE, "live", "--scenario", "single", "--field", "none", "--port", "0",
                           "--out", str(tmp_path / "runs"), "--camera", camera, "--speed", "max", "--duration", "10"],
                          capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --camera {camera}: the calibration is suspect: {COARSE}")
    assert "--accept-suspect-calibration runs it anyway" in lines[0], lines
    assert not (tmp_path / "runs").exists()


def test_with_accept_suspect_calibration_the_camera_runs_marked(tmp_path):
    """The start path in-process (`_camera_streams`, which the command runs before anything starts): accepted, the
    stream's spec accepts it and names the camera file by its path and SHA-256, so the stream manager adds it and
    its stored violations carry the reasons."""
    from signalwise.api.live_command import _camera_streams
    from signalwise.vision.manager import ManagedStream, StreamManager

    (spec,) = _camera_streams([_coarse_camera(tmp_path)], accept_suspect=True)
    digest = hashlib.sha256((tmp_path / "cam.yaml").read_bytes()).hexdigest()
    assert spec.accept_suspect_calibration
    assert spec.camera_file == {"path": str(tmp_path / "cam.yaml"), "sha256": digest}
    judged = ManagedStream(spec).footage.judged_with
    assert judged["camera_file"] == spec.camera_file and len(judged["calibration_suspect"]) == 1
    assert judged["calibration_suspect"][0].startswith(COARSE), judged
    mgr = StreamManager()
    try:
        added = mgr.add(spec, start=False)
    finally:
        mgr.close()
    assert any(COARSE in w for w in added["warnings"]), added["warnings"]
