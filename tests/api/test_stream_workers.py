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
