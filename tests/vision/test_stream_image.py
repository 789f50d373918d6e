"""A camera that streams but shows nothing: blank (black) or frozen (one frame repeated) pictures are reported,
alerted on and marked down in a live run; a real scene, stopped vehicles and sensor noise included, is not."""

from __future__ import annotations

import numpy as np
import pytest
from support.waiting import value_within as _wait


def test_the_image_check_finds_blank_and_frozen_pictures_and_passes_a_scene_with_queues():
    from vision_scenes import small_scene

    from signalwise.vision.monitoring import IMAGE_BAD_AFTER_S, ImageCheck

    assert IMAGE_BAD_AFTER_S == 10.0
    fps = 10.0
    black = np.zeros((240, 320, 3), np.uint8)
    check = ImageCheck()
    states = [check.add(black.copy(), k / fps) for k in range(int(12 * fps))]
    assert set(states[:100]) == {"ok"} and set(states[101:]) == {"blank"}  # after 10 s of its frames, not before
    assert check.reason().startswith("image blank for 12 s")  # 11.9 s of frames

    grey = np.full((240, 320, 3), 128, np.uint8)  # an encoder's flat grey: blank too, whatever its level
    check = ImageCheck(after_s=1.0)
    assert [check.add(grey, k / fps) for k in range(12)][-1] == "blank"

    scene = small_scene(seed=4, arrivals_per_s=0.4)  # 12 s with queues at the red: vehicles stand still
    frames = [img for img, _t, _truth, _state in scene.frames(12.0)]
    strict = ImageCheck(after_s=0.3)  # 3 frames alike would do: none are
    assert {strict.add(img, k / fps) for k, img in enumerate(frames)} == {"ok"}

    hung = ImageCheck(after_s=1.0)
    frozen = frames[40]
    got = [hung.add(frozen.copy(), k / fps) for k in range(15)]  # a hung encoder: the same picture, a new buffer
    assert got[:10] == ["ok"] * 10 and got[10:] == ["frozen"] * 5
    assert hung.add(frames[41], 1.5) == "ok"  # the picture moves again


def test_a_live_run_source_given_frames_marked_down_stays_unhealthy_with_the_reason():
    from test_camera_source_wiring import APPROACH_OF_LANE, _b1, _camera_dict
    from vision_scenes import small_pipeline, small_scene

    from signalwise.core import ObservationNeed
    from signalwise.vision.camera import camera_from_dict
    from signalwise.vision.source import CameraObservationSource

    scene = small_scene(seed=3)
    camera = camera_from_dict(_camera_dict())
    pipe = small_pipeline(scene, camera)
    inter = _b1()
    source = CameraObservationSource([inter], APPROACH_OF_LANE, [camera])
    need = ObservationNeed(tuple(APPROACH_OF_LANE))
    results = [pipe.process(img, t) for img, t, _truth, _state in scene.frames(0.5)]
    source.update(camera.camera_id, results[0])
    (health,) = source.observe(inter, results[0].time_s, need).sources
    assert health.healthy
    source.update(camera.camera_id, results[1], down="stream s image blank for 10 s (no picture)")
    (health,) = source.observe(inter, results[1].time_s, need).sources
    assert not health.healthy and "image blank" in health.reason
    source.update(camera.camera_id, results[2])  # the picture is back
    (health,) = source.observe(inter, results[2].time_s, need).sources
    assert health.healthy


@pytest.fixture
def fast_image_check(monkeypatch):
    """The check's 10 s hold made 0.3 s: the test waits for the wiring, not the hold."""
    from signalwise.vision import monitoring

    monkeypatch.setattr(monitoring, "IMAGE_BAD_AFTER_S", 0.3)


@pytest.mark.slow
def test_a_black_then_frozen_camera_is_reported_alerted_and_cleared_and_a_real_scene_is_not(tmp_path,
                                                                                         fast_image_check):
    """Two MJPEG cameras on 127.0.0.1 and a real app: one cycles black, scene, frozen, scene; the other shows the
    scene only."""
    from fastapi.testclient import TestClient
    from test_stream_ops import _metric
    from vision_scenes import small_scene

    from signalwise.api import create_app
    from signalwise.store import Settings, get_engine
    from signalwise.store.keys import create_key
    from signalwise.vision.mjpeg_server import MjpegServer

    url = f"sqlite:///{tmp_path / 'api.db'}"
    app = create_app(Settings(database_url=url, evidence_dir=tmp_path / "evidence",
                              camera_alerts_buffer_dir=tmp_path / "buffer", camera_hosts=["127.0.0.1"]))
    op = {"X-API-Key": create_key(get_engine(url), "operator", ["operate"])[1]}
    scene = small_scene(seed=2)
    fps = 20
    scene_frames = [f for f, _t, _truth, _s in scene.frames(1.5)]  # 15 frames; served at 20 frames/s, twice
    black = np.zeros_like(scene_frames[0])
    # 1.5 s each: blank (or frozen) for 1.2 s after the 0.3 s hold, more than the monitor's 1 s between figures
    broken = [black] * 30 + scene_frames * 2 + [scene_frames[5]] * 30 + scene_frames * 2
    cameras = [MjpegServer(broken, fps=fps).start(), MjpegServer(scene_frames, fps=10).start()]
    try:
        with TestClient(app) as c:
            for sid, cam in zip(("cam-b", "cam-ok"), cameras, strict=True):
                r = c.post("/api/v1/streams", headers=op, json={"id": sid, "url": cam.url,
                                                                "camera": {**scene.camera_config(), "camera_id": sid}})
                assert r.status_code == 201, r.text

            def history(rule):
                alerts = c.get("/api/v1/streams/alerts").json()
                return [a for a in alerts["active"] + alerts["history"] if a["rule"] == rule]

            seen = set()
            for state in ("blank", "ok", "frozen", "ok"):
                s = _wait(lambda state=state: (lambda got: got if got["image"] == state else None)(
                    c.get("/api/v1/streams/cam-b").json()))
                assert s and s["status"] == "streaming", (state, s)  # streaming, and yet blind
                seen.add(c.get("/api/v1/streams/cam-ok").json()["image"])
                if state != "ok":
                    assert s["image_bad_s"] >= 0.3
                    assert _wait(lambda state=state: _metric(c.get("/metrics").text,
                                                             "signalwise_vision_stream_image_bad",
                                                             stream="cam-b", state=state) == 1.0)
                    alert = _wait(lambda state=state: history(f"vision_stream_{state}"))
                    assert alert and alert[0]["metric"] == f"vision_stream_{state}.cam-b", alert
                    assert alert[0]["level"] == "error"
            for rule in ("vision_stream_blank", "vision_stream_frozen"):  # raised, and cleared with the picture
                assert _wait(lambda rule=rule: [a for a in history(rule) if a["cleared_at_s"] is not None]), history(rule)
            assert seen == {"ok"}
            alerts = c.get("/api/v1/streams/alerts").json()
            assert not [a for a in alerts["active"] + alerts["history"] if a["metric"].endswith(".cam-ok")]
    finally:
        for cam in cameras:
            cam.stop()


def test_a_blank_camera_reaches_the_live_run_marked_down_with_the_reason(fast_image_check):
    """The stream manager hands a blind camera's results to the run's cameras with the reason, in the same call
    (a result alone would mark the camera up again)."""
    from vision_scenes import small_scene

    from signalwise.vision.camera import camera_from_dict
    from signalwise.vision.manager import StreamManager, StreamSpec
    from signalwise.vision.mjpeg_server import MjpegServer

    class Cameras:  # the live run's side (LiveCameras), recorded
        def __init__(self):
            self.downs: list[str | None] = []

        def update(self, camera_id, result, down=None):
            self.downs.append(down)

        def mark_down(self, camera_id, reason):
            pass

    scene = small_scene(seed=2)
    black = np.zeros((240, 320, 3), np.uint8)
    server = MjpegServer([black], fps=20).start()
    run = Cameras()
    mgr = StreamManager(source=run, monitor_every_s=0.2)
    try:
        mgr.add(StreamSpec("s", server.url, camera_from_dict(scene.camera_config())))
        assert _wait(lambda: any(run.downs))
    finally:
        mgr.close()
        server.stop()
    assert run.downs[0] is None  # not at once
    reason = next(d for d in run.downs if d)
    assert reason.startswith("stream s image blank for ") and "lens covered" in reason


def test_a_camera_files_thresholds_are_its_streams_picture_check():
    """`blank_below_std` and `image_bad_after_s` in a camera file set its stream's check: one camera told that
    the scene's spread (about 16 grey levels) is too little is reported blank after 0.3 s; another on the same
    picture, with only the hold shortened, never is."""
    from vision_scenes import small_scene

    from signalwise.vision.camera import camera_from_dict
    from signalwise.vision.manager import StreamManager, StreamSpec
    from signalwise.vision.mjpeg_server import MjpegServer

    class Cameras:  # the live run's side (LiveCameras), recorded per camera
        def __init__(self):
            self.downs: dict[str, list[str | None]] = {"dim": [], "usual": []}

        def update(self, camera_id, result, down=None):
            self.downs[camera_id].append(down)

        def mark_down(self, camera_id, reason):
            pass

    scene = small_scene(seed=2)
    frames = [f for f, _t, _truth, _s in scene.frames(1.5)]
    server = MjpegServer(frames, fps=20).start()
    run = Cameras()
    mgr = StreamManager(source=run, monitor_every_s=0.2)
    dim = camera_from_dict({**scene.camera_config(), "camera_id": "dim", "blank_below_std": 40,
                            "image_bad_after_s": 0.3})
    usual = camera_from_dict({**scene.camera_config(), "camera_id": "usual", "image_bad_after_s": 0.3})
    try:
        mgr.add(StreamSpec("dim", server.url, dim))
        mgr.add(StreamSpec("usual", server.url, usual))
        assert _wait(lambda: any(run.downs["dim"]))
        seen_dim = len(run.downs["dim"])
        assert _wait(lambda: len(run.downs["usual"]) >= seen_dim + 10)  # past the hold, many times over
        assert mgr.get("dim")["image"] == "blank" and mgr.get("usual")["image"] == "ok"
    finally:
        mgr.close()
        server.stop()
    assert next(d for d in run.downs["dim"] if d).startswith("stream dim image blank for ")
    assert not any(run.downs["usual"])


@pytest.mark.parametrize(("keys", "says"), [
    ({"blank_below_std": -1}, "blank_below_std: Input should be greater than or equal to 0"),
    ({"blank_below_std": 300}, "blank_below_std: Input should be less than or equal to 128"),
    ({"image_bad_after_s": 0}, "image_bad_after_s: Input should be greater than 0"),
    ({"image_bad_after_s": "nan"}, "image_bad_after_s: Input should be a finite number"),
])
def test_a_picture_threshold_out_of_range_is_refused_naming_the_key(keys, says):
    from test_camera_file_units import _camera

    from signalwise.vision.camera import CameraFileError, camera_from_dict

    with pytest.raises(CameraFileError) as err:
        camera_from_dict(_camera(**keys), "cam.yaml")
    assert str(err.value).startswith("cam.yaml: ") and says in str(err.value), str(err.value)
