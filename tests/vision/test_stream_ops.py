"""Operating camera streams: a slow worker gets the newest frame (drops counted) from a real video file."""

from __future__ import annotations

import time

import cv2
import numpy as np

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
        mgr.add(StreamSpec("s", str(src), cam, pace=True), start=False)
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
    assert max(lags) <= 2, lags  # always the newest (or the one before, decoded meanwhile), never a backlog
    assert s["stream"]["frames_dropped"] == 120 - s["pipeline"]["frames"] > 60
