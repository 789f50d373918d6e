"""Violations in the store (counts agree with the rows, purge), the analytics and evidence routes with their
scopes and access log, and the camera stream routes on a real local video."""

from __future__ import annotations

import collections
import datetime as dt
import random
import time

import cv2
import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from vision_scenes import small_scene

from signalwise.api import create_app
from signalwise.store import Settings, get_engine
from signalwise.store.keys import create_key
from signalwise.store.violations import (
    evidence_access_log,
    hotspots,
    insert_violations,
    purge_violations,
    summary,
    trends,
)

T0 = dt.datetime(2026, 3, 1, 5, 30, tzinfo=dt.UTC)


def _rows(n, seed=0, evidence=None):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        out.append({"occurred_at": T0 + dt.timedelta(seconds=rng.uniform(0, 5 * 86400)),
                    "camera_id": f"cam-{rng.randrange(4)}", "device_id": "B1",
                    "approach": rng.choice(["north", "south", "east"]), "kind": rng.choice(["red_light", "speeding"]),
                    "track_id": i, "speed_mps": rng.uniform(5, 25), "evidence_path": evidence})
    return out


def test_counts_agree_with_the_rows_over_any_range(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'v.db'}")
    rows = _rows(3000)
    for k in range(0, 3000, 700):  # several batches: counts add up across them
        insert_violations(engine, rows[k:k + 700])
    rng = random.Random(1)
    for _ in range(5):
        lo = T0.replace(minute=0) + dt.timedelta(hours=rng.randrange(0, 60))  # counts have hour resolution
        hi = lo + dt.timedelta(hours=rng.randrange(1, 80))
        inside = [r for r in rows if lo <= r["occurred_at"] < hi]
        want = collections.Counter((r["camera_id"], r["approach"]) for r in inside)
        got = {(h["camera_id"], h["approach"]): h["total"] for h in hotspots(engine, lo, hi, limit=1000)}
        assert got == dict(want)
        per_day = collections.Counter((r["occurred_at"].date().isoformat(), r["kind"]) for r in inside)
        days = {(t["bucket"][:10], t["kind"]): t["count"] for t in trends(engine, "day", lo, hi)}
        assert days == dict(per_day)
        cam = [r for r in inside if r["camera_id"] == "cam-2" and r["approach"] == "north"]
        hours = trends(engine, "hour", lo, hi, camera_id="cam-2", approach="north")
        assert sum(t["count"] for t in hours) == len(cam)
    s = summary(engine)
    assert s["total"] == 3000 and s["red_light"] + s["speeding"] == 3000 and s["cameras"] == 4


def test_purge_deletes_old_images_then_old_rows_and_keeps_the_counts(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'v.db'}")
    img = tmp_path / "old.jpg"
    img.write_bytes(b"jpeg")
    insert_violations(engine, _rows(10, evidence=str(img)))
    now = T0 + dt.timedelta(days=120)
    assert purge_violations(engine, {}, now=now, dry_run=True) == {"violations": 0, "evidence_images": 10,
                                                                   "evidence_access": 0}
    assert img.exists()
    purge_violations(engine, {}, now=now)
    assert not img.exists()
    assert purge_violations(engine, {"violations": 30}, now=now)["violations"] == 10
    assert summary(engine)["total"] == 10  # the counts stay: numbers, no vehicle


@pytest.fixture
def app(tmp_path):
    url = f"sqlite:///{tmp_path / 'api.db'}"
    application = create_app(Settings(database_url=url, cache_ttl_s=0, bind_host="0.0.0.0",
                                      evidence_dir=tmp_path / "evidence", cameras_dir=tmp_path))
    engine = get_engine(url)
    keys = {s: create_key(engine, f"k-{s}", [s])[1] for s in ("read", "operate", "evidence", "admin")}
    return application, engine, keys


def test_evidence_needs_its_scope_and_every_read_is_logged(app, tmp_path):
    application, engine, keys = app
    img = tmp_path / "ev.jpg"
    cv2.imwrite(str(img), np.full((20, 30, 3), 128, np.uint8))
    insert_violations(engine, _rows(2, evidence=str(img)) + _rows(1, seed=3))
    with TestClient(application) as c:
        h = lambda s: {"X-API-Key": keys[s]}  # noqa: E731
        assert c.get("/api/v1/evidence/violations/1", headers=h("read")).status_code == 403
        assert c.get("/api/v1/evidence/violations/1").status_code == 401
        r = c.get("/api/v1/evidence/violations/1", headers=h("evidence"))
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
        assert c.get("/api/v1/evidence/violations/3", headers=h("evidence")).status_code == 410
        assert c.get("/api/v1/evidence/violations/99", headers=h("evidence")).status_code == 404
        assert c.get("/api/v1/evidence/access", headers=h("evidence")).status_code == 403
        log = c.get("/api/v1/evidence/access", headers=h("admin")).json()
        assert log["total"] == 4
        assert [(e["who"], e["violation_id"], e["result"]) for e in reversed(log["items"])] == [
            ("k-read", 1, "refused"), ("k-evidence", 1, "served"), ("k-evidence", 3, "gone"), ("k-evidence", 99, "unknown")]
        # analytics are reads, and show no image path
        listing = c.get("/api/v1/analytics/violations", headers=h("read")).json()
        assert listing["total"] == 3 and "evidence_path" not in listing["items"][0]
        assert c.get("/api/v1/analytics/violations/summary", headers=h("read")).json()["total"] == 3
        assert c.get("/api/v1/analytics/violations/trends?bucket=day", headers=h("read")).status_code == 200
        assert c.get("/api/v1/analytics/violations/hotspots", headers=h("read")).json()["items"]
        bad = c.get("/api/v1/analytics/violations/trends?approach=north", headers=h("read"))
        assert bad.status_code == 422 and "camera_id" in bad.json()["message"]
    assert evidence_access_log(engine)[0] == 4


def test_camera_stream_routes_with_scopes_on_a_local_video(app, tmp_path):
    from signalwise.vision.synthetic import write_video

    application, _engine, keys = app
    scene = small_scene(seed=4)
    write_video(tmp_path / "cam.mp4", scene, 4.0)
    camera = scene.camera_config()
    body = {"id": "cam-a", "url": str(tmp_path / "cam.mp4"), "camera": camera, "loop": True}
    with TestClient(application) as c:
        op, rd = {"X-API-Key": keys["operate"]}, {"X-API-Key": keys["read"]}
        assert c.post("/api/v1/streams", json=body, headers=rd).status_code == 403
        bad_cam = {**body, "camera": {**camera, "calibration": camera["calibration"][:3]}}
        r = c.post("/api/v1/streams", json=bad_cam, headers=op)
        assert r.status_code == 422 and "body.camera: calibration: 3 point pair(s)" in r.json()["message"]
        r = c.post("/api/v1/streams", json={**body, "url": "ftp://example.invalid/x"}, headers=op)
        assert r.status_code == 422 and "body.url" in r.json()["message"]
        r = c.post("/api/v1/streams", json=body, headers=op)
        assert r.status_code == 201, r.text
        assert c.post("/api/v1/streams", json=body, headers=op).status_code == 409
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            s = c.get("/api/v1/streams/cam-a", headers=rd).json()
            if s["pipeline"]["frames"] >= 20:
                break
            time.sleep(0.2)
        assert s["status"] == "streaming" and s["pipeline"]["frames"] >= 20 and s["stream"]["fps"] > 0
        assert s["camera_id"] == "cam-1" and s["pipeline"]["ms_per_frame"]["p50"] > 0
        listed = c.get("/api/v1/streams", headers=rd).json()
        assert [x["id"] for x in listed["items"]] == ["cam-a"]
        stopped = c.post("/api/v1/streams/cam-a/stop", headers=op).json()
        assert stopped["status"] == "stopped" and not stopped["wanted_running"]
        assert c.post("/api/v1/streams/cam-a/start", headers=op).json()["wanted_running"]
        assert c.get("/api/v1/streams/nope", headers=rd).status_code == 404
        assert c.delete("/api/v1/streams/cam-a", headers=rd).status_code == 403
        assert c.delete("/api/v1/streams/cam-a", headers=op).status_code == 204
        assert c.get("/api/v1/streams", headers=rd).json()["items"] == []


def test_camera_yaml_round_trip_keeps_extra_keys(tmp_path):
    from signalwise.vision.camera import load_camera

    cfg = small_scene().camera_config()
    cfg["vendor"] = {"model": "X"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cam = load_camera(path)
    assert cam.camera_id == "cam-1" and cam.model_extra["vendor"] == {"model": "X"}
    assert cam.zone_channels() == {"n-queue": 1, "e-queue": 2, "s-queue": 3, "w-queue": 4}


def test_camera_results_reach_the_live_websocket_without_a_live_run(app, tmp_path):
    """uvicorn on 127.0.0.1 and a real WebSocket client: topic `vision` carries a stream's tracks and zones."""
    import json
    import socket
    import threading

    import httpx
    import uvicorn
    from websockets.sync.client import connect

    from signalwise.vision.synthetic import write_video

    application, _engine, keys = app
    scene = small_scene(seed=4)
    write_video(tmp_path / "cam.mp4", scene, 4.0)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(application, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    port = sock.getsockname()[1]
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        r = httpx.post(f"{base}/api/v1/streams", headers={"X-API-Key": keys["operate"]}, timeout=30,
                       json={"id": "cam-ws", "url": str(tmp_path / "cam.mp4"), "camera": scene.camera_config(),
                             "loop": True})
        assert r.status_code == 201, r.text
        with connect(f"ws://127.0.0.1:{port}/api/v1/ws/live?topics=vision",
                     additional_headers={"X-API-Key": keys["read"]}, open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
            msg = json.loads(ws.recv(timeout=20))
            while msg["type"] == "heartbeat":
                msg = json.loads(ws.recv(timeout=20))
        assert msg["type"] == "vision" and msg["data"]["stream_id"] == "cam-ws" and msg["data"]["device_id"] == "B1"
        assert {"tracks", "zones", "crossings", "violations"} <= set(msg["data"])
        # no live run: a client asking only for what a live run sends is told so, not left waiting
        from websockets.exceptions import ConnectionClosed

        with connect(f"ws://127.0.0.1:{port}/api/v1/ws/live?topics=snapshot,change",
                     additional_headers={"X-API-Key": keys["read"]}, open_timeout=10) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
        assert closed.value.rcvd.code == 1008
        assert "only camera streams: topics alert, vision come, not snapshot, change" in closed.value.rcvd.reason
        r = httpx.get(f"{base}/api/v1/sse/live?topics=signal", headers={"X-API-Key": keys["read"]}, timeout=10)
        assert r.status_code == 422 and "only camera streams" in r.json()["message"]
        assert r.json()["detail"][0]["loc"] == ["query", "topics"]
        with connect(f"ws://127.0.0.1:{port}/api/v1/ws/live", additional_headers={"X-API-Key": keys["read"]},
                     open_timeout=10) as ws:  # all topics asked: the subscription names the two that come
            hello = json.loads(ws.recv(timeout=10))
            assert hello["type"] == "subscribed" and hello["topics"] == ["alert", "vision"]
            ws.send(json.dumps({"subscribe": {"topics": "profiler"}}))
            msg = json.loads(ws.recv(timeout=10))
            while msg["type"] != "error":
                msg = json.loads(ws.recv(timeout=10))
            assert "only camera streams" in msg["error"]
        # the last camera stream deleted: nothing is left to stream, said as with no live run at all
        r = httpx.delete(f"{base}/api/v1/streams/cam-ws", headers={"X-API-Key": keys["operate"]}, timeout=30)
        assert r.status_code == 204, r.text
        r = httpx.get(f"{base}/api/v1/sse/live", headers={"X-API-Key": keys["read"]}, timeout=10)
        assert r.status_code == 503 and "no live run is attached" in r.json()["detail"]
        with connect(f"ws://127.0.0.1:{port}/api/v1/ws/live", additional_headers={"X-API-Key": keys["read"]},
                     open_timeout=10) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
        assert closed.value.rcvd.code == 1013
    finally:
        application.state.streams.close()
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def test_sqlite_fast_path_stores_what_sqlalchemy_reads_and_merges_with_its_counts(db_url):
    """insert_violations writes SQLite rows itself (stored forms, executemany); they read back as given, and a
    count row SQLAlchemy wrote for the same bucket is added to, not duplicated. PostgreSQL: the general path."""
    from sqlalchemy import func, select

    from signalwise.store.tables import ViolationCountsHourly, ViolationRow
    from signalwise.store.violations import _deltas, _row, _upsert

    engine = get_engine(db_url)
    rows = _rows(40, seed=9)
    rows[0]["track"] = [[0.0, 1.5, 2.25]]
    rows[1]["track"] = None
    first = [_row(0, r) for r in rows[:1]]
    hourly, _daily = _deltas(first)
    with engine.begin() as conn:  # a count row as SQLAlchemy's own insert writes it
        _upsert(conn, ViolationCountsHourly.__table__, hourly)
    insert_violations(engine, rows)
    with engine.connect() as conn:
        back = conn.execute(select(ViolationRow.__table__).order_by(ViolationRow.__table__.c.track_id)).all()
        t = ViolationCountsHourly.__table__
        n_rows = conn.execute(select(func.count()).select_from(t).where(
            t.c.camera_id == rows[0]["camera_id"], t.c.approach == "*")).scalar_one()
        c = conn.execute(select(t.c.count).where(
            t.c.camera_id == rows[0]["camera_id"], t.c.approach == rows[0]["approach"], t.c.kind == rows[0]["kind"],
            t.c.bucket == rows[0]["occurred_at"].replace(minute=0, second=0, microsecond=0))).scalar_one()
    assert [(b.occurred_at, b.camera_id, b.kind, b.track_id) for b in back] == \
        [(r["occurred_at"], r["camera_id"], r["kind"], r["track_id"]) for r in rows]
    assert back[0].track == [[0.0, 1.5, 2.25]] and back[1].track is None
    same_hour = sum(1 for r in rows if r["camera_id"] == rows[0]["camera_id"] and r["approach"] == rows[0]["approach"]
                    and r["kind"] == rows[0]["kind"] and r["occurred_at"].replace(minute=0, second=0, microsecond=0)
                    == rows[0]["occurred_at"].replace(minute=0, second=0, microsecond=0))
    assert c == same_hour + 1  # the row SQLAlchemy wrote, added to
    hours = {(r["kind"], r["occurred_at"].replace(minute=0, second=0, microsecond=0)) for r in rows
             if r["camera_id"] == rows[0]["camera_id"]}
    assert n_rows == len(hours)  # one row per (kind, hour): no duplicate bucket text
    assert summary(engine)["total"] == len(rows)


def test_the_violation_writer_writes_at_once_when_flushed_and_closed(tmp_path):
    """flush() and close() do not wait for the writer's timer (30 s here): what was put is written now."""
    from signalwise.store.violations import ViolationWriter

    engine = get_engine(f"sqlite:///{tmp_path / 'w.db'}")
    writer = ViolationWriter(engine, flush_s=30.0, batch=1000)
    t0 = time.monotonic()
    writer.put(_rows(2500, seed=4))
    writer.flush()
    assert writer.stats()["written"] == 2500 and summary(engine)["total"] == 2500
    writer.put(_rows(3, seed=5))
    writer.close()
    assert not writer._thread.is_alive() and writer.stats()["written"] == 2503
    assert time.monotonic() - t0 < 15


def test_violations_stored_after_a_cached_answer_are_in_the_next_one(tmp_path):
    """The analytics answers are cached for `cache_ttl_s`, and dropped on every write through the store; the
    violation writer did not say it wrote, so a summary asked before a camera's violations kept answering 0 for
    the TTL while the list already held them."""
    url = f"sqlite:///{tmp_path / 'api.db'}"
    application = create_app(Settings(database_url=url, cache_ttl_s=600))  # loopback: reads need no key
    engine = get_engine(url)
    with TestClient(application) as c:
        before = c.get("/api/v1/analytics/violations/summary").json()
        insert_violations(engine, _rows(3))
        after = c.get("/api/v1/analytics/violations/summary").json()
        hot = c.get("/api/v1/analytics/violations/hotspots").json()
    assert before["total"] == 0, before
    assert after["total"] == 3, after
    assert sum(i["total"] for i in hot["items"]) == 3, hot
