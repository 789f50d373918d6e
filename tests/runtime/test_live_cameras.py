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
