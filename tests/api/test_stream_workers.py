"""Camera streams live in one process's memory: a server of several workers (`signalwise serve --workers N`, which
sets WEB_CONCURRENCY=N for them) answers every stream route 503 saying so, instead of keeping a stream in the one
worker that took its POST (GET and DELETE then answered 404 or 200 by the worker, and one camera could run twice);
the list answers 200, empty, with a `note` saying where streams run (a dashboard listing streams on every replica).
The app told it runs 2 workers, a single-worker one beside it, a live run's one process, and a real
`signalwise serve --workers 2` on 127.0.0.1."""

from __future__ import annotations

import shutil

import httpx
import pytest
from fastapi.testclient import TestClient
from support.loopback import free_port, serving_live, signalwise_serving
from support.migrated_databases import migrated_sqlite
from support.stream_api import one_second_clip, stream_api

pytest.importorskip("cv2", reason="camera streams need OpenCV (pip install 'signalwise[vision]')")

NOTE = ("camera streams run on a single-worker server, and this one runs 2 worker processes (WEB_CONCURRENCY=2): it "
        "runs none; list them on the single-worker `signalwise serve` (--workers 1) that runs them")
REFUSAL = ("camera streams run in one process, and this server runs 2 worker processes (signalwise serve --workers "
           "2; WEB_CONCURRENCY=2): a stream added to one would be unknown to the others; start a separate "
           "single-worker `signalwise serve` (--workers 1) for camera streams, or run this one with --workers 1")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return one_second_clip(tmp_path_factory.mktemp("clip"))[0]


def _every_stream_route(c, op) -> list:
    """Every stream route but the list."""
    return [c.post("/api/v1/streams", headers=op, json={"id": "w1", "url": "cam.mp4", "loop": True}),
            c.get("/api/v1/streams/w1", headers=op),
            c.post("/api/v1/streams/w1/start", headers=op), c.post("/api/v1/streams/w1/stop", headers=op),
            c.delete("/api/v1/streams/w1", headers=op), c.get("/api/v1/streams/alerts", headers=op),
            c.post("/api/v1/streams/alerts/a1/ack", headers=op)]


def test_a_server_of_two_workers_refuses_every_stream_route_with_the_reason_but_lists_none(tmp_path, video,
                                                                                             monkeypatch):
    cams = tmp_path / "cams"
    cams.mkdir()
    shutil.copy(video, cams / "cam.mp4")
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    app, op = stream_api(tmp_path, cameras_dir=cams)
    with TestClient(app) as c:
        for r in _every_stream_route(c, op):
            assert (r.status_code, r.json()["message"]) == (503, REFUSAL), (r.request.method, r.request.url, r.text)
        listed = c.get("/api/v1/streams", headers=op)
        assert listed.status_code == 200, listed.text
        assert listed.json() == {"items": [], "total": 0, "alerts": [], "note": NOTE}, listed.text
        assert c.post("/api/v1/streams", json={"url": "cam.mp4"}).status_code == 401  # the key is checked first
        assert app.state.vision is None  # no stream manager, no reader: nothing was started
        monkeypatch.setenv("WEB_CONCURRENCY", "1")  # one worker: streams as before
        r = c.post("/api/v1/streams", headers=op, json={"id": "w1", "url": "cam.mp4", "loop": True})
        assert r.status_code == 201, r.text
        assert c.get("/api/v1/streams/w1", headers=op).status_code == 200
        listed = c.get("/api/v1/streams", headers=op).json()
        assert [s["id"] for s in listed["items"]] == ["w1"] and "note" not in listed, listed
        assert c.delete("/api/v1/streams/w1", headers=op).status_code == 204


def test_a_live_run_serves_streams_from_its_one_process_whatever_web_concurrency_says(tmp_path, monkeypatch):
    from signalwise.store import Settings

    monkeypatch.setenv("WEB_CONCURRENCY", "4")  # a platform's default, not this process's workers
    settings = Settings(database_url=migrated_sqlite(tmp_path / "api.db"), evidence_dir=tmp_path / "evidence",
                        camera_alerts_buffer_dir=tmp_path / "buffer")
    with serving_live(settings, tmp_path / "live") as (client, _rt):
        r = client.get("/api/v1/streams")  # reads are open on loopback
    assert r.status_code == 200 and r.json()["items"] == [], r.text


@pytest.mark.slow
def test_a_real_serve_with_two_workers_answers_every_call_the_same(tmp_path, video):
    """On the old server the POST was 201 and the GETs alternated 404 and 200 as the workers took them."""
    from signalwise.store import get_engine
    from signalwise.store.keys import create_key

    cams = tmp_path / "cams"
    cams.mkdir()
    shutil.copy(video, cams / "cam.mp4")
    url = migrated_sqlite(tmp_path / "api.db")
    op = {"X-API-Key": create_key(get_engine(url), "op", ["operate", "read"])[1]}
    port = free_port()
    env = {"SIGNALWISE_CAMERAS_DIR": str(cams), "SIGNALWISE_EVIDENCE_DIR": str(tmp_path / "evidence"),
           "SIGNALWISE_CAMERA_ALERTS_BUFFER_DIR": str(tmp_path / "buffer"), "WEB_CONCURRENCY": "1"}
    with signalwise_serving(["serve", "--workers", "2", "--db", url, "--port", str(port)], "/health/live", port,
                            env=env, start_timeout_s=60), \
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10,
                         limits=httpx.Limits(max_keepalive_connections=0)) as c:  # a new connection: any worker
        r = c.post("/api/v1/streams", headers=op, json={"id": "w1", "url": "cam.mp4", "loop": True})
        answers = [r] + [c.get("/api/v1/streams/w1", headers=op) for _ in range(6)] + [
            c.delete("/api/v1/streams/w1", headers=op) for _ in range(2)]
        lists = [c.get("/api/v1/streams", headers=op) for _ in range(4)]
    assert {(a.status_code, a.json()["message"]) for a in answers} == {(503, REFUSAL)}, \
        [(a.status_code, a.text[:80]) for a in answers]
    assert {(a.status_code, a.json()["total"], a.json()["note"]) for a in lists} == {(200, 0, NOTE)}, \
        [(a.status_code, a.text[:80]) for a in lists]


UVICORN_REFUSAL = REFUSAL.replace("signalwise serve --workers 2; WEB_CONCURRENCY=2", "uvicorn --workers 2")
UVICORN_NOTE = NOTE.replace("WEB_CONCURRENCY=2", "uvicorn --workers 2")


@pytest.mark.slow
def test_uvicorn_run_with_two_workers_and_no_web_concurrency_is_told_apart(tmp_path):
    """`uvicorn signalwise.api:create_app --factory --workers 2`, without `signalwise serve` (which sets
    WEB_CONCURRENCY) and without WEB_CONCURRENCY: each worker tells it is one of two from uvicorn's supervisor, so
    the stream routes answer 503 and the list its note. On the old server they answered as a single worker: the
    list without a note, a stream's GET a 404 from whichever worker took it (a POST there would have been kept in
    that worker alone)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from signalwise.store import get_engine
    from signalwise.store.keys import create_key

    url = migrated_sqlite(tmp_path / "api.db")
    op = {"X-API-Key": create_key(get_engine(url), "op", ["operate", "read"])[1]}
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "WEB_CONCURRENCY"}
    env.update(SIGNALWISE_DATABASE_URL=url, SIGNALWISE_CAMERAS_DIR=str(tmp_path),
               SIGNALWISE_EVIDENCE_DIR=str(tmp_path / "evidence"),
               SIGNALWISE_CAMERA_ALERTS_BUFFER_DIR=str(tmp_path / "buffer"))
    uvicorn = str(Path(sys.executable).with_name("uvicorn"))
    proc = subprocess.Popen([uvicorn, "signalwise.api:create_app", "--factory", "--workers", "2", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10,
                          limits=httpx.Limits(max_keepalive_connections=0)) as c:  # a new connection: any worker
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None and time.monotonic() < deadline, "uvicorn did not serve"
                try:
                    if c.get("/health/live").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            answers = [c.get("/api/v1/streams/w1", headers=op) for _ in range(6)] + [
                c.post("/api/v1/streams", headers=op, json={"id": "w1", "url": "cam.mp4"})]
            lists = [c.get("/api/v1/streams", headers=op) for _ in range(4)]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # uvicorn and the two workers it started
        proc.wait(timeout=10)
    assert {(a.status_code, a.json()["message"]) for a in answers} == {(503, UVICORN_REFUSAL)}, \
        [(a.status_code, a.text[:120]) for a in answers]
    assert {(a.status_code, a.json()["total"], a.json().get("note")) for a in lists} == {(200, 0, UVICORN_NOTE)}, \
        [(a.status_code, a.text[:120]) for a in lists]
