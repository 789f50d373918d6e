"""Operating camera streams: a slow worker gets the newest frame (drops counted) from a real video file."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

FPS = 40


def _numbered_video(path, n: int, fps: float = FPS) -> None:
    """`n` frames whose picture says their index: two grey halves, the left i // 16 and the right i % 16 in
    steps of 16 levels (coarse enough to survive JPEG), MJPG in AVI."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert w.isOpened()
    for i in range(n):
        image = np.empty((48, 64, 3), np.uint8)
        image[:, :32] = (i // 16) * 16 + 8
        image[:, 32:] = (i % 16) * 16 + 8
        w.write(image)
    w.release()


def _index_in(image: np.ndarray) -> int:
    high, low = (int(round((float(image[8:40, a:a + 16].mean()) - 8) / 16)) for a in (8, 40))
    return 16 * high + low


def test_a_slow_consumer_gets_the_newest_frame_and_the_skipped_ones_count_as_drops(tmp_path):
    from signalwise.vision.streams import StreamReader

    src = tmp_path / "numbered.avi"
    _numbered_video(src, 120)
    reader = StreamReader(str(src), pace=True, drop_oldest=True, buffer_size=8).start()
    got = []
    try:
        while True:
            frame = reader.read_latest(2.0)
            if frame is None:
                break
            # nothing newer than this frame had been decoded when it was handed over (one may have come since)
            assert frame.index >= reader.frames_read - 2, (frame.index, reader.frames_read)
            assert _index_in(frame.image) == frame.index  # the picture is that frame's
            got.append(frame.index)
            time.sleep(0.1)  # a pipeline at 10 frames/s behind a 40 frames/s camera
    finally:
        reader.stop()
    s = reader.stats()
    assert s.status == "ended" and s.frames_read == 120
    assert got == sorted(got) and len(got) < 60  # it skipped ahead, in order
    assert s.frames_dropped == s.frames_read - s.frames_delivered  # every frame is either processed or a drop
    assert s.frames_dropped > 60


def test_the_stream_manager_worker_skips_to_the_newest_frame(tmp_path):
    from signalwise.vision.manager import StreamManager, StreamSpec
    from signalwise.vision.synthetic import Scene

    scene = Scene(seed=3)
    src = tmp_path / "numbered.avi"
    _numbered_video(src, 120)
    from signalwise.vision.camera import camera_from_dict

    cam = camera_from_dict({**scene.camera_config(), "zones": [], "stop_lines": []})
    mgr = StreamManager(monitor_every_s=0.2)
    seen: list[tuple[int, int]] = []
    try:
        mgr.add(StreamSpec("s", str(src), cam, pace=True, buffer_size=8), start=False)  # room for a backlog
        ms = mgr._streams["s"]
        ms.pipeline = mgr._pipeline(ms.spec)
        real_process = ms.pipeline.process

        def process(image, time_s):  # the real pipeline, made slow: 10 frames/s behind a 40 frames/s file
            seen.append((_index_in(image), ms.reader.frames_read))
            time.sleep(0.1)
            return real_process(image, time_s)

        ms.pipeline.process = process
        mgr.start("s")
        deadline = time.monotonic() + 20
        while mgr.get("s")["status"] != "ended" and time.monotonic() < deadline:
            time.sleep(0.1)
        ms.worker.join(5)
        s = mgr.get("s")
    finally:
        mgr.close()
    assert s["status"] == "ended" and s["stream"]["frames_read"] == 120
    lags = [read - 1 - index for index, read in seen[1:]]
    # the newest frame (or the one before, decoded meanwhile), never a backlog: a queue of the 8 frames the buffer
    # holds would lag 6 to 8 behind at almost every frame. On a loaded machine the reader may read a few frames
    # between the worker's taking one and this record of it (5 seen once), so the bound is on the median, and no
    # frame may lag a whole buffer
    assert sorted(lags)[len(lags) // 2] <= 2 and max(lags) < 8, lags
    assert s["stream"]["frames_dropped"] == 120 - s["pipeline"]["frames"] > 60


# -- monitoring: figures on /metrics, camera alerts raised, stored, acknowledged and cleared ----------------------
def _wait(cond, timeout_s=20.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    return None


def _fast_down_rule():
    """The built-in stream-down rule, held 0.5 s instead of 10 (the test waits for the wiring, not the rule)."""
    from signalwise.runtime.live.alerts import BUILTIN_RULES

    rule = next(r for r in BUILTIN_RULES if r.name == "vision_stream_down")
    return rule.model_copy(update={"for_s": 0.5})


def _metric(text: str, name: str, **labels) -> float | None:
    """A sample's value in Prometheus' text format (labels in any order), None when absent."""
    import re

    for line in text.splitlines():
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
        if m and m[1] == name and dict(re.findall(r'(\w+)="([^"]*)"', m[2] or "")) == labels:
            return float(m[3])
    return None


@pytest.mark.slow
def test_a_camera_that_goes_dark_raises_a_stored_alert_that_is_acknowledged_and_clears(tmp_path):
    """No live run: the cameras' own engine; alerts in the API's database (simulation id `cameras`), figures on
    /metrics, all against an MJPEG camera on 127.0.0.1 that is stopped and started again."""
    from fastapi.testclient import TestClient
    from vision_scenes import small_scene

    from signalwise.api import create_app
    from signalwise.runtime.live.alerts import BUILTIN_RULES
    from signalwise.store import Settings, get_engine
    from signalwise.store.keys import create_key
    from signalwise.store.live import list_alerts
    from signalwise.vision.mjpeg_server import MjpegServer, free_port

    url = f"sqlite:///{tmp_path / 'api.db'}"
    app = create_app(Settings(database_url=url, evidence_dir=tmp_path / "evidence",
                              camera_alerts_buffer_dir=tmp_path / "buffer", camera_hosts=["127.0.0.1"]))
    engine = get_engine(url)
    op = {"X-API-Key": create_key(engine, "night-operator", ["operate"])[1]}
    console = {"X-API-Key": create_key(engine, "console", ["read"])[1]}
    scene = small_scene(seed=2)
    frames = [f for f, _t, _truth, _s in scene.frames(2.0)]
    port = free_port()
    camera = MjpegServer(frames, fps=10, port=port).start()
    try:
        with TestClient(app) as c:
            r = c.post("/api/v1/streams", headers=op, json={"id": "cam-m", "url": camera.url,
                                                            "camera": scene.camera_config()})
            assert r.status_code == 201, r.text
            app.state.vision_alerts.replace_rules(
                [_fast_down_rule() if r.name == "vision_stream_down" else r for r in BUILTIN_RULES
                 if r.metric.startswith("vision_") or r.name.startswith("process_")])
            assert _wait(lambda: c.get("/api/v1/streams/cam-m").json()["pipeline"]["frames"] >= 5)
            text = c.get("/metrics").text
            assert _metric(text, "signalwise_vision_stream_up", stream="cam-m") == 1.0
            assert _metric(text, "signalwise_vision_frames_read_total", stream="cam-m") >= 5
            assert _metric(text, "signalwise_vision_frames_dropped_total", stream="cam-m") is not None
            assert _metric(text, "signalwise_vision_frame_milliseconds", stream="cam-m", quantile="p50") > 0
            assert _metric(text, "signalwise_profiler_milliseconds", stage="vision_frame.cam-m", quantile="p95") > 0
            assert _metric(text, "process_resident_memory_bytes") > 10e6
            assert _metric(text, "signalwise_vision_alerts_active", level="error") == 0.0

            camera.stop()  # the camera goes dark
            alert = _wait(lambda: next((a for a in c.get("/api/v1/streams/alerts").json()["active"]
                                        if a["rule"] == "vision_stream_down"), None))
            assert alert and alert["metric"] == "vision_stream_down.cam-m" and alert["level"] == "error", alert
            s = c.get("/api/v1/streams/cam-m").json()
            assert s["status"] == "reconnecting" and s["error"]  # a clear status, no crash
            assert _metric(c.get("/metrics").text, "signalwise_vision_stream_down", stream="cam-m") == 1.0
            assert _metric(c.get("/metrics").text, "signalwise_vision_alerts_active", level="error") == 1.0
            stored = _wait(lambda: [a for a in list_alerts(engine, "cameras") if a["id"] == alert["id"]])
            assert stored and stored[0]["rule"] == "vision_stream_down" and stored[0]["active"]

            assert c.post(f"/api/v1/streams/alerts/{alert['id']}/ack").status_code == 401  # operate needed
            with c.websocket_connect("/api/v1/ws/live?topics=alert", headers=console) as ws:  # a console following it
                acked = c.post(f"/api/v1/streams/alerts/{alert['id']}/ack", headers=op)
                assert _alert_streamed(ws, alert["id"], "night-operator"), "the acknowledgement was not streamed"
                ws.close()
            assert acked.status_code == 200 and acked.json()["acknowledged_by"] == "night-operator"
            assert c.post("/api/v1/streams/alerts/nope/ack", headers=op).status_code == 404
            again = c.post(f"/api/v1/streams/alerts/{alert['id']}/ack", headers=op)  # the first stays the record
            assert again.status_code == 409 and "acknowledged by 'night-operator'" in again.json()["message"]
            assert _wait(lambda: [a for a in list_alerts(engine, "cameras")
                                  if a["id"] == alert["id"] and a["acknowledged_by"] == "night-operator"])

            camera = MjpegServer(frames, fps=10, port=port).start()  # back
            assert _wait(lambda: not c.get("/api/v1/streams/alerts").json()["active"], 30)
            cleared = _wait(lambda: [a for a in list_alerts(engine, "cameras")
                                     if a["id"] == alert["id"] and not a["active"]])
            assert cleared and cleared[0]["acknowledged_by"] == "night-operator"  # a clearing keeps the ack
            back = _wait(lambda: (lambda s: s if s["status"] == "streaming" else None)(
                c.get("/api/v1/streams/cam-m").json()), 30)
            assert back["error"] is None  # the outage is over: no error now, and the one it had is named as past
            assert back["previous_error"] and back["previous_error_at"] <= time.time()
    finally:
        camera.stop()


@pytest.mark.slow
def test_with_a_live_run_camera_alerts_are_the_runs_own_stored_and_acknowledged_with_it(tmp_path):
    """A live run on `single` (SUMO in-process): the run's engine reads the camera figures, so a camera that
    never answers raises the run's alert, stored with the run's alerts and acknowledged through its route."""
    import threading

    from fastapi.testclient import TestClient

    from signalwise.api import create_app
    from signalwise.runtime.config import RunConfig
    from signalwise.runtime.live.alerts import AlertEngine, with_builtins
    from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime
    from signalwise.store import Settings, get_engine
    from signalwise.store.keys import create_key
    from signalwise.store.live import LiveStoreWriter, list_alerts
    from signalwise.vision.mjpeg_server import free_port

    url = f"sqlite:///{tmp_path / 'api.db'}"
    engine = get_engine(url)
    op = {"X-API-Key": create_key(engine, "operator", ["operate"])[1]}
    console = {"X-API-Key": create_key(engine, "console", ["read"])[1]}
    store = LiveStoreWriter(url, "live-cam", tmp_path / "buffer")
    alerts = AlertEngine(with_builtins([_fast_down_rule()]), on_acknowledge=store.put_alert)
    rt = LiveRuntime(RunConfig(scenario="single"), LiveOptions(speed=5.0, duration_s=3600, in_process=True),
                     tmp_path / "live-cam", store=store, alerts=alerts)
    rt.open()
    app = create_app(Settings(database_url=url, evidence_dir=tmp_path / "evidence", camera_hosts=["127.0.0.1"]))
    app.state.live = rt
    loop = threading.Thread(target=rt.run, daemon=True)
    loop.start()
    try:
        with TestClient(app) as c:
            dead = f"http://127.0.0.1:{free_port()}/stream.mjpg"  # nothing listens: the camera never answers
            assert c.post("/api/v1/streams", headers=op, json={"id": "cam-x", "url": dead}).status_code == 201
            assert app.state.vision.profiler is rt.profiler
            alert = _wait(lambda: next((a for a in c.get("/api/v1/live/alerts").json()["active"]
                                        if a["metric"] == "vision_stream_down.cam-x"), None))
            assert alert and alert["rule"] == "vision_stream_down", c.get("/api/v1/live/alerts").json()
            assert [a["id"] for a in c.get("/api/v1/streams/alerts").json()["active"]] == [alert["id"]]
            assert _wait(lambda: [a for a in list_alerts(engine, "live-cam") if a["id"] == alert["id"]])
            # acknowledged at the cameras' route, it is the run's acknowledgement: stored and streamed as the
            # run's own route does it, and the run's route finds it taken
            with c.websocket_connect("/api/v1/ws/live?topics=alert", headers=console) as ws:
                assert c.post(f"/api/v1/streams/alerts/{alert['id']}/ack", headers=op).status_code == 200
                assert _alert_streamed(ws, alert["id"], "operator"), "the acknowledgement was not streamed"
                ws.close()
            assert c.post(f"/api/v1/live/alerts/{alert['id']}/ack", headers=op).status_code == 409
            assert _wait(lambda: [a for a in list_alerts(engine, "live-cam")
                                  if a["id"] == alert["id"] and a["acknowledged_by"] == "operator"])
            assert rt.running  # the loop never noticed anything but an alert
    finally:
        rt.stop()
        loop.join(10)
        store.close()


def _alert_streamed(ws, alert_id: str, who: str, timeout_s: float = 30.0) -> dict | None:
    """The `alert` message that says `who` acknowledged `alert_id`, read from a WebSocket subscribed to `alert`
    (the hub's heartbeat every 10 s bounds each wait); None when none came in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = ws.receive_json()
        data = msg.get("data") or {}
        if msg.get("type") == "alert" and data.get("id") == alert_id and data.get("acknowledged_by") == who:
            return data
    return None


def _camera_app(tmp_path):
    """The API app with its own database and an `operate` key; camera alerts are the cameras' own (no live run)."""
    from signalwise.api import create_app
    from signalwise.store import Settings, get_engine
    from signalwise.store.keys import create_key

    url = f"sqlite:///{tmp_path / 'api.db'}"
    app = create_app(Settings(database_url=url, evidence_dir=tmp_path / "evidence",
                              camera_alerts_buffer_dir=tmp_path / "buffer", camera_hosts=["127.0.0.1"]))
    engine = get_engine(url)
    return app, engine, {"X-API-Key": create_key(engine, "operator", ["operate"])[1]}


@pytest.mark.slow
def test_a_stopped_stream_started_again_runs_on_with_its_pipeline_and_clock(tmp_path):
    """Stop, then start again over the API, with an MJPEG camera on 127.0.0.1: the new reader's clock starts at
    0, the kept pipeline's is past it; the stream must run on (frames grow, never `failed`) and its frame times
    go on after the stop, by about the time it was stopped."""
    from fastapi.testclient import TestClient
    from vision_scenes import small_scene

    from signalwise.vision.mjpeg_server import MjpegServer, free_port

    app, _engine, op = _camera_app(tmp_path)
    scene = small_scene(seed=2)
    camera = MjpegServer([f for f, _t, _truth, _s in scene.frames(2.0)], fps=10, port=free_port()).start()
    try:
        with TestClient(app) as c:
            r = c.post("/api/v1/streams", headers=op, json={"id": "cam-r", "url": camera.url,
                                                            "camera": scene.camera_config()})
            assert r.status_code == 201, r.text
            assert _wait(lambda: c.get("/api/v1/streams/cam-r").json()["pipeline"]["frames"] >= 15)
            stopped = c.post("/api/v1/streams/cam-r/stop", headers=op).json()
            assert stopped["status"] == "stopped"
            kept = app.state.vision._streams["cam-r"]
            frames_before, time_before_s = stopped["pipeline"]["frames"], kept.last_frame_time_s
            assert time_before_s > 1.0
            time.sleep(1.0)

            started = c.post("/api/v1/streams/cam-r/start", headers=op)
            assert started.status_code == 200 and started.json()["wanted_running"]
            s = _wait(lambda: x if (x := c.get("/api/v1/streams/cam-r").json())["status"] == "failed"
                      or x["pipeline"]["frames"] >= frames_before + 15 else None)
            assert s and s["status"] == "streaming" and s["error"] is None, s
            assert c.post("/api/v1/streams/cam-r/stop", headers=op).json()["status"] == "stopped"
            # read once it is stopped: while it runs, a frame can land between the two reads
            assert kept.pipeline.time_s == kept.last_frame_time_s
            assert kept.last_frame_time_s >= time_before_s + 1.0 + 1.0  # the 1 s stopped, then 15 frames at 10/s
    finally:
        camera.stop()


@pytest.mark.slow
def test_deleting_a_down_stream_clears_its_down_alert(tmp_path):
    """A stream whose camera never answers raises `vision_stream_down`; once the stream is deleted nothing is
    down any more: the alert clears (in the API and in the store), as when the camera comes back."""
    from fastapi.testclient import TestClient

    from signalwise.runtime.live.alerts import BUILTIN_RULES
    from signalwise.store.live import list_alerts
    from signalwise.vision.mjpeg_server import free_port

    app, engine, op = _camera_app(tmp_path)
    with TestClient(app) as c:
        dead = f"http://127.0.0.1:{free_port()}/stream.mjpg"  # nothing listens
        # two such streams side by side, so the monitor's ticks are waited for once: one to be deleted, and one
        # an operator stops rather than deletes (stopped is not down)
        assert c.post("/api/v1/streams", headers=op, json={"id": "cam-d", "url": dead}).status_code == 201
        app.state.vision_alerts.replace_rules(  # the cameras' engine exists once a stream does
            [_fast_down_rule() if r.name == "vision_stream_down" else r for r in BUILTIN_RULES
             if r.metric.startswith("vision_")])
        assert c.post("/api/v1/streams", headers=op, json={"id": "cam-s", "url": dead}).status_code == 201

        def down() -> dict | None:
            active = {a["metric"]: a for a in c.get("/api/v1/streams/alerts").json()["active"]}
            wanted = [active.get(f"vision_stream_down.{sid}") for sid in ("cam-d", "cam-s")]
            return None if None in wanted else dict(zip(("cam-d", "cam-s"), wanted, strict=True))

        alerts = _wait(down)
        assert alerts, c.get("/api/v1/streams/alerts").json()

        assert c.delete("/api/v1/streams/cam-d", headers=op).status_code == 204
        assert c.post("/api/v1/streams/cam-s/stop", headers=op).status_code == 200
        assert _wait(lambda: not c.get("/api/v1/streams/alerts").json()["active"], 10), \
            c.get("/api/v1/streams/alerts").json()
        history = c.get("/api/v1/streams/alerts").json()["history"]
        for sid, alert in alerts.items():
            assert [a["cleared_value"] for a in history if a["id"] == alert["id"]] == [0.0], (sid, history)
        assert _wait(lambda: [a for a in list_alerts(engine, "cameras")
                              if a["id"] == alerts["cam-d"]["id"] and not a["active"]])


# -- bad input through the API and the camera source ----------------------------------------------------------
def test_a_zone_outside_the_streams_frame_fails_the_stream_with_its_name_not_the_server(tmp_path):
    """A stream URL is not opened at POST (a camera away now is waited for), so its zones can only be checked
    against its frame once the first frame comes: the stream fails with the zone named, the server goes on. (A
    video file is opened at POST and refused there: `test_stream_refusals.py`.)"""
    from fastapi.testclient import TestClient
    from vision_scenes import small_scene

    from signalwise.vision.mjpeg_server import MjpegServer, free_port

    app, _engine, op = _camera_app(tmp_path)
    scene = small_scene(seed=4)  # 320x240
    camera = scene.camera_config()
    camera["zones"] = [*camera["zones"], {"name": "far-away", "approach": "north",
                                          "px": [[10, 10], [900, 10], [900, 50]]}]
    server = MjpegServer([f for f, _t, _truth, _s in scene.frames(0.5)], fps=10, port=free_port()).start()
    try:
        with TestClient(app) as c:
            r = c.post("/api/v1/streams", headers=op, json={"id": "cam-z", "url": server.url, "camera": camera})
            assert r.status_code == 201, r.text
            s = _wait(lambda: (x := c.get("/api/v1/streams/cam-z").json())["status"] == "failed" and x)
            assert s and "(far-away): point [900, 10] is outside the 320x240 frame" in s["error"], s
            assert c.get("/api/v1/system/info").status_code == 200
    finally:
        server.stop()


def test_a_camera_naming_an_approach_the_intersection_lacks_is_refused_by_name():
    from vision_scenes import small_scene

    from signalwise.core import Intersection, Movement, Phase, Timing
    from signalwise.vision.camera import CameraFileError, camera_from_dict
    from signalwise.vision.source import CameraObservationSource

    movements = (Movement(0, "n_in_0", "s_out_0"), Movement(1, "s_in_0", "n_out_0"),
                 Movement(2, "e_in_0", "w_out_0"), Movement(3, "w_in_0", "e_out_0"))
    phases = (Phase(0, "GGrr", movements[:2]), Phase(1, "rrGG", movements[2:]))
    timing = Timing(3.5, 2.0, (5.0, 5.0), (40.0, 40.0), 7.0, 12.0, 40.0, 120.0)
    b1 = Intersection("B1", phases, 4, movements, (), (), timing)
    cfg = small_scene().camera_config()  # zones and stop lines on all four approaches
    for z in cfg["zones"]:
        z.pop("channel")  # B1 has no detectors: a channel would name none (refused, test_camera_source_wiring.py)
    camera = camera_from_dict(cfg)
    three = {"n_in_0": "north", "s_in_0": "south", "e_in_0": "east"}  # no west arm
    with pytest.raises(CameraFileError, match=r"\(w-queue\)|\(w\)") as refused:
        CameraObservationSource([b1], three, [camera])
    assert "approach 'west' is not an approach of B1 (its approaches: east, north, south)" in str(refused.value)
    four = {**three, "w_in_0": "west"}
    assert CameraObservationSource([b1], four, [camera]).cameras == ["cam-1"]


def test_a_stream_that_cannot_start_is_not_left_listed(tmp_path):
    """Its detector cannot be built (an ONNX model that is not there): the add is refused and the stream is
    not in the list, so the same id can be added again once the model is in place."""
    from signalwise.vision.camera import camera_from_dict
    from signalwise.vision.manager import StreamManager, StreamSpec
    from signalwise.vision.synthetic import Scene

    src = tmp_path / "numbered.avi"
    _numbered_video(src, 10)
    cam = camera_from_dict({**Scene(seed=3).camera_config(), "zones": [], "stop_lines": []})
    mgr = StreamManager(monitor_every_s=0.2)
    try:
        with pytest.raises(Exception, match="no such model file"):
            mgr.add(StreamSpec("s", str(src), cam, detector="onnx", model=str(tmp_path / "missing.onnx")))
        assert mgr.list() == []
        mgr.add(StreamSpec("s", str(src), cam), start=False)
        assert [s["id"] for s in mgr.list()] == ["s"]
    finally:
        mgr.close()
