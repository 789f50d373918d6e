"""A vehicle lost at the stop line and found again past it under a new track is still counted, once.

Hand-made tracks on a road whose image pixels are road metres (`to_road` the identity): the stop line is
y = 100 from x = 0 to 50, traffic comes from y < 100.
"""

from __future__ import annotations

import numpy as np
import pytest

from signalwise.vision.stoplines import (
    STITCH_MPS,
    STITCH_S,
    STITCH_SLACK_M,
    StopLineCounter,
    StopLineGeometry,
)


def _counter(to_road=lambda p: np.asarray(p, float).reshape(-1, 2)) -> StopLineCounter:
    line = StopLineGeometry("n", "north", [0], (0, 100), (50, 100), upstream_point=(25, 50))
    return StopLineCounter([line], to_road)


def _feed(counter: StopLineCounter, frames: list[tuple[float, dict[int, tuple[float, float]]]]) -> list:
    hits = []
    for t, anchors in frames:
        hits += counter.update(t, {k: np.asarray(p, float) for k, p in anchors.items()})
    return hits


def _lost_at_the_line(gap_s: float = 0.6, found_y: float = 103.0):
    """Track 1 creeps up to 1 m before the line and vanishes; track 2 appears past it `gap_s` later."""
    return [(0.0, {1: (20, 96)}), (0.2, {1: (20, 97.5)}), (0.4, {1: (20, 99)}),
            (0.4 + gap_s, {2: (20, found_y)}), (0.6 + gap_s, {2: (20, found_y + 1.5)})]


def test_a_track_lost_before_the_line_and_found_past_it_is_one_crossing():
    (hit,) = _feed(_counter(), _lost_at_the_line())
    line, tid, t, where, joined, _beside = hit
    assert joined
    assert line.name == "n" and tid == 2
    # interpolated on the path from the last point before (0.4 s, y 99) to the first after (1.0 s, y 103)
    assert t == pytest.approx(0.4 + 0.6 * 0.25) and where[1] == pytest.approx(100.0)
    # without road coordinates nothing is joined, and the vehicle is lost to the count
    assert _feed(_counter(None), _lost_at_the_line()) == []


def test_no_join_beyond_the_time_or_the_reach():
    assert _feed(_counter(), _lost_at_the_line(gap_s=STITCH_S + 0.2)) == []
    far = 99.0 + 0.6 * STITCH_MPS + STITCH_SLACK_M + 1.0
    assert _feed(_counter(), _lost_at_the_line(found_y=far)) == []


def test_a_vehicle_counted_before_it_was_lost_is_not_counted_again():
    frames = [(0.0, {1: (20, 98)}), (0.2, {1: (20, 101)}),  # crossed, then lost
              (0.8, {2: (20, 105)}), (1.0, {2: (20, 107)})]
    hits = _feed(_counter(), frames)
    assert [h[1] for h in hits] == [1]


def test_a_vanished_track_is_joined_once():
    """Two new tracks past the line after one vanished: one crossing (the nearer one), not two."""
    frames = [(0.0, {1: (20, 97)}), (0.2, {1: (20, 99)}),
              (0.6, {2: (20, 102), 3: (24, 102.5)}), (0.8, {2: (20, 104), 3: (24, 104.5)})]
    hits = _feed(_counter(), frames)
    assert [h[1] for h in hits] == [2]


def test_a_track_that_appears_on_another_approach_is_no_continuation():
    """A north-bound vehicle is lost at its line; a vehicle newly seen in the west approach's queue lies past the
    north line (and within reach), yet it came over no stop line."""
    west_approach = lambda p: p[0] < 0  # noqa: E731 - the west approach: left of x = 0
    frames = [(0.0, {1: (2, 97)}), (0.2, {1: (2, 99)}), (0.6, {2: (-2, 104)}), (0.8, {2: (-2.5, 104)})]
    assert _feed(StopLineCounter(_counter().lines, _counter().to_road, west_approach), frames) == []
    assert [h[1] for h in _feed(_counter(), frames)] == [2]  # told nothing of approaches, it would join them


def test_the_pipeline_joins_on_road_metres():
    """The pipeline hands its homography to the counter."""
    from vision_scenes import small_camera, small_pipeline, small_scene

    scene = small_scene()
    pipe = small_pipeline(scene, small_camera(scene))
    assert pipe.counter.to_road is not None
    p = np.array([[10.0, 20.0]])
    assert np.allclose(pipe.counter.to_road(p), pipe.homography.to_road(p))
    for zone in pipe.zones:  # and its approach zones
        assert pipe.counter.on_approach(zone.centroid())
    outside = np.array([-1000.0, -1000.0])
    assert not pipe.counter.on_approach(outside)


def test_a_joined_crossing_counts_but_calls_no_red_light():
    """Through the pipeline, on red: a car seen crossing runs the red light; one lost 1 m before the line and
    found again 7 m past it 2 s later (a new track) is counted, but nobody saw it on the line."""
    from signalwise.vision.camera import camera_from_dict
    from signalwise.vision.detections import Detections
    from signalwise.vision.pipeline import Pipeline

    ppm, fps = 6.0, 5.0
    pairs = [{"px": [x, y], "m": [x / ppm, -y / ppm]} for x in (0, 200, 399) for y in (0, 60, 119)]
    camera = camera_from_dict({
        "camera_id": "c", "device_id": "d", "calibration": pairs, "frame_size": [400, 120],
        "stop_lines": [{"name": "e", "approach": "east", "px": [[120, 36], [120, 72]], "links": [0]}],
        "zones": [{"name": "e-queue", "approach": "east", "px": [[120, 36], [120, 72], [390, 72], [390, 36]]}]})

    class Boxes:  # the car's box where the script puts it: a detector that sees exactly what it is told
        def __init__(self, centres):
            self.centres = centres

        def detect(self, image, time_s):
            x = self.centres.get(round(time_s * fps))
            if x is None:
                return Detections.empty()
            return Detections(np.array([[x - 13.5, 44, x + 13.5, 55]], np.float32), np.ones(1, np.float32))

    def run(centres):
        pipe = Pipeline(camera, Boxes(centres))
        image = np.zeros((120, 400, 3), np.uint8)
        results = [pipe.process(image, k / fps, signal_state="r") for k in range(40)]
        return [c for r in results for c in r.crossings], [v for r in results for v in r.violations]

    seen = {k: 300.0 - 6.0 * k for k in range(40)}  # 5 m/s westwards, over the line at k = 30
    crossings, violations = run(seen)
    assert len(crossings) == 1 and [v.kind for v in violations] == ["red_light"]
    assert crossings[0].track_id == 1
    lost = {k: x for k, x in seen.items() if x > 126.0 or x < 80.0}  # unseen 1.6 s, from 1 m before the line
    crossings, violations = run(lost)
    assert len(crossings) == 1 and crossings[0].track_id != 1 and crossings[0].joined and violations == []


def test_a_joined_track_takes_over_the_lines_the_vanished_one_crossed():
    """Two stop lines in a row, 8 m apart (two signals close together), seen at 2 px/m through a real homography.
    Track 1 crosses the first line, its anchor falls back 1 m behind it (a box that grows as the vehicle creeps),
    and it is lost; track 2 is found 1 s later past the second line. The path between them crosses both lines:
    the vehicle is counted on the second line under track 2, and not a second time on the first."""
    from signalwise.vision.calibration import Homography

    corners_m = [(0, 0), (100, 0), (0, 200), (100, 200)]
    road = Homography.from_pairs([(2 * x, 2 * y) for x, y in corners_m], corners_m)
    lines = [StopLineGeometry(name, "north", [0], (0, y_px), (100, y_px), upstream_point=(50, 100))
             for name, y_px in (("first", 200), ("second", 216))]
    frames = [(0.0, {1: (40, 192)}), (0.2, {1: (40, 201)}), (0.4, {1: (40, 199)}),
              (1.4, {2: (40, 220)}), (1.6, {2: (40, 223)})]
    hits = _feed(StopLineCounter(lines, road.to_road), frames)
    assert [(h[0].name, h[1], h[4]) for h in hits] == [("first", 1, False), ("second", 2, True)]


def test_forgotten_tracks_leave_nothing_behind():
    """A live run forgets the tracks it no longer sees (the pipeline after `FORGET_S`, longer than the tracker
    keeps a lost track, so a forgotten id never comes back); the lines they crossed go with them, or a counter
    on a long run would grow with every vehicle it ever counted."""
    counter = _counter()
    hits = []
    for k in range(1, 501):  # 500 vehicles one after another, each over the line and gone
        hits += _feed(counter, [(2.0 * k, {k: (20, 98)}), (2.0 * k + 0.2, {k: (20, 101)})])
        counter.forget([k])
    assert [h[1] for h in hits] == list(range(1, 501))
    assert not counter._crossed and not counter._last
