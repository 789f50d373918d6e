"""A stream over the API gets the calibration checks `vision run` makes before a run (the surveyed points' RMS
residual over 0.5 m, a zone seen at under 2.75 px per road metre): a camera they call suspect is refused (422 naming
why) unless the body says `"accept_suspect_calibration": true`; accepted, the reasons are in its `warnings` (the 201
and `GET /api/v1/streams/{id}`) and every violation it stores carries them (`judged_with.calibration_suspect`, with
the camera it was judged with). A real API in-process on a migrated SQLite store, real synthetic clips."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml
from fastapi.testclient import TestClient
from support.stream_api import stream_api
from support.waiting import value_within

cv2 = pytest.importorskip("cv2", reason="camera streams need OpenCV (pip install 'signalwise[vision]')")

COARSE = "zone n-queue is seen at 2.00 px per road metre, under the 2.75 the detector needs to tell vehicles apart"


def _scene(px_per_m: float):
    from signalwise.vision.synthetic import Scene

    return Scene(width_px=320, height_px=240, px_per_m=px_per_m, fps=10.0, seed=3, arrivals_per_s=0.4)


def test_a_camera_seen_too_coarsely_is_refused_unless_accepted_and_then_says_so(tmp_path):
    from signalwise.vision.synthetic import write_video

    scene = _scene(2.0)  # 320 px over the 160 m of the view's width: 2 px per road metre
    write_video(tmp_path / "cam.mp4", scene, 1.0)
    camera = scene.camera_config()
    app, op = stream_api(tmp_path, cameras_dir=tmp_path)
    body = {"id": "coarse", "url": "cam.mp4", "camera": camera, "start": False}
    with TestClient(app) as c:
        r = c.post("/api/v1/streams", headers=op, json=body)
        assert r.status_code == 422, r.text
        message = r.json()["message"]
        assert message.startswith(f"body.camera: the calibration is suspect: {COARSE}"), message
        assert '"accept_suspect_calibration": true runs it anyway' in message
        assert c.get("/api/v1/streams", headers=op).json()["items"] == []  # nothing was added
        r = c.post("/api/v1/streams", headers=op, json={**body, "accept_suspect_calibration": True})
        assert r.status_code == 201, r.text
        marked = [w for w in r.json()["warnings"] if w.startswith("the calibration is suspect, accepted: ")]
        assert len(marked) == 1 and COARSE in marked[0], r.json()["warnings"]
        assert c.get("/api/v1/streams/coarse", headers=op).json()["warnings"] == r.json()["warnings"]
        # a camera the checks pass needs no acceptance, and has no such warning
        fine = _scene(4.0).camera_config(camera_id="cam-2")
        r = c.post("/api/v1/streams", headers=op, json={"id": "fine", "url": "cam.mp4", "camera": fine,
                                                        "start": False})
        assert r.status_code == 201, r.text
        assert not [w for w in r.json()["warnings"] if "calibration" in w], r.json()["warnings"]


def test_an_accepted_suspect_camera_files_violations_are_stored_marked_with_the_reasons(tmp_path):
    from signalwise.vision.synthetic import write_video

    scene = _scene(4.0)
    write_video(tmp_path / "cam.mp4", scene, 6.0)
    camera = scene.camera_config()
    camera["calibration"][5]["m"] = [20.0, -10.0]  # one surveyed point's road coordinate mistyped by 5 m
    camera["speed_limit_mps"], camera["speed_tolerance_mps"] = 2.0, 0.0  # every moving vehicle speeds
    (tmp_path / "cam.yaml").write_text(yaml.safe_dump(camera))
    app, op = stream_api(tmp_path, cameras_dir=tmp_path)
    body = {"id": "off", "url": "cam.mp4", "camera_file": "cam.yaml", "loop": True}
    with TestClient(app) as c:
        r = c.post("/api/v1/streams", headers=op, json=body)
        assert r.status_code == 422, r.text
        assert r.json()["message"].startswith(f"body.camera_file: {tmp_path / 'cam.yaml'}: the calibration is "
                                              "suspect: the 6 surveyed points miss the fit by "), r.json()
        r = c.post("/api/v1/streams", headers=op, json={**body, "accept_suspect_calibration": True})
        assert r.status_code == 201, r.text
        reasons = [w.removeprefix("the calibration is suspect, accepted: ").split("; every violation")[0]
                   for w in r.json()["warnings"] if w.startswith("the calibration is suspect, accepted: ")]
        assert len(reasons) == 1 and "surveyed points miss the fit by" in reasons[0], r.json()["warnings"]
        items = value_within(lambda: c.get("/api/v1/analytics/violations", headers=op).json()["items"], 30.0, 0.3)
        assert items, c.get("/api/v1/streams/off", headers=op).json()
    digest = hashlib.sha256((tmp_path / "cam.yaml").read_bytes()).hexdigest()
    for item in items:
        assert item["kind"] == "speeding" and item["source"].startswith("stream:off@"), item
        judged = item["judged_with"]
        assert judged["camera_file"] == {"path": str(tmp_path / "cam.yaml"), "sha256": digest}, judged
        assert judged["signals_file"] is None and judged["calibration_suspect"] == reasons, judged


def test_an_inline_cameras_violations_name_it_by_the_hash_of_its_json_and_a_passing_check_by_no_reason(tmp_path):
    from signalwise.vision.synthetic import write_video

    scene = _scene(4.0)
    write_video(tmp_path / "cam.mp4", scene, 6.0)
    camera = {**scene.camera_config(), "speed_limit_mps": 2.0, "speed_tolerance_mps": 0.0}
    app, op = stream_api(tmp_path, cameras_dir=tmp_path)
    with TestClient(app) as c:
        r = c.post("/api/v1/streams", headers=op, json={"id": "ok", "url": "cam.mp4", "camera": camera,
                                                        "loop": True})
        assert r.status_code == 201, r.text
        items = value_within(lambda: c.get("/api/v1/analytics/violations", headers=op).json()["items"], 30.0, 0.3)
        assert items, c.get("/api/v1/streams/ok", headers=op).json()
    digest = hashlib.sha256(json.dumps(camera, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert all(i["judged_with"]["camera_file"] == {"path": "body.camera", "sha256": digest} for i in items), items
    assert all(i["judged_with"]["calibration_suspect"] == [] for i in items), items


def test_the_stream_manager_refuses_a_suspect_camera_unless_its_spec_accepts_it(tmp_path):
    from signalwise.vision.camera import camera_from_dict
    from signalwise.vision.manager import StreamError, StreamManager, StreamSpec

    cam = camera_from_dict(_scene(2.0).camera_config())
    mgr = StreamManager()
    try:
        with pytest.raises(StreamError, match=f"the calibration is suspect: {COARSE}") as refused:
            mgr.add(StreamSpec("s", str(tmp_path / "none.mp4"), cam), start=False)
        assert refused.value.status == 422 and mgr.list() == []
        added = mgr.add(StreamSpec("s", str(tmp_path / "none.mp4"), cam, accept_suspect_calibration=True),
                        start=False)
        assert any(COARSE in w for w in added["warnings"]), added["warnings"]
    finally:
        mgr.close()
