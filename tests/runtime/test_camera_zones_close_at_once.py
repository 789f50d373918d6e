"""Camera zones close when their picture stops, not 5 s later (feeds engineer's trial, follow-up of
`test_camera_stream_end.py`):

- a clip streamed through the real `StreamManager` that ends with vehicles in its zones closes them as soon as
  its stream is `ended`: here the run's silence rule is an hour, so only the stream's end can close them;
- a `--field none` run that ends while a camera's zone is on writes the 81 into its `events.csv` (the run ends
  well within the 5 s silence rule).
"""

from __future__ import annotations

import csv
import time

import pytest

pytest.importorskip("cv2", reason="camera inputs need OpenCV (pip install 'signalwise[vision]')")

from test_camera_stream_end import assert_zones_closed_at_the_last_frame, play_to_its_end, queued_clip  # noqa: E402
from test_live_cameras import CHANNEL, LINKS, _zone, camera_on_c, frame_result  # noqa: E402, F401

from signalwise.runtime.config import RunConfig  # noqa: E402
from signalwise.runtime.live.runtime import LiveOptions, LiveRuntime  # noqa: E402


@pytest.fixture
def run(tmp_path):
    """A feed-only live run on `single`, opened, not looping; `run()` after `stop()` ends it at once."""
    rt = LiveRuntime(RunConfig(scenario="single", controller="max-pressure"),
                     LiveOptions(speed=1.0, field="none", sink="shadow"), tmp_path / "run")
    rt.open()
    yield rt
    if not rt.loop_over:
        rt.stop()
        rt.run()


@pytest.mark.slow
def test_a_clip_that_ends_closes_its_zones_when_its_stream_ends(run, tmp_path):
    from signalwise.runtime.live.cameras import LiveCameras

    clip, cfg = queued_clip(tmp_path)
    t0 = time.monotonic()
    cams = LiveCameras(run.stepper.intersections, run.stepper.approach_direction, feeds_loop=True, speed=1.0,
                       now=lambda: time.monotonic() - t0, silent_after_s=3600.0)
    cams.rebase(0.0)

    def closed(events) -> bool:
        return bool(events) and events[-1].event_code == 81 and all(
            e.event_code == 81 for e in events if e.parameter == events[-1].parameter)

    # the worker sees the end within its read's 0.5 s: the zones close then, not after the (hour-long) silence
    events, newest_s, now_s = play_to_its_end(cams, clip, cfg, settled=closed, settle_s=3.0)
    assert_zones_closed_at_the_last_frame(events, newest_s, now_s)


def _rows(run_dir) -> list[tuple[str, str, int, str]]:
    with open(run_dir / "events.csv", newline="") as fh:
        return [(r["DeviceId"], r["EventId"], int(r["Parameter"]), r["TimeStamp"]) for r in csv.DictReader(fh)]


def test_a_run_that_ends_while_a_zone_is_on_writes_its_81(run, frame_result):  # noqa: F811
    import dataclasses

    scene, result = frame_result
    run.cameras.add(camera_on_c(scene, "cam-on"))
    t = run.stepper.t
    run.cameras.update("cam-on", _zone(result, t, "north", True))  # a vehicle stands in the north zone
    run.cameras.update("cam-on", dataclasses.replace(result, time_s=t + 0.5, events=(), crossings=()))  # and stays
    run.stop()
    run.run()  # the loop ends at once: the run closes
    from signalwise.core.eventlog import format_timestamp

    rows = _rows(run.run_dir)
    north = [(code, at) for dev, code, ch, at in rows if dev == "C" and ch == CHANNEL["north"] and code in ("81", "82")]
    # the 81 at the camera's newest frame
    assert north == [("82", format_timestamp(t)), ("81", format_timestamp(t + 0.5))], rows
