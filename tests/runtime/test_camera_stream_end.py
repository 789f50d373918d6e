"""A camera stream that ends or drops closes its zones in the run's hi-res log (`runtime/live/cameras.py`).

A clip that ends with vehicles standing in its zones, streamed through the real `StreamManager` and pipeline
into a run's cameras: once it has sent no frame for `silent_after_s`, every detector channel its zones held on
gets an 81, at its last frame's time. A stream marked down (reconnecting, failed) closes them at once.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("cv2", reason="camera inputs need OpenCV (pip install 'signalwise[vision]')")

from test_live_cameras import CHANNEL, LINKS, _zone, camera_on_c, frame_result, run  # noqa: E402, F401


def _cameras(run, now):  # noqa: F811 - the module's `run` fixture
    from signalwise.runtime.live.cameras import LiveCameras

    cams = LiveCameras(run.stepper.intersections, run.stepper.approach_direction, feeds_loop=True, speed=1.0,
                       now=now)
    cams.silent_after_s = 1.0
    return cams


def queued_clip(tmp_path):
    """A 2 s clip of the synthetic intersection with queues standing on north and south to its end, and its camera
    file mapped on to `single`'s signal C (zones on its channels): zones that are on when the clip ends."""
    import cv2

    from signalwise.vision.synthetic import Scene, write_video

    scene = Scene(width_px=320, height_px=240, px_per_m=4.0, fps=10.0, seed=3, arrivals_per_s=0.3)
    cv2.imwrite(str(tmp_path / "empty.png"), scene.render())  # nothing has arrived yet: the empty road
    for _ in range(280):  # the first NS red: queues stand on north and south to the clip's end
        scene.step(0.1)
    write_video(tmp_path / "clip.avi", scene, 2.0, fourcc="MJPG")
    cfg = scene.camera_config(camera_id="cam-end", device_id="C")
    for line in cfg["stop_lines"]:
        line["links"] = LINKS[line["approach"]]
    for zone in cfg["zones"]:
        zone["channel"] = CHANNEL[zone["approach"]]
    cfg.pop("speed_limit_mps", None)
    cfg["background_image"] = str(tmp_path / "empty.png")
    return tmp_path / "clip.avi", cfg


def play_to_its_end(cams, clip, cfg, settled, settle_s: float) -> tuple[list, float, float]:
    """Stream `clip` (camera file `cfg`) through a real StreamManager into `cams` until the stream has ended, then
    drain until `settled(events)` holds or `settle_s` passed; the events, the clip's last frame's time and the
    loop's time then."""
    from signalwise.vision.camera import camera_from_dict
    from signalwise.vision.manager import StreamManager, StreamSpec

    mgr = StreamManager(source=cams, monitor_every_s=0.2)
    events = []
    try:
        mgr.add(StreamSpec("clip", str(clip), camera_from_dict(cfg)))
        end = time.monotonic() + 20.0
        while mgr.get("clip")["status"] != "ended" and time.monotonic() < end:
            events += cams.drain_events()
            time.sleep(0.1)
        assert mgr.get("clip")["status"] == "ended", mgr.get("clip")
        end = time.monotonic() + settle_s
        while not settled(events) and time.monotonic() < end:
            time.sleep(0.1)
            events += cams.drain_events()
        (newest_s,) = cams._newest_s.values()  # the clip's last frame, on the run's clock
        now_s = cams._now()
    finally:
        mgr.close()
    return events, newest_s, now_s


def assert_zones_closed_at_the_last_frame(events, newest_s: float, now_s: float) -> None:
    """Vehicles stood in the zones, every channel's last event is an 81, stamped at the clip's last frame, not when
    the end was noticed (a loaded machine notices it late: then CLOSE_BEHIND_S before the loop's time)."""
    from signalwise.runtime.live.cameras import CLOSE_BEHIND_S

    last = {}
    for e in events:
        last[e.parameter] = e
    assert any(e.event_code == 82 for e in events), events
    assert {ch: e.event_code for ch, e in last.items()} == dict.fromkeys(last, 81), events
    # + 0.05: the events are stamped to the tenth of a second (a last frame at 2.16 s closes at 2.2 s)
    assert all(e.time_s <= max(newest_s, now_s - CLOSE_BEHIND_S) + 0.05 for e in last.values()), (newest_s, events)


def test_a_clip_that_ends_with_vehicles_in_its_zones_closes_them(run, tmp_path):  # noqa: F811
    clip, cfg = queued_clip(tmp_path)
    t0 = time.monotonic()
    cams = _cameras(run, now=lambda: time.monotonic() - t0)
    cams.rebase(0.0)
    # no frame for longer than silent_after_s (1 s here)
    events, newest_s, now_s = play_to_its_end(cams, clip, cfg, settled=lambda _events: False, settle_s=1.5)
    assert_zones_closed_at_the_last_frame(events, newest_s, now_s)


def test_a_stream_marked_down_closes_its_zones_once(run, frame_result):  # noqa: F811
    scene, result = frame_result
    now = [100.0]
    cams = _cameras(run, now=lambda: now[0])
    cams.add(camera_on_c(scene, "cam-down"))
    cams.update("cam-down", _zone(result, 100.0, "north", True))
    cams.update("cam-down", _zone(result, 100.5, "east", True))
    assert [(e.time_s, e.event_code, e.parameter) for e in cams.drain_events()] == [(100.0, 82, 5), (100.5, 82, 2)]
    now[0] = 104.0
    for _ in range(2):  # the stream monitor says so every second while the stream reconnects
        cams.mark_down("cam-down", "stream cam-down reconnecting: connection refused")
    assert [(e.time_s, e.event_code, e.parameter) for e in cams.drain_events()] == [(100.5, 81, 2), (100.5, 81, 5)]
    assert cams.drain_events() == []
    # frames again: the zones are the camera's again
    cams.update("cam-down", _zone(result, 105.0, "west", True))
    assert [(e.time_s, e.event_code, e.parameter) for e in cams.drain_events()] == [(105.0, 82, 11)]


def test_a_drop_noticed_late_closes_the_zones_within_the_logs_hold(run, frame_result):  # noqa: F811
    """A stream marked down 20 simulated seconds after its last frame (a slow read timeout, or a silence noticed
    after 5 wall seconds at --speed 4): an 81 at the last frame's time would be written behind events.csv's hold
    for late events, out of time order. It is stamped CLOSE_BEHIND_S before the loop's time."""
    from signalwise.runtime.live.cameras import CLOSE_BEHIND_S

    scene, result = frame_result
    now = [100.0]
    cams = _cameras(run, now=lambda: now[0])
    cams.add(camera_on_c(scene, "cam-late"))
    cams.update("cam-late", _zone(result, 100.0, "north", True))
    assert [(e.time_s, e.event_code) for e in cams.drain_events()] == [(100.0, 82)]
    now[0] = 120.0
    cams.mark_down("cam-late", "stream cam-late reconnecting: read timed out")
    assert [(e.time_s, e.event_code) for e in cams.drain_events()] == [(120.0 - CLOSE_BEHIND_S, 81)]
