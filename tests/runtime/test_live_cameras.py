"""Camera streams as inputs of a live run (`runtime/live/cameras.py`), in process on `single` with `--field none`:
a camera is checked against the run's signals, its frames are placed on the run's clock (a frame from the
run's future is unhealthy), and its zones reach the loop's source beside the detector feed.

Frames are a synthetic intersection's (`vision.synthetic.Scene`) through the real pipeline; `signalwise live
--camera` end to end is in `test_live_camera_command.py`."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("cv2", reason="camera inputs need OpenCV (pip install 'signalwise[vision]')")

from signalwise.core.types import ObservationNeed  # noqa: E402
from signalwise.runtime.config import RunConfig  # noqa: E402
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime  # noqa: E402

#: the synthetic scene's approaches on `single`'s signal C: the stop line's links, the zone's detector channel
#: (the stop-bar loop of the approach's middle lane)
LINKS = {"north": [0, 1, 2], "east": [4, 5, 6], "south": [8, 9, 10], "west": [12, 13, 14]}
CHANNEL = {"north": 5, "east": 2, "south": 8, "west": 11}


def camera_on_c(scene, camera_id="cam-1", device_id="C"):
    from signalwise.vision.camera import camera_from_dict

    cfg = scene.camera_config(camera_id=camera_id, device_id=device_id)
    for line in cfg["stop_lines"]:
        line["links"] = LINKS[line["approach"]]
    for zone in cfg["zones"]:
        zone["channel"] = CHANNEL[zone["approach"]]
    return camera_from_dict(cfg)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A feed-only live run on `single`, opened (signals, lanes, its feed and cameras) but not looping."""
    cfg = RunConfig(scenario="single", controller="max-pressure")
    runtime = LiveRuntime(cfg, LiveOptions(speed=1.0, field="none", sink="shadow"),
                          tmp_path_factory.mktemp("live") / "run")
    runtime.open()
    yield runtime
    runtime._finish()


@pytest.fixture(scope="module")
def frame_result():
    """A frame of the scene with vehicles standing in its zones, through the pipeline (stream time 30 s)."""
    from signalwise.vision.blobs import BlobDetector
    from signalwise.vision.pipeline import Pipeline
    from signalwise.vision.synthetic import Scene

    scene = Scene(width_px=320, height_px=240, px_per_m=4.0, fps=10.0, seed=3, arrivals_per_s=0.3)
    empty_road = scene.render()  # nothing has arrived yet
    pipe = Pipeline(camera_on_c(scene), BlobDetector(reference=empty_road, min_area_px=40, close_px=5))
    for _ in range(280):  # the first NS red: queues on north and south
        scene.step(0.1)
    result = None
    for image, t, _truth, _state in scene.frames(2.0):
        result = pipe.process(image, t)
    assert sum(z.vehicles for z in result.zones) > 0
    return scene, result


def _need(inter):
    stopbars = tuple(d.id for d in inter.detectors if d.kind == "stopbar")
    return ObservationNeed(inter.in_lanes, "counts", (), stopbars)


def test_a_camera_the_run_cannot_use_is_refused_by_name(run, frame_result):
    from signalwise.vision.camera import CameraFileError
    from signalwise.vision.manager import StreamError, StreamManager, StreamSpec

    scene, _result = frame_result
    with pytest.raises(CameraFileError, match=r"device_id 'B1' is not a signal of this run \(signals: C\)"):
        run.cameras.check(camera_on_c(scene, device_id="B1"))
    mgr = StreamManager(source=run.cameras, monitor_every_s=60)
    try:  # a stream posted to the run: 422 with the reason, nothing listed, no input added
        with pytest.raises(StreamError, match="is not a signal of this run") as refused:
            mgr.add(StreamSpec("elsewhere", "/nonexistent.avi", camera_on_c(scene, "cam-x", "B1")), start=False)
        assert refused.value.status == 422 and mgr.list() == [] and run.cameras.cameras == []
        mgr.add(StreamSpec("cam-9", "/nonexistent.avi", camera_on_c(scene, "cam-9")), start=False)
        with pytest.raises(StreamError, match="another stream of this run has this camera_id"):
            mgr.add(StreamSpec("again", "/nonexistent.avi", camera_on_c(scene, "cam-9")), start=False)
        assert run.cameras.cameras == ["cam-9"]
        mgr.remove("cam-9")  # a deleted stream is no input of the run any more
        assert run.cameras.cameras == []
    finally:
        mgr.close()


def test_frames_are_on_the_runs_clock_and_a_frame_from_its_future_is_unhealthy(run, frame_result):
    """The stream's own clock says 30 s; the run is at 3600 s: the camera's data are fresh, not an hour old."""
    scene, result = frame_result
    (inter,) = run.stepper.intersections
    cams, source = run.cameras, run.field.backend
    cams.add(camera_on_c(scene, "cam-clock"))
    try:
        cams.rebase(3600.0)
        at = cams.frame_time_s(time.monotonic())
        assert 3600.0 <= at < 3601.0
        cams.update("cam-clock", result, at)
        obs = source.observe(inter, 3606.0, _need(inter))
        (health,) = obs.sources  # the feed never spoke for C: the camera alone
        assert health.source == "camera:cam-clock" and health.healthy and 5.0 <= health.age_s < 7.0, health
        assert obs.data_fault(10.0) is None
        # zone events go into the run's log on its clock
        assert all(e.time_s >= 3600.0 for e in cams.drain_events())
        # a frame stamped 30 s ahead of the loop (the clock was rebased under it): unhealthy, the shield falls back
        cams.update("cam-clock", result, cams.frame_time_s(time.monotonic() + 30.0))
        obs = source.observe(inter, 3607.0, _need(inter))
        assert "camera:cam-clock unhealthy: newest frame is" in obs.data_fault(10.0)
        assert "ahead of the run's clock" in obs.data_fault(10.0)
    finally:
        cams.remove("cam-clock")


def test_an_intersection_with_a_camera_and_detectors_gets_both(run, frame_result):
    """Per lane the sound source with the newer data; counts the feed sends stand; every source in `sources`."""
    scene, result = frame_result
    (inter,) = run.stepper.intersections
    cams, source, feed = run.cameras, run.field.backend, run.feed
    cams.add(camera_on_c(scene, "cam-both"))
    try:
        t0 = run.stepper.t  # the feed refuses data from ahead of the loop's clock
        cams.rebase(t0)
        cams.update("cam-both", result, t0)
        camera_only = source.observe(inter, t0 + 1.0, _need(inter))
        camera_lanes = {lane: ls.queue_veh for lane, ls in camera_only.lanes.items()}
        assert sum(camera_lanes.values()) > 0 and {s.source for s in camera_only.sources} == {"camera:cam-both"}
        # the feed speaks for C: a count of 3 on N_C_1's stop bar, 4 s newer than the camera's frame
        bar = next(d for d in inter.detectors if d.kind == "stopbar" and d.lane == "N_C_1")
        accepted = feed.accept({"device_id": "C", "channel": bar.channel, "count_veh": 3, "occupancy": 0.1,
                                "interval_s": 4.0, "sim_time_s": t0 + 4.0})
        assert accepted.ok, accepted
        obs = source.observe(inter, t0 + 4.5, _need(inter))
        assert {s.source for s in obs.sources} == {"camera:cam-both", "feed:detectors"}
        assert obs.detector_counts_veh[bar.id] == 3  # the feed's count
        assert obs.lanes["N_C_1"].count_veh == 3  # the feed is fresher on the lane it measures
        assert {lane: obs.lanes[lane].queue_veh for lane in camera_lanes if lane != "N_C_1"} == \
            {lane: q for lane, q in camera_lanes.items() if lane != "N_C_1"}  # the camera's lanes the feed lacks
        assert obs.data_fault(10.0) is None
        # the camera's stream drops: its intersection falls back though the detectors still report
        cams.mark_down("cam-both", "stream cam-both reconnecting: connection refused")
        obs = source.observe(inter, t0 + 5.0, _need(inter))
        assert obs.data_fault(10.0) == ("camera:cam-both unhealthy: stream cam-both reconnecting: connection "
                                        "refused")
    finally:
        cams.remove("cam-both")


# -- the hi-res log, counts and the clock with several sources ------------------------------------------------------
def _cameras(run, *, now=lambda: 100.0, speed=None, feed=None):
    """Camera inputs of their own on `run`'s signal (the module's run is shared), beside `feed` when given."""
    from signalwise.runtime.live.cameras import LiveCameras

    cams = LiveCameras(run.stepper.intersections, run.stepper.approach_direction, feeds_loop=True, speed=speed,
                       now=now)
    cams.feed = feed
    return cams


def _zone(result, t, approach, on):
    """The frame `result` at `t` with one zone event: `approach`'s zone going on (82) or off (81)."""
    import dataclasses

    from signalwise.core.types import SignalEvent

    event = SignalEvent(t, "C", 82 if on else 81, CHANNEL[approach])
    return dataclasses.replace(result, time_s=t, events=(event,), crossings=())


def test_a_detector_channel_gets_one_stream_the_feeds_where_it_reports_else_the_cameras_merged(run, frame_result):
    from signalwise.runtime.live.feeds import DetectorFeed

    scene, result = frame_result
    assert run.cameras.feed is run.feed  # the runtime gives its cameras the feed beside them
    feed = DetectorFeed(run.stepper.intersections)
    cams = _cameras(run, feed=feed)
    cams.add(camera_on_c(scene, "cam-a"))
    cams.add(camera_on_c(scene, "cam-b"))
    # two cameras on the north approach: the channel is on from the first's 82 to the last's 81
    for cam, t, on in (("cam-a", 100.0, True), ("cam-b", 101.0, True), ("cam-a", 102.0, False),
                       ("cam-b", 103.0, False)):
        cams.update(cam, _zone(result, t, "north", on))
    assert [(e.time_s, e.event_code, e.parameter) for e in cams.drain_events()] == [(100.0, 82, 5), (103.0, 81, 5)]
    # the east zone is on when east's physical loop starts reporting: the camera's stream ends where the feed's
    # begins, and from then on only the feed logs channel 2; north's loop reported before its zone went on
    cams.update("cam-a", _zone(result, 104.0, "east", True))
    assert [(e.time_s, e.event_code, e.parameter) for e in cams.drain_events()] == [(104.0, 82, 2)]
    for ch, t in ((CHANNEL["east"], 106.0), (CHANNEL["north"], 105.0)):
        assert feed.accept({"device_id": "C", "channel": ch, "event": "on", "sim_time_s": t}).ok
    for t, approach, on in ((107.0, "east", False), (108.0, "north", True), (109.0, "north", False),
                            (110.0, "east", True)):
        cams.update("cam-a", _zone(result, t, approach, on))
    assert [(e.time_s, e.event_code, e.parameter) for e in cams.drain_events()] == [(106.0, 81, 2)]
    assert [(e.time_s, e.parameter) for e in feed.drain_events()] == [(105.0, 5), (106.0, 2)]


def test_a_camera_counts_only_the_detectors_its_stop_lines_count_for(run, frame_result):
    """A detector neither the feed nor a stop line counts for is missing, not 0 (the loop must not read a stale or
    faulty detector, left out on purpose, as an empty lane)."""
    from signalwise.runtime.live.cameras import FeedsAndCameras
    from signalwise.runtime.live.feeds import DetectorFeed
    from signalwise.vision.camera import camera_from_dict

    scene, _result = frame_result
    (inter,) = run.stepper.intersections
    cfg = scene.camera_config(camera_id="cam-north", device_id="C")
    cfg["stop_lines"] = [line for line in cfg["stop_lines"] if line["approach"] == "north"]
    for line in cfg["stop_lines"]:
        line["links"] = LINKS["north"]
    cfg["zones"] = [zone for zone in cfg["zones"] if zone["approach"] == "north"]
    for zone in cfg["zones"]:
        zone["channel"] = CHANNEL["north"]
    feed = DetectorFeed(run.stepper.intersections)
    cams = _cameras(run, feed=feed)
    cams.add(camera_from_dict(cfg))
    bars = {d.id: run.stepper.approach_direction[d.lane] for d in inter.detectors if d.kind == "stopbar"}
    south = sorted(d for d, a in bars.items() if a == "south")
    fed = next(d for d in inter.detectors if d.id == south[0])
    assert feed.accept({"device_id": "C", "channel": fed.channel, "count_veh": 2, "occupancy": 0.1,
                        "interval_s": 4.0, "sim_time_s": 100.0}).ok
    obs = FeedsAndCameras(feed, cams).observe(inter, 100.5, _need(inter))
    assert set(obs.detector_counts_veh) == {d for d, a in bars.items() if a == "north"} | {fed.id}
    assert obs.detector_counts_veh[fed.id] == 2


def test_a_removed_camera_leaves_its_events_and_closes_its_zones(run, frame_result):
    scene, result = frame_result
    now = [100.0]
    cams = _cameras(run, now=lambda: now[0])
    cams.add(camera_on_c(scene, "cam-a"))
    cams.add(camera_on_c(scene, "cam-b"))
    cams.update("cam-a", _zone(result, 100.0, "north", True))
    cams.update("cam-a", _zone(result, 100.5, "east", True))
    cams.update("cam-b", _zone(result, 101.0, "north", True))
    now[0] = 105.0
    cams.remove("cam-a")  # undrained, both its zones occupied: north stays on through cam-b
    assert [(e.time_s, e.event_code, e.parameter) for e in cams.drain_events()] == \
        [(100.0, 82, 5), (100.5, 82, 2), (105.0, 81, 2)]
    now[0] = 106.0
    cams.remove("cam-b")
    assert [(e.time_s, e.event_code, e.parameter) for e in cams.drain_events()] == [(106.0, 81, 5)]


def test_a_frame_decoded_before_the_loop_began_is_at_its_start(run, frame_result):
    """`--camera` streams start in `open()`; the loop rebases the clock when `run()` begins: a frame decoded 2 s
    earlier at --speed 10 is at the loop's start, not 20 s ahead of it (unhealthy, falling back at once)."""
    scene, result = frame_result
    (inter,) = run.stepper.intersections
    cams = _cameras(run, now=lambda: 100.0, speed=10.0)
    cams.add(camera_on_c(scene, "cam-early"))
    decoded = time.monotonic() + 2.0  # two wall seconds after the cameras were made, the loop not yet begun
    assert cams.frame_time_s(decoded) == 100.0
    cams.update("cam-early", result, cams.frame_time_s(decoded))
    (obs,) = cams.observations(inter, 100.0, _need(inter))
    assert obs.sources[0].healthy, obs.sources
    cams.rebase(100.0)
    assert 109.0 <= cams.frame_time_s(time.monotonic() + 1.0) < 111.0
