"""What a camera stream added over the API may name on the server: files only inside the cameras directory
(`SIGNALWISE_CAMERAS_DIR`), refused with one answer whether they exist or not and never opened; URLs only to hosts
that are not the server's own (loopback, link-local, unspecified) unless `SIGNALWISE_CAMERA_HOSTS` lists them,
refused before anything connects. A real API in-process, real files, FIFOs and listening sockets."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time

import pytest
import yaml
from fastapi.testclient import TestClient
from support.stream_api import fifo_has_reader, one_second_clip, stream_api

pytest.importorskip("cv2", reason="camera streams need OpenCV (pip install 'signalwise[vision]')")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """(a 1 s video of a small synthetic scene, its camera file's contents)."""
    video, scene = one_second_clip(tmp_path_factory.mktemp("clip"))
    return video, scene.camera_config()


@pytest.fixture
def layout(tmp_path, clip):
    """(cameras directory, a folder beside it): each holds the clip (cam.mp4), its camera file (cam-1.yaml) and a
    file named like a model (yolo.onnx)."""
    video, camera = clip
    cams, elsewhere = tmp_path / "cams", tmp_path / "elsewhere"
    for folder in (cams, elsewhere):
        folder.mkdir()
        shutil.copy(video, folder / "cam.mp4")
        (folder / "cam-1.yaml").write_text(yaml.safe_dump(camera))
        (folder / "yolo.onnx").write_bytes(b"not a model")
    return cams, elsewhere


def test_a_path_outside_the_cameras_directory_gets_one_answer_whether_it_exists_or_not(tmp_path, layout):
    cams, elsewhere = layout
    app, op = stream_api(tmp_path, cameras_dir=cams)
    inside_video = str(cams / "cam.mp4")
    # there and a video, there and a directory, there and no video, not there, out by `..`, the server's own files
    outside = [str(elsewhere / "cam.mp4"), str(elsewhere), str(elsewhere / "cam-1.yaml"), str(elsewhere / "none.mp4"),
               "../elsewhere/cam.mp4", f"{cams}/../elsewhere/cam.mp4", "/etc/passwd", "/etc/no-such-file", "/root"]
    with TestClient(app) as c:
        for field, base in (("url", {}), ("camera_file", {"url": inside_video}),
                            ("model", {"url": inside_video, "detector": "onnx"})):
            answers = {}
            for name in outside:
                r = c.post("/api/v1/streams", headers=op, json={**base, field: name, "start": False})
                answers[name] = (r.status_code, r.json()["message"])
            assert len(set(answers.values())) == 1, (field, answers)
            status, message = answers[outside[0]]
            assert status == 422 and message.startswith(f"body.{field}: a request names a ") \
                and "SIGNALWISE_CAMERAS_DIR" in message, message
        assert c.get("/api/v1/streams", headers=op).json()["items"] == []  # nothing added


def test_without_a_cameras_directory_no_file_is_taken(tmp_path, layout):
    cams, _elsewhere = layout
    app, op = stream_api(tmp_path)
    with TestClient(app) as c:
        missing = c.post("/api/v1/streams", headers=op, json={"url": str(cams / "none.mp4"), "start": False})
        there = c.post("/api/v1/streams", headers=op, json={"url": str(cams / "cam.mp4"), "start": False})
    assert missing.status_code == there.status_code == 422 and missing.json() == there.json()
    assert "SIGNALWISE_CAMERAS_DIR is unset" in there.json()["message"], there.text


def test_a_file_outside_is_never_opened(tmp_path, layout):
    """A FIFO outside the directory as the camera file and as the model: opening it for reading would wait for a
    writer, which the test would see; refused, nobody ever opens it."""
    cams, elsewhere = layout
    fifo = elsewhere / "pipe.yaml"
    os.mkfifo(fifo)
    app, op = stream_api(tmp_path, cameras_dir=cams)
    with TestClient(app) as c:
        for extra in ({"camera_file": str(fifo)}, {"detector": "onnx", "model": str(fifo)}):
            answer = {}
            thread = threading.Thread(target=lambda e=extra, a=answer: a.update(r=c.post(
                "/api/v1/streams", headers=op, json={"url": str(cams / "cam.mp4"), "start": False, **e})), daemon=True)
            thread.start()
            thread.join(3.0)
            opened = fifo_has_reader(fifo) or (time.sleep(0.5) or fifo_has_reader(fifo))
            thread.join(10.0)
            assert not opened, f"the server opened {fifo} ({extra})"
            assert answer["r"].status_code == 422, answer["r"].text
            assert answer["r"].json()["message"].startswith(f"body.{next(iter(extra.keys() - {'detector'}))}: ")


def test_a_file_in_the_cameras_directory_still_streams(tmp_path, layout):
    cams, _elsewhere = layout
    app, op = stream_api(tmp_path, cameras_dir=cams)
    with TestClient(app) as c:
        r = c.post("/api/v1/streams", headers=op, json={"id": "rel", "url": "cam.mp4", "camera_file": "cam-1.yaml"})
        assert r.status_code == 201, r.text
        assert r.json()["url"] == str(cams / "cam.mp4") and r.json()["camera_id"] == "cam-1"
        deadline = time.monotonic() + 10
        while c.get("/api/v1/streams/rel", headers=op).json()["stream"]["frames_read"] < 3:
            assert time.monotonic() < deadline, c.get("/api/v1/streams/rel", headers=op).json()
            time.sleep(0.1)
        r = c.post("/api/v1/streams", headers=op, json={"id": "abs", "url": str(cams / "cam.mp4"), "start": False})
        assert r.status_code == 201, r.text
        # inside the directory, a name that is wrong is still told apart, with where it was looked for
        r = c.post("/api/v1/streams", headers=op, json={"url": "none.mp4", "start": False})
        assert r.status_code == 422 and r.json()["message"].startswith(
            f"body.url: none.mp4: no such file on the server (looked for at {cams / 'none.mp4'}, in the cameras "
            "directory)"), r.text
        r = c.post("/api/v1/streams", headers=op, json={"url": "cam.mp4", "detector": "onnx", "model": "yolo.onnx",
                                                        "start": False})
        assert r.status_code == 422 and str(cams / "yolo.onnx") in r.json()["message"], r.text  # opened: its own


@pytest.fixture
def listener():
    """A socket listening on 127.0.0.1 (port), and a function telling whether something connected within s."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)

    def connected(within_s: float) -> bytes | None:
        sock.settimeout(within_s)
        try:
            conn, _addr = sock.accept()
        except TimeoutError:
            return None
        with conn:
            conn.settimeout(2)
            try:
                return conn.recv(400) or b"(connected)"
            except TimeoutError:
                return b"(connected)"

    yield sock.getsockname()[1], connected
    sock.close()


def test_a_loopback_or_link_local_url_is_refused_without_a_connection(tmp_path, listener):
    port, connected = listener
    app, op = stream_api(tmp_path)
    urls = [f"http://127.0.0.1:{port}/internal/admin?x=1", f"rtsp://localhost:{port}/stream1",
            f"http://127.1:{port}/", f"http://2130706433:{port}/", f"http://0x7f000001:{port}/",
            f"http://0.0.0.0:{port}/", f"https://[::ffff:127.0.0.1]:{port}/", f"http://[::1]:{port}/",
            f"http://user:pw@127.0.0.1:{port}/", "http://169.254.169.254/latest/meta-data/",
            f"http://camera.invalid#@127.0.0.1:{port}/"]  # where FFmpeg and urllib would read different hosts
    with TestClient(app) as c:
        for url in urls:
            r = c.post("/api/v1/streams", headers=op, json={"url": url, "start": True})
            assert r.status_code == 422 and r.json()["message"].startswith("body.url: "), (url, r.text)
        assert c.get("/api/v1/streams", headers=op).json()["items"] == []
        assert connected(1.5) is None
        # a camera on the operations network (a private address) is added as before
        r = c.post("/api/v1/streams", headers=op, json={"id": "ops", "url": "rtsp://10.255.255.1/stream1",
                                                        "start": False})
        assert r.status_code == 201, r.text


def test_a_listed_host_is_allowed_and_every_other_refused(tmp_path, listener):
    port, connected = listener
    app, op = stream_api(tmp_path, camera_hosts=["127.0.0.1", "10.20.0.0/16"])
    with TestClient(app) as c:
        for url in ("rtsp://10.255.255.1/stream1", "rtsp://192.0.2.7/stream1", f"http://[::1]:{port}/"):
            r = c.post("/api/v1/streams", headers=op, json={"url": url, "start": False})
            assert r.status_code == 422 and "is not among the camera hosts" in r.json()["message"], (url, r.text)
        assert c.post("/api/v1/streams", headers=op, json={"id": "net", "url": "rtsp://10.20.3.4/s",
                                                           "start": False}).status_code == 201
        r = c.post("/api/v1/streams", headers=op, json={"id": "local", "url": f"http://127.0.0.1:{port}/cam.mjpg"})
        assert r.status_code == 201, r.text
        seen = connected(10.0)
        c.delete("/api/v1/streams/local", headers=op)
    assert seen is not None and seen.startswith(b"GET /cam.mjpg"), seen


def test_camera_hosts_take_names_addresses_and_networks_only():
    from pydantic import ValidationError

    from signalwise.store import Settings

    assert Settings(camera_hosts="10.20.0.0/16, cam-3.ops.example,192.0.2.7").camera_hosts == [
        "10.20.0.0/16", "cam-3.ops.example", "192.0.2.7"]
    for bad in ("rtsp://10.0.0.7", "cam:554", "10.20.0.1/16"):
        with pytest.raises(ValidationError, match="SIGNALWISE_CAMERA_HOSTS"):
            Settings(camera_hosts=bad)
