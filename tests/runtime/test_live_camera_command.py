"""`signalwise live --field none --camera VIDEO=CAMERA.yaml` end to end on `single`: no detector message is ever
sent, so the controller runs on the camera alone; no red light is judged against the run's own (shadow) signal
states; when the clip ends its stream ends, the camera is unhealthy and the shield falls back, naming it. A stream
posted to the run for a signal it lacks is refused; bad `--camera` input is refused at start (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

pytest.importorskip("cv2", reason="camera inputs need OpenCV (pip install 'signalwise[vision]')")

from test_live_cameras import CHANNEL, LINKS  # noqa: E402

SIGNALWISE = str(Path(sys.executable).with_name("signalwise"))
#: the clip plays in wall time (5 s) and its frames are stamped when decoded: a frame's age on the run's clock is
#: its wall-clock lag times SPEED. At --speed 3 a 9 s max age is 3 wall seconds of lag allowed (at --speed 6 with 3 s,
#: half a second: a loaded machine processed every frame later than that and the camera was never trusted)
SPEED, DURATION_S, CLIP_S, MAX_AGE_S = 3, 30, 5.0, 9.0


def _camera_files(tmp_path, device_id="C"):
    """A 5 s clip of the synthetic intersection as NS turns green (queues leave north and south), and its camera
    file mapped on to `single`'s signal C; the south line watches C's east links, red while north-south is green."""
    import cv2

    from signalwise.vision.synthetic import Scene, write_video

    scene = Scene(width_px=320, height_px=240, px_per_m=4.0, fps=10.0, seed=3, arrivals_per_s=0.3)
    cv2.imwrite(str(tmp_path / "empty.png"), scene.render())  # nothing has arrived yet: the empty road
    for _ in range(480):
        scene.step(0.1)
    write_video(tmp_path / "clip.avi", scene, CLIP_S, fourcc="MJPG")
    cfg = scene.camera_config(camera_id="cam-1", device_id=device_id)
    links = {**LINKS, "south": LINKS["east"]}
    for line in cfg["stop_lines"]:
        line["links"] = links[line["approach"]]
    for zone in cfg["zones"]:
        zone["channel"] = CHANNEL[zone["approach"]]
    cfg.pop("speed_limit_mps")
    cfg["background_image"] = "empty.png"
    (tmp_path / "cam.yaml").write_text(yaml.safe_dump(cfg))
    return cfg


def _live(tmp_path, *args, port=0):
    env = {**os.environ, "SIGNALWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}",
           "SIGNALWISE_EVIDENCE_DIR": str(tmp_path / "evidence"),
           "SIGNALWISE_CAMERA_ALERTS_BUFFER_DIR": str(tmp_path / "alerts-buffer"),
           "SIGNALWISE_CAMERAS_DIR": str(tmp_path)}  # the clip a stream added over the API names
    return subprocess.Popen([SIGNALWISE, "live", "--scenario", "single", "--field", "none", "--port", str(port),
                             "--out", str(tmp_path / "runs"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)


@pytest.mark.slow
def test_a_camera_feeds_a_feed_only_run_its_red_lights_are_the_runs_and_its_end_is_a_fallback(tmp_path):
    from signalwise.vision.mjpeg_server import free_port

    cfg = _camera_files(tmp_path)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"shield": {"max_observation_age_s": MAX_AGE_S}}))
    port = free_port()
    proc = _live(tmp_path, "--camera", f"{tmp_path / 'clip.avi'}={tmp_path / 'cam.yaml'}", "--speed", str(SPEED),
                 "--duration", str(DURATION_S), "--controller", "max-pressure", "--config",
                 str(tmp_path / "run.yaml"), "--insecure-no-auth", port=port)
    try:
        base = f"http://127.0.0.1:{port}"
        refused = None
        deadline = time.monotonic() + 60
        while refused is None and proc.poll() is None and time.monotonic() < deadline:
            try:  # a camera of a signal the run does not have: refused, with the run's signals named
                refused = httpx.post(f"{base}/api/v1/streams", json={
                    "id": "elsewhere", "url": str(tmp_path / "clip.avi"), "start": False,
                    "camera": {**cfg, "camera_id": "cam-2", "device_id": "B1", "background_image": None}}, timeout=5)
            except httpx.HTTPError:
                time.sleep(0.2)
        listed = httpx.get(f"{base}/api/v1/streams", timeout=5).json()["items"]
        out, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert refused is not None and refused.status_code == 422, refused and refused.text
    assert "device_id 'B1' is not a signal of this run (signals: C)" in refused.json()["message"]
    assert [s["id"] for s in listed] == ["cam-1"] and listed[0]["device_id"] == "C"
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    rows = [line.split(",", 3) for line in (run_dir / "interventions.csv").read_text().splitlines()[1:]]
    # trusted on the camera's data alone (no detector message was sent): from a fallback's end, or from the first
    # decision when the camera's first counts came before it (no fallback then until the clip ended: a loaded
    # machine starts SUMO later than the camera) ...
    trusted = [float(t) for t, _dev, rule, _detail in rows if rule == "fallback_end"]
    never_fell_back = bool(rows) and rows[0][2] == "fallback" and "stream cam-1 ended" in rows[0][3]
    trusted_from_s = 0.0 if never_fell_back else (trusted[0] if trusted else None)
    clip_end_s = 1 + CLIP_S * SPEED
    # while the clip played: at least one wall second before its end
    assert trusted_from_s is not None and trusted_from_s < clip_end_s - SPEED, (rows, clip_end_s)
    # ... until the clip ended: its stream ends, the camera is unhealthy at once and named, and no recovery after
    stale = [(float(t), detail) for t, _dev, rule, detail in rows if rule == "fallback" and float(t) > trusted_from_s]
    assert stale and "camera:cam-1 unhealthy: stream cam-1 ended" in stale[0][1], rows
    assert clip_end_s - SPEED <= stale[0][0] < clip_end_s + MAX_AGE_S, (stale, clip_end_s)
    assert not [t for t in trusted if t > stale[0][0]]
    # the camera's zones are detectors of C in the run's hi-res log (channels of its zones)
    events = [line.split(",") for line in (run_dir / "events.csv").read_text().splitlines()[1:]]
    assert {int(e[3]) for e in events if e[2] == "82"} & set(CHANNEL.values())
    # no red light judged against the run's shadow states, though the run held the watched line red throughout
    # the clip and vehicles crossed it (`vision run --signals` with those states stores red-light violations)
    from sqlalchemy import create_engine, text

    with create_engine(f"sqlite:///{tmp_path / 'api.db'}").connect() as db:
        stored = db.execute(text("select kind from violations")).all()
    assert not [v for v in stored if v[0] == "red_light"], stored


@pytest.mark.slow
def test_a_camera_url_away_at_start_does_not_keep_the_run_from_starting(tmp_path):
    """A stream URL is not opened at start (a corridor restarted while one camera is offline still runs); its
    camera file is checked all the same."""
    from signalwise.vision.mjpeg_server import free_port

    _camera_files(tmp_path)
    away = f"http://127.0.0.1:{free_port()}/stream.mjpg"  # nothing listens there
    proc = _live(tmp_path, "--camera", f"{away}={tmp_path / 'cam.yaml'}", "--speed", "max", "--duration", "30")
    _out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err[-2000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    (tmp_path / "bad.yaml").write_text("camera_id: x\n")
    bad = _live(tmp_path, "--camera", f"{away}={tmp_path / 'bad.yaml'}")
    _out, err = bad.communicate(timeout=60)
    assert bad.returncode == 2 and "bad.yaml" in err, err


def test_bad_camera_input_is_refused_at_start(tmp_path):
    _camera_files(tmp_path, device_id="B1")
    missing = _live(tmp_path, "--camera", f"{tmp_path / 'missing.avi'}={tmp_path / 'cam.yaml'}")
    _out, err = missing.communicate(timeout=60)
    assert missing.returncode == 2 and "missing.avi: no such file" in err, err
    elsewhere = _live(tmp_path, "--camera", f"{tmp_path / 'clip.avi'}={tmp_path / 'cam.yaml'}")
    _out, err = elsewhere.communicate(timeout=60)
    assert elsewhere.returncode == 2, err
    assert "--camera: camera cam-1: device_id 'B1' is not a signal of this run (signals: C)" in err, err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
