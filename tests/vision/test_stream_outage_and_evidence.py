"""What a live camera stream tells its operator and its store through an outage and a first violation, on real MJPEG
cameras on 127.0.0.1 and real video files:

- A camera whose picture froze and whose stream then dropped is never reported well in between: its frozen alert
  holds through the outage until a picture that moves comes back (by then `vision_stream_down` has joined it, after
  its 10 s), and its status says there is no picture while no frames come (`image` null) and what the last frames
  showed (`image_last`), not a stale `image: "frozen"` as if it were being watched.
- A live stream's violation reaches the store once its evidence image is on disk, so its row has the image's
  digest, however slowly the writer's thread draws the image (the first violation of a stream on a loaded
  machine was stored without one)."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
from support.waiting import value_within as _wait


@pytest.mark.slow
def test_a_camera_frozen_then_dropped_is_alerted_all_through_until_its_picture_moves_again():
    from vision_scenes import small_scene

    from signalwise.runtime.live.alerts import AlertEngine, with_builtins
    from signalwise.vision.camera import camera_from_dict
    from signalwise.vision.manager import StreamManager, StreamSpec
    from signalwise.vision.mjpeg_server import MjpegServer

    scene = small_scene(seed=2)
    frames = [f for f, _t, _truth, _s in scene.frames(1.5)]
    camera = camera_from_dict({**scene.camera_config(), "camera_id": "cam", "image_bad_after_s": 0.3})
    hung = MjpegServer([frames[5]], fps=20).start()  # one picture over and over: a hung encoder
    port = hung.port
    engine = AlertEngine([r for r in with_builtins([]) if r.name.startswith("vision_stream")])
    mgr = StreamManager(monitor_every_s=0.1)
    samples: list[tuple[str, float, float, bool]] = []  # (status, frozen figure, down figure, a camera alert up)
    stop = threading.Event()

    def watch() -> None:  # the alert engine fed as a server's monitor feeds it, 20 times a second
        while not stop.is_set():
            figures = mgr.metrics()
            engine.evaluate(time.monotonic(), figures)
            status = mgr.get("cam")["status"]
            samples.append((status, figures.get("vision_stream_frozen.cam", 0.0),
                            figures.get("vision_stream_down.cam", 0.0),
                            any(a.metric.endswith(".cam") for a in engine.active())))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    back = None
    try:
        mgr.add(StreamSpec("cam", hung.url, camera))
        assert _wait(lambda: mgr.get("cam")["image"] == "frozen")
        watcher.start()
        assert _wait(lambda: samples and samples[-1][3])  # the frozen alert is up
        hung.stop()  # the camera goes dark: connections refused
        dark = _wait(lambda: (lambda s: s if s["status"] == "reconnecting" else None)(mgr.get("cam")))
        assert dark, mgr.get("cam")
        assert (dark["image"], dark["image_bad_s"], dark.get("image_last")) == (None, None, "frozen")
        time.sleep(1.0)  # an outage of a while: the frozen alert holds
        back = MjpegServer(frames, fps=20, port=port).start()  # the camera comes back, its picture moving
        assert _wait(lambda: mgr.get("cam")["image"] == "ok", timeout_s=20.0), mgr.get("cam")
        assert _wait(lambda: samples[-1][:3] == ("streaming", 0.0, 0.0) and not samples[-1][3])
    finally:
        stop.set()
        watcher.join(5)
        mgr.close()
        hung.stop()
        if back is not None:
            back.stop()
    statuses = [s[0] for s in samples]
    assert "reconnecting" in statuses
    up_to = len(samples) - 1 - [s[1] for s in reversed(samples)].index(1.0)  # the last sample still frozen
    # from the raise to the picture back, never a moment without a camera alert, nor with the frozen figure down
    assert all(s[3] and s[1] == 1.0 for s in samples[: up_to + 1]), samples
    assert statuses[up_to + 1] == "streaming"  # it went down with the picture moving again, not with the outage
    assert engine.active() == []
    cleared = [a for a in engine.history() if a.rule == "vision_stream_frozen"]
    assert len(cleared) == 1 and cleared[0].cleared_at_s is not None  # raised once, cleared once


@pytest.mark.slow
def test_a_live_stream_s_first_violation_is_stored_with_its_image_s_digest(tmp_path, monkeypatch):
    """A road clip read as a camera (at its frame rate), two speeders; the evidence writer's thread takes 0.5 s
    an image (a machine at load 6), the store writes every 50 ms: each row still holds its image's SHA-256."""
    from sqlalchemy import select

    from signalwise.store import get_engine
    from signalwise.store.tables import ViolationRow
    from signalwise.store.violations import ViolationWriter
    from signalwise.vision import evidence
    from signalwise.vision.camera import camera_from_dict
    from signalwise.vision.manager import StreamManager, StreamSpec
    from signalwise.vision.synthetic_road import camera_config, write_speed_clip

    drawn = evidence.annotate

    def slowly(job):
        time.sleep(0.5)
        return drawn(job)

    monkeypatch.setattr(evidence, "annotate", slowly)
    write_speed_clip(tmp_path / "road.mp4", [20.0], 10.0, width_px=640, height_px=480)
    camera = camera_from_dict(camera_config(640, 480, 8.0))
    engine = get_engine(f"sqlite:///{tmp_path / 'v.db'}")
    writer = ViolationWriter(engine, flush_s=0.05)
    mgr = StreamManager(on_violations=writer.put, evidence_dir=tmp_path / "evidence")
    try:
        mgr.add(StreamSpec("road", str(tmp_path / "road.mp4"), camera))
        assert _wait(lambda: mgr.get("road")["status"] == "ended", timeout_s=60.0), mgr.get("road")
        assert _wait(lambda: writer.written == 2, timeout_s=10.0), writer.stats()
    finally:
        mgr.close()
        writer.close()
    with engine.connect() as conn:
        rows = conn.execute(select(ViolationRow.kind, ViolationRow.evidence_path,
                                   ViolationRow.evidence_sha256).order_by(ViolationRow.id)).all()
    assert [r.kind for r in rows] == ["speeding", "speeding"]
    for r in rows:
        assert r.evidence_sha256 == hashlib.sha256(open(r.evidence_path, "rb").read()).hexdigest(), r
