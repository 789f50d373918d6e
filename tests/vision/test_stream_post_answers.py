"""What `POST /api/v1/streams` answers besides the stream: `vision run`'s notes on the camera file (a key close to
one of ours, a kind of violation the stream cannot judge) in `warnings`, and a local path that does not exist
refused with the path it looked at (a file is not waited for: a missing one is most likely a typo)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from vision_scenes import small_scene

from signalwise.vision.synthetic import write_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    d = tmp_path_factory.mktemp("post")
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
                              camera_alerts_buffer_dir=tmp_path / "buffer"))
    op = {"X-API-Key": create_key(get_engine(url), "op", ["operate", "read"])[1]}
    with TestClient(app) as client:
        yield client, op


def test_a_camera_key_like_ours_is_named_in_the_answer_as_vision_run_names_it(api, video):
    c, op = api
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


def test_a_local_file_that_is_not_there_is_refused_naming_the_path_looked_at(api, video, tmp_path, monkeypatch):
    c, op = api
    _path, camera = video
    missing = tmp_path / "cam-1.mp4"
    r = c.post("/api/v1/streams", headers=op, json={"url": str(missing), "camera": camera})
    assert r.status_code == 422 and r.json()["message"] == (
        f"body.url: {missing}: no such file on the server; a camera stream is a URL starting with rtsp://, rtsps://, "
        "http://, https://"), r.text
    monkeypatch.chdir(tmp_path)  # a relative path is looked for from the server's working directory: said
    r = c.post("/api/v1/streams", headers=op, json={"url": "clips/cam-1.mp4", "camera": camera})
    assert r.status_code == 422 and (f"body.url: clips/cam-1.mp4: no such file on the server (looked for at "
                                     f"{tmp_path / 'clips/cam-1.mp4'}, from the server's working directory)"
                                     ) in r.json()["message"], r.text
    r = c.post("/api/v1/streams", headers=op, json={"url": str(tmp_path), "camera": camera})
    assert r.status_code == 422 and f"body.url: {tmp_path}: a directory, not a video file" in r.json()["message"]
    assert c.get("/api/v1/streams", headers=op).json()["items"] == []
