"""Stop lines side by side on one approach count a vehicle once, and judge it against every line it was on.

The geometry is the camera file a render writes for `single`, read from SUMO itself (`read_scene` over TraCI,
without a GUI) and drawn through the render's own views: each approach has a through line (two lanes) and a
left-turn line (one lane) that share an end. Both are lengthened by `END_MARGIN` at each end, so around the
shared end they overlap by about half a metre; a vehicle whose anchor crosses there passes both.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from signalwise.vision.camera import camera_from_dict
from signalwise.vision.detections import Detections
from signalwise.vision.pipeline import Pipeline
from signalwise.vision.stoplines import END_MARGIN

FPS = 5.0
SPEED_MPS = 6.0


@pytest.fixture(scope="module")
def single():
    """`single`'s stop lines and the top-down and oblique views a bench render uses (133 m on 800 pixels)."""
    import traci

    from signalwise.sim.camera.scene import camera_file, read_scene
    from signalwise.sim.camera.views import oblique_view, topdown_view
    from signalwise.sim.scenario import load
    from signalwise.sim.sumo_home import sumo_binary

    label = f"stopline-beside-{os.getpid()}"
    traci.start([sumo_binary("sumo"), "-n", str(load("single").net_file), "--no-step-log", "true",
                 "--no-warnings", "true"], label=label)
    api = traci.getConnection(label)
    try:
        tls = api.trafficlight.getIDList()[0]
        scene = read_scene(api, tls)
        cx, cy = api.junction.getPosition(scene.junction_id)
        n_links = len(api.trafficlight.getRedYellowGreenState(tls))
    finally:
        api.close()
    half = 133.0 / 2
    top = topdown_view((cx - half, cy - half, cx + half, cy + half), 800, 800)
    views = {"topdown": top, "oblique": oblique_view(top)}
    cameras = {name: camera_from_dict(camera_file(scene, view, f"sim-{name}")) for name, view in views.items()}
    return scene, views, cameras, n_links


def _pairs(scene):
    """(through line, left-turn line, their shared end in metres) per approach."""
    out = []
    for approach in scene.approaches:
        through, left = (next(sl for sl in approach.stop_lines if sl.name == n)
                         for n in (approach.name[0], f"{approach.name[0]}-left"))
        shared = {tuple(p) for p in through.ends_m} & {tuple(p) for p in left.ends_m}
        assert len(shared) == 1, f"{approach.name}: the lines share no end"
        out.append((through, left, np.array(shared.pop(), float)))
    return out


def _path_m(line, at_m, offset_m: float, back_and_forth: bool = False):
    """Road points, one per frame, of a vehicle driving over the line at `at_m` moved `offset_m` along the line
    towards its far end; with `back_and_forth`, its anchor falls back over the line and crosses it again."""
    ends = np.array(line.ends_m, float)
    far = ends[0] if np.allclose(ends[1], at_m) else ends[1]
    along = (far - at_m) / np.linalg.norm(far - at_m)
    point = at_m + along * offset_m
    heading = np.array(line.heading_m, float)
    steps = np.arange(-8.0, 8.0, SPEED_MPS / FPS) + 0.5 * SPEED_MPS / FPS  # never exactly on the line
    if back_and_forth:
        steps = np.concatenate([steps[steps < 1.0], [-0.4, 0.7, -0.3, 0.9], steps[steps >= 1.0]])
    return [point + heading * s for s in steps]


def _counter_hits(camera, view, path_m):
    counter = Pipeline(camera, detector=_Nothing()).counter
    hits = []
    for k, p in enumerate(path_m):
        hits += counter.update(k / FPS, {1: view.to_px(p)[0]})
    return counter, hits


class _Nothing:
    def detect(self, image, time_s):
        return Detections.empty()


@pytest.mark.parametrize("view_name", ["topdown", "oblique"])
def test_a_vehicle_over_the_overlap_of_two_lines_counts_once_on_the_line_it_is_on(single, view_name):
    """On every approach: a vehicle crossing 0.1 m either side of the shared end (inside one line as drawn,
    inside the other's lengthened end) counts once, on the line whose lanes it is in, with the other line beside
    it; an anchor that falls back over the line and crosses again adds nothing; in the middle of its lanes a
    vehicle crosses its own line only."""
    scene, views, cameras, _ = single
    view, camera = views[view_name], cameras[view_name]
    for through, left, shared in _pairs(scene):
        margin_m = END_MARGIN * min(np.linalg.norm(np.subtract(*sl.ends_m)) for sl in (through, left))
        assert margin_m > 0.1  # so 0.1 m from the shared end is inside both lengthened lines
        for own, other in ((through, left), (left, through)):
            for wobble in (False, True):
                counter, hits = _counter_hits(camera, view, _path_m(own, shared, 0.1, wobble))
                assert [(h[0].name, h[1]) for h in hits] == [(own.name, 1)], (view_name, own.name, wobble)
                assert [b.name for b in hits[0].beside] == [other.name]
                assert counter.beside[own.name] == {own.name, other.name}
            width_m = float(np.linalg.norm(np.subtract(*own.ends_m)))
            _, hits = _counter_hits(camera, view, _path_m(own, shared, width_m / 2))
            assert [(h.line.name, h.beside) for h in hits] == [(own.name, ())]


@pytest.mark.parametrize("view_name", ["topdown", "oblique"])
def test_a_track_counted_on_one_line_is_not_counted_on_the_line_beside_it_later(single, view_name):
    """A car crosses the through line 0.25 m from the shared end (clear of the left-turn line's lengthened end),
    its anchor falls back over the line and drifts 0.35 m towards the left-turn lane, and crosses again, now
    inside the left-turn line: still one vehicle, counted once."""
    scene, views, cameras, _ = single
    view, camera = views[view_name], cameras[view_name]
    for through, left, shared in _pairs(scene):
        assert END_MARGIN * np.linalg.norm(np.subtract(*left.ends_m)) < 0.25
        first = _path_m(through, shared, 0.25)
        again = _path_m(through, shared, -0.1)  # 0.1 m on the left-turn lane's side of the shared end
        heading = np.array(through.heading_m, float)
        ahead = [(p - shared) @ heading for p in first]
        path = [p for p, a in zip(first, ahead, strict=True) if a < 1.5] + [p for p, a in zip(again, ahead, strict=True) if a > -1.0]
        _, hits = _counter_hits(camera, view, path)
        assert [(h[0].name, h[1]) for h in hits] == [(through.name, 1)], (view_name, through.name)


def _drive_through_pipeline(single, offset_m: float, state: str):
    """The east approach's through line, a car (4.5 x 1.8 m) crossing 0.1 m from the end it shares with the
    left-turn line, through the whole pipeline on the top-down camera file, under a fixed signal state."""
    scene, views, cameras, _ = single
    view, camera = views["topdown"], cameras["topdown"]
    through, _left, shared = next(p for p in _pairs(scene) if p[0].approach == "east")
    path = _path_m(through, shared, offset_m)
    heading = np.array(through.heading_m, float)
    across = np.array([-heading[1], heading[0]])

    class Boxes:  # the car's box where the path puts it: a detector that sees exactly what it is told
        def detect(self, image, time_s):
            k = round(time_s * FPS)
            if k >= len(path):
                return Detections.empty()
            corners = view.to_px([path[k] + heading * a * 2.25 + across * b * 0.9
                                  for a in (-1, 1) for b in (-1, 1)])
            centre = view.to_px(path[k])[0]
            half = (corners.max(axis=0) - corners.min(axis=0)) / 2
            return Detections(np.array([[*(centre - half), *(centre + half)]], np.float32), np.ones(1, np.float32))

    pipe = Pipeline(camera, Boxes())
    image = np.zeros((800, 800, 3), np.uint8)
    results = [pipe.process(image, k / FPS, signal_state=state) for k in range(len(path) + 2)]
    counts = {a: n for _, a, n in pipe.closed_counts(final=True)}
    return ([c for r in results for c in r.crossings], [v for r in results for v in r.violations], counts)


def _state(n_links: int, green: tuple[int, ...] = ()) -> str:
    return "".join("G" if i in green else "r" for i in range(n_links))


def test_a_vehicle_on_two_lines_is_counted_once_and_called_only_when_both_are_red(single):
    """Through line red, left-turn line green, a car crossing on the lane boundary (0.1 m inside the through
    lanes): nobody can say it is in the red lane, so no red light; one crossing, one vehicle counted for east.
    All red: one crossing, one red-light violation, on the through line."""
    scene, _, _, n_links = single
    left = next(sl for sl in scene.stop_lines if sl.name == "e-left")
    crossings, violations, counts = _drive_through_pipeline(single, 0.1, _state(n_links, green=left.links))
    assert [(c.stop_line, c.signal_state) for c in crossings] == [("e", "rrr")]
    assert violations == [] and counts["east"] == 1
    crossings, violations, counts = _drive_through_pipeline(single, 0.1, _state(n_links))
    assert [c.stop_line for c in crossings] == ["e"] and counts["east"] == 1
    assert [(v.kind, v.stop_line) for v in violations] == [("red_light", "e")]
    # in the middle of the through lanes, the left turn's green is no excuse
    width_m = float(np.linalg.norm(np.subtract(*next(sl for sl in scene.stop_lines if sl.name == "e").ends_m)))
    crossings, violations, counts = _drive_through_pipeline(single, width_m / 2, _state(n_links, green=left.links))
    assert [c.stop_line for c in crossings] == ["e"] and [v.kind for v in violations] == ["red_light"]
