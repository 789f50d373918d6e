"""Camera streams over the API: what `POST /api/v1/streams` refuses at once (as `vision run` does), one stream per
camera, a local file (in the cameras directory) that is no video or not there (refused with the path it looked at: a
file is not waited for), a stream back after an outage that shows no old error, and `vision run`'s notes on the camera
file (a key close to one of ours, a kind of violation the stream cannot judge) in the answer's `warnings`."""

from __future__ import annotations

import shutil
import time

import pytest
from fastapi.testclient import TestClient
from support.waiting import value_within as _wait
from vision_scenes import small_scene

from signalwise.vision.synthetic import write_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """1 s of the small scene (320x240, 10 frames/s) and its camera file's contents."""
    d = tmp_path_factory.mktemp("streams")
    scene = small_scene(seed=4)
    write_video(d / "cam.mp4", scene, 1.0)
    return d / "cam.mp4", scene.camera_config()


@pytest.fixture
def api(tmp_path):
    from signalwise.api import create_app
    from signalwise.store import Settings, get_engine
    from signalwise.store.keys import create_key

    url = f"sqlite:///{tmp_path / 'api.db'}"
    app = create_app(Settings(database_url=url, evidence_dir=tmp_path / "evidence",
                              camera_alerts_buffer_dir=tmp_path / "buffer",
                              cameras_dir=tmp_path.parent))  # this test's files and the module's video
    op = {"X-API-Key": create_key(get_engine(url), "op", ["operate", "read"])[1]}
    with TestClient(app) as client:
        yield app, client, op


def test_what_vision_run_refuses_the_api_refuses_at_post_with_the_reason(api, video, tmp_path):
    _app, c, op = api
    path, camera = video
    outside = {**camera, "zones": [*camera["zones"], {"name": "far-away", "approach": "north",
                                                      "px": [[10, 10], [900, 10], [900, 50]]}]}
    northeast = {**camera, "zones": [{**camera["zones"][0], "approach": "northeast"}, *camera["zones"][1:]]}
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    cases = [
        ({"url": str(path), "camera": outside}, "body.camera: zones[4] (far-away): point [900, 10] is outside the "
                                                "320x240 frame"),
        ({"url": str(path), "camera": northeast}, "body.camera: zones[0] (n-queue): approach 'northeast' is not an "
                                                  "approach of any intersection"),
        ({"url": str(text), "camera": camera}, f"body.url: {text}: OpenCV's FFmpeg backend cannot open it (not a "
                                               "video file it can decode)"),
        ({"url": str(empty)}, f"body.url: {empty}: OpenCV's FFmpeg backend cannot open it"),
    ]
    for body, needle in cases:
        r = c.post("/api/v1/streams", headers=op, json={"id": "cam-x", **body})
        assert r.status_code == 422 and needle in r.json()["message"], (body.get("url"), r.text)
    assert c.get("/api/v1/streams", headers=op).json()["items"] == []  # nothing half-added


def test_a_second_stream_of_a_camera_already_streamed_is_refused(api, video):
    _app, c, op = api
    path, camera = video
    body = {"url": str(path), "camera": camera, "start": False}
    assert c.post("/api/v1/streams", headers=op, json={**body, "id": "first"}).status_code == 201
    r = c.post("/api/v1/streams", headers=op, json={**body, "id": "second"})
    assert r.status_code == 409, r.text
    assert r.json()["message"] == ("camera 'cam-1' is already stream 'first' (stopped); delete that stream first, "
                                   "or give this camera its own camera_id")
    other = {**camera, "camera_id": "cam-2"}
    assert c.post("/api/v1/streams", headers=op, json={**body, "id": "second", "camera": other}).status_code == 201
    assert c.delete("/api/v1/streams/first", headers=op).status_code == 204
    assert c.post("/api/v1/streams", headers=op, json={**body, "id": "third"}).status_code == 201
    assert [s["id"] for s in c.get("/api/v1/streams", headers=op).json()["items"]] == ["second", "third"]


def test_a_local_file_that_is_no_video_fails_once_instead_of_reconnecting_for_ever(tmp_path):
    from signalwise.vision.streams import StreamReader

    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    reader = StreamReader(str(text), backoff_initial_s=0.05, backoff_max_s=0.05).start()
    try:
        assert _wait(lambda: not reader.running, 3.0), reader.stats()
    finally:
        reader.stop()
    s = reader.stats()
    assert s.status == "failed" and s.attempts == 1, s
    assert s.last_error == f"cannot open {text}: not a video file OpenCV's FFmpeg backend can decode"


def test_a_stream_back_after_an_outage_shows_no_error_and_keeps_the_past_one(api, video, tmp_path):
    """A looping file that vanishes (reconnecting, 'no such file') and comes back: streaming again with no error;
    the outage's error is the reader's previous one."""
    app, c, op = api
    path, camera = video
    src = tmp_path / "cam.mp4"
    shutil.copy(path, src)
    r = c.post("/api/v1/streams", headers=op, json={"id": "cam-o", "url": str(src), "camera": camera, "loop": True})
    assert r.status_code == 201, r.text
    get = lambda: c.get("/api/v1/streams/cam-o", headers=op).json()  # noqa: E731
    assert _wait(lambda: get()["stream"]["frames_read"] >= 3)
    src.unlink()
    down = _wait(lambda: (s := get())["status"] == "reconnecting" and "no such file" in (s["error"] or "") and s)
    assert down, get()
    shutil.copy(path, src)
    n = down["stream"]["frames_read"]
    back = _wait(lambda: (s := get())["status"] == "streaming" and s["stream"]["frames_read"] > n + 2 and s)
    assert back and back["error"] is None and back["stream"]["reconnects"] >= 1, get()
    stats = app.state.vision._streams["cam-o"].reader.stats()
    assert stats.last_error is None and "no such file" in stats.previous_error
    assert stats.previous_error_at is not None and stats.previous_error_at <= time.time()


def test_a_camera_key_like_ours_is_named_in_the_answer_as_vision_run_names_it(api, video):
    _app, c, op = api
    path, camera = video
    typo = {k: v for k, v in camera.items() if k != "speed_limit_mps"} | {"speed_limit_mp": 13.89}
    r = c.post("/api/v1/streams", headers=op, json={"url": str(path), "camera": typo, "start": False})
    assert r.status_code == 201, r.text
    assert r.json()["warnings"] == [
        "camera file key speed_limit_mp is not one signalwise reads (did you mean speed_limit_mps?): kept and ignored",
        "red light: not judged (a stream has no signal states; red lights are judged by `signalwise vision run "
        "--signals`)",
        "speeding: not judged (the camera file gives no speed_limit_mps)"]
    assert c.get("/api/v1/streams/cam-1", headers=op).json()["warnings"] == r.json()["warnings"]
    # a camera file with the key right: no note on it, speeding judged
    r = c.post("/api/v1/streams", headers=op, json={"url": str(path), "camera": {**camera, "camera_id": "cam-2"},
                                                    "start": False})
    assert r.status_code == 201 and not [w for w in r.json()["warnings"] if "speed" in w], r.json()["warnings"]
    assert r.json()["pipeline"]["implausible_speed_tracks"] == 0


def test_a_local_file_that_is_not_there_is_refused_naming_the_path_looked_at(api, video, tmp_path):
    _app, c, op = api
    _path, camera = video
    missing = tmp_path / "cam-1.mp4"
    r = c.post("/api/v1/streams", headers=op, json={"url": str(missing), "camera": camera})
    assert r.status_code == 422 and r.json()["message"] == (
        f"body.url: {missing}: no such file on the server; a camera stream is a URL starting with rtsp://, rtsps://, "
        "http://, https://"), r.text
    # a relative path is looked for in the cameras directory (the fixture's: this test's folder's parent): said
    r = c.post("/api/v1/streams", headers=op, json={"url": "clips/cam-1.mp4", "camera": camera})
    assert r.status_code == 422 and (f"body.url: clips/cam-1.mp4: no such file on the server (looked for at "
                                     f"{tmp_path.parent / 'clips/cam-1.mp4'}, in the cameras directory)"
                                     ) in r.json()["message"], r.text
    r = c.post("/api/v1/streams", headers=op, json={"url": str(tmp_path), "camera": camera})
    assert r.status_code == 422 and f"body.url: {tmp_path}: a directory, not a video file" in r.json()["message"]
    assert c.get("/api/v1/streams", headers=op).json()["items"] == []
