"""A camera's `background_image` in a stream added over the API is confined to the cameras directory
(`SIGNALWISE_CAMERAS_DIR`) as `camera_file` is: every other path gets one answer and is never opened (a FIFO outside
does not hold the request), in an inline `camera` (resolved against the directory) and in a camera file (resolved
against the file, still inside). Inside, a name that is no regular image is refused at `POST`, naming where it was
looked for; a `/start` that fails keeps why on the stream (`error`, status `failed`). A real API in-process, real
files, FIFOs and symbolic links."""

from __future__ import annotations

import os
import shutil
import threading
import time

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from support.stream_api import fifo_has_reader, one_second_clip, stream_api

cv2 = pytest.importorskip("cv2", reason="camera streams need OpenCV (pip install 'signalwise[vision]')")

ONE_ANSWER = ("body.camera.background_image: a request names a background image only inside the directory "
              "SIGNALWISE_CAMERAS_DIR gives, relative to it or as a path inside it; leave background_image out: the "
              "empty road is then learnt from the stream's first frames")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """(a 1 s video of a small synthetic scene, its camera file's contents, an empty-road PNG of its size)."""
    folder = tmp_path_factory.mktemp("clip")
    video, scene = one_second_clip(folder)
    cv2.imwrite(str(folder / "bg.png"), np.full((240, 320, 3), 90, np.uint8))
    return video, scene.camera_config(), folder / "bg.png"


@pytest.fixture
def layout(tmp_path, clip):
    """(cameras directory, a folder beside it, the camera's contents): each folder holds the clip (cam.mp4) and an
    image (bg.png); beside it also a text file (notes.png) and a FIFO (fifo.png)."""
    video, camera, image = clip
    cams, elsewhere = tmp_path / "cams", tmp_path / "elsewhere"
    for folder in (cams, elsewhere):
        folder.mkdir()
        shutil.copy(video, folder / "cam.mp4")
        shutil.copy(image, folder / "bg.png")
    (elsewhere / "notes.png").write_text("root:x:0:0:root:/root:/bin/bash\n")
    os.mkfifo(elsewhere / "fifo.png")
    return cams, elsewhere, camera


def _post_within(c, op, body, fifo, within_s: float = 5.0):
    """POST `body` in a thread; (its answer, whether the server opened `fifo`): a request that opened the FIFO
    waits for a writer, and is let go here so that the test ends."""
    answer = {}
    thread = threading.Thread(target=lambda: answer.update(r=c.post("/api/v1/streams", headers=op, json=body)),
                              daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(within_s)
    opened = thread.is_alive() and fifo_has_reader(fifo)
    thread.join(10.0)
    assert "r" in answer, "the request never returned"
    return answer["r"], opened, time.monotonic() - started


def test_an_inline_cameras_background_outside_gets_one_answer_and_is_never_opened(tmp_path, layout):
    cams, elsewhere, camera = layout
    app, op = stream_api(tmp_path, cameras_dir=cams)
    # an image that is there (accepted before), the server's own file, a FIFO, none, out by `..`, a directory
    outside = [str(elsewhere / "bg.png"), "/etc/passwd", str(elsewhere / "fifo.png"), str(elsewhere / "none.png"),
               "../elsewhere/bg.png", f"{cams}/../elsewhere/bg.png", str(elsewhere), "/dev/zero", "/proc/self/environ"]
    with TestClient(app) as c:
        for i, name in enumerate(outside):
            body = {"id": f"bg{i}", "url": "cam.mp4", "camera": {**camera, "background_image": name}, "start": True}
            r, opened, took_s = _post_within(c, op, body, elsewhere / "fifo.png")
            assert not opened, f"the server opened {name}"
            assert took_s < 5.0, (name, took_s)
            assert (r.status_code, r.json()["message"]) == (422, ONE_ANSWER), (name, r.text)
        # the same answer as a camera file outside gets, word for word but the field and what it names
        r = c.post("/api/v1/streams", headers=op, json={"url": "cam.mp4", "camera_file": "/etc/passwd"})
        assert r.json()["message"].startswith("body.camera_file: a request names a camera file only inside the "
                                              "directory SIGNALWISE_CAMERAS_DIR gives, relative to it or as a path "
                                              "inside it; "), r.text
        assert c.get("/api/v1/streams", headers=op).json()["items"] == []  # nothing added


def test_a_camera_files_background_outside_gets_one_answer_and_is_never_opened(tmp_path, layout):
    """The camera file is inside the directory; the path it names (relative to it, or absolute) is not."""
    cams, elsewhere, camera = layout
    app, op = stream_api(tmp_path, cameras_dir=cams)
    outside = [str(elsewhere / "bg.png"), "/etc/passwd", str(elsewhere / "fifo.png"), "../elsewhere/bg.png",
               "../elsewhere/fifo.png", str(elsewhere / "none.png"), "/dev/zero"]
    answers = {}
    with TestClient(app) as c:
        for name in outside:
            (cams / "cam-1.yaml").write_text(yaml.safe_dump({**camera, "background_image": name}))
            body = {"id": "f", "url": "cam.mp4", "camera_file": "cam-1.yaml", "start": True}
            r, opened, took_s = _post_within(c, op, body, elsewhere / "fifo.png")
            assert not opened and took_s < 5.0, (name, opened, took_s)
            answers[name] = (r.status_code, r.json()["message"])
        assert c.get("/api/v1/streams", headers=op).json()["items"] == []
    assert len(set(answers.values())) == 1, answers
    assert answers[outside[0]] == (422, f"body.camera_file: {cams / 'cam-1.yaml'}: background_image: a request "
                                        "names a background image only inside the directory SIGNALWISE_CAMERAS_DIR "
                                        "gives, relative to it or as a path inside it; leave background_image out: "
                                        "the empty road is then learnt from the stream's first frames")


def test_without_a_cameras_directory_no_background_image_is_taken(tmp_path, layout):
    _cams, elsewhere, camera = layout
    app, op = stream_api(tmp_path)
    with TestClient(app) as c:
        r = c.post("/api/v1/streams", headers=op, json={"url": "rtsp://10.255.255.1/s", "start": False,
                                                        "camera": {**camera, "background_image": str(elsewhere /
                                                                                                     "bg.png")}})
    assert r.status_code == 422, r.text
    assert r.json()["message"] == ("body.camera.background_image: this server takes no background image named over "
                                   "the API (SIGNALWISE_CAMERAS_DIR is unset); leave background_image out: the empty "
                                   "road is then learnt from the stream's first frames")


def test_inside_the_directory_what_is_wrong_is_said_where_it_was_looked_for(tmp_path, layout):
    cams, elsewhere, camera = layout
    (cams / "notes.png").write_text("not an image\n")
    (cams / "folder.png").mkdir()
    os.mkfifo(cams / "fifo.png")
    (cams / "link-to-fifo.png").symlink_to(elsewhere / "fifo.png")  # a link of the owner's, to something unreadable
    app, op = stream_api(tmp_path, cameras_dir=cams)
    cases = {
        "none.png": f"body.camera.background_image: none.png: no such file on the server (looked for at "
                    f"{cams / 'none.png'}, in the cameras directory)",
        "folder.png": f"body.camera.background_image: folder.png: a directory, not an image (looked for at "
                      f"{cams / 'folder.png'}, in the cameras directory)",
        "fifo.png": f"body.camera.background_image: fifo.png: not a regular file (a FIFO, socket or device; looked "
                    f"for at {cams / 'fifo.png'}, in the cameras directory): not opened",
        "link-to-fifo.png": "body.camera.background_image: link-to-fifo.png: not a regular file (a FIFO, socket or "
                            f"device; looked for at {cams / 'link-to-fifo.png'}, in the cameras directory): not opened",
        # decoded at POST, as the start would: a camera that could never start is not added
        "notes.png": f"body.camera.background_image: {cams / 'notes.png'}: not an image OpenCV can read",
    }
    with TestClient(app) as c:
        for name, message in cases.items():
            body = {"url": "cam.mp4", "camera": {**camera, "background_image": name}, "start": False}
            fifo = cams / "fifo.png" if name == "fifo.png" else elsewhere / "fifo.png"
            r, opened, took_s = _post_within(c, op, body, fifo)
            assert not opened and took_s < 5.0, (name, opened, took_s)
            assert (r.status_code, r.json()["message"]) == (422, message), r.text
        assert c.get("/api/v1/streams", headers=op).json()["items"] == []


def test_a_background_in_the_directory_still_streams(tmp_path, layout):
    """An inline camera's relative name is in the cameras directory (not the server's working directory); a camera
    file's is beside the file; a link the directory's owner made is theirs, as for a camera file."""
    cams, elsewhere, camera = layout
    (cams / "site").mkdir()
    shutil.copy(cams / "bg.png", cams / "site" / "empty-road.png")
    (cams / "site" / "cam-2.yaml").write_text(yaml.safe_dump({**camera, "camera_id": "cam-2",
                                                              "background_image": "empty-road.png"}))
    (cams / "linked.png").symlink_to(elsewhere / "bg.png")
    app, op = stream_api(tmp_path, cameras_dir=cams)
    with TestClient(app) as c:
        r = c.post("/api/v1/streams", headers=op, json={"id": "inline", "url": "cam.mp4", "loop": True,
                                                        "camera": {**camera, "background_image": "bg.png"}})
        assert r.status_code == 201, r.text
        r = c.post("/api/v1/streams", headers=op, json={"id": "file", "url": "cam.mp4", "loop": True,
                                                        "camera_file": "site/cam-2.yaml"})
        assert r.status_code == 201, r.text
        r = c.post("/api/v1/streams", headers=op, json={"id": "link", "url": "cam.mp4", "start": False, "camera": {
            **camera, "camera_id": "cam-3", "background_image": "linked.png"}})
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 15
        for sid in ("inline", "file"):
            while (s := c.get(f"/api/v1/streams/{sid}", headers=op).json())["pipeline"]["frames"] < 3:
                assert s["status"] in ("connecting", "streaming") and time.monotonic() < deadline, s
                time.sleep(0.1)
            assert s["error"] is None, s


def test_a_start_that_fails_keeps_why_on_the_stream(tmp_path, layout):
    """`idle` with no error after a failed `/start` told nothing: the stream is `failed`, its `error` says why, and
    a start that then works clears it."""
    cams, _elsewhere, camera = layout
    app, op = stream_api(tmp_path, cameras_dir=cams)
    good = (cams / "bg.png").read_bytes()
    with TestClient(app) as c:
        r = c.post("/api/v1/streams", headers=op, json={"id": "k4", "url": "cam.mp4", "loop": True, "start": False,
                                                        "camera": {**camera, "background_image": "bg.png"}})
        assert r.status_code == 201 and r.json()["status"] == "stopped", r.text
        (cams / "bg.png").write_text("replaced by something that is no image\n")
        r = c.post("/api/v1/streams/k4/start", headers=op)
        why = f"background_image {cams / 'bg.png'}: not an image OpenCV can read"
        assert (r.status_code, r.json()["message"]) == (422, why), r.text
        s = c.get("/api/v1/streams/k4", headers=op).json()
        assert (s["status"], s["error"]) == ("failed", f"could not start: {why}"), s
        assert c.get("/api/v1/streams", headers=op).json()["items"][0]["error"] == f"could not start: {why}"
        (cams / "bg.png").write_bytes(good)
        r = c.post("/api/v1/streams/k4/start", headers=op)
        assert r.status_code == 200 and r.json()["error"] is None, r.text
        assert r.json()["status"] in ("connecting", "streaming"), r.text
        assert c.post("/api/v1/streams/nope/start", headers=op).status_code == 404


def test_a_fifo_in_the_directory_is_never_opened_as_a_camera_file_or_a_model(tmp_path, layout):
    """Inside the directory too, a camera file or a model that is no regular file is refused after a look, not
    opened: a FIFO would hold the request until someone wrote to it."""
    cams, _elsewhere, _camera = layout
    os.mkfifo(cams / "pipe")
    app, op = stream_api(tmp_path, cameras_dir=cams)
    with TestClient(app) as c:
        for field, extra in (("camera_file", {"camera_file": "pipe"}), ("model", {"detector": "onnx", "model": "pipe"})):
            r, opened, took_s = _post_within(c, op, {"url": "cam.mp4", "start": False, **extra}, cams / "pipe")
            assert not opened and took_s < 5.0, (field, opened, took_s)
            assert (r.status_code, r.json()["message"]) == (
                422, f"body.{field}: {cams / 'pipe'}: not a regular file (a FIFO, socket or device): not opened"), r.text
