"""Which detectors a camera's zones and stop lines stand for in the loop (`CameraObservationSource`).

A city numbers its detectors its own way: here channel 1 is a south-lane stop bar and the north approach has two
lanes (channels 3 and 5). The synthetic scene goes through the real pipeline once (20 s at 10 frames/s); its
results feed a source per test.
"""

from __future__ import annotations

import math

import pytest
from vision_scenes import small_pipeline, small_scene

from signalwise.core.types import Detector, Intersection, Movement, ObservationNeed, Phase, Timing
from signalwise.vision.camera import CameraFileError, camera_from_dict
from signalwise.vision.source import CameraObservationSource

APPROACH_OF_LANE = {"n_0": "north", "n_1": "north", "e_0": "east", "s_0": "south", "s_1": "south", "w_0": "west"}
DETECTORS = (Detector("d_s0", "s_0", "stopbar", 1.0, 1), Detector("d_e0", "e_0", "stopbar", 1.0, 2),
             Detector("d_n0", "n_0", "stopbar", 1.0, 3), Detector("d_w0", "w_0", "stopbar", 1.0, 4),
             Detector("d_n1", "n_1", "stopbar", 1.0, 5), Detector("d_s1", "s_1", "stopbar", 1.0, 6))
APPROACH_OF_DETECTOR = {d.id: APPROACH_OF_LANE[d.lane] for d in DETECTORS}


def _b1() -> Intersection:
    movements = tuple(Movement(i, lane, "out") for i, lane in enumerate(["n_0", "e_0", "s_0", "w_0", "n_1", "s_1"]))
    phases = (Phase(0, "GrGrGG", movements), Phase(1, "rGrGrr", movements))
    timing = Timing(3.0, 2.0, (5.0, 5.0), (60.0, 60.0), 7.0, 10.0, 30.0, 150.0)
    return Intersection("B1", phases, 6, movements, DETECTORS, (), timing)


def _camera_dict(**zone_channels) -> dict:
    """The scene's camera file, its zones' channels as given (none: the file gives none)."""
    cfg = small_scene(seed=3).camera_config()
    for z in cfg["zones"]:
        z.pop("channel", None)
        if z["name"] in zone_channels:
            z["channel"] = zone_channels[z["name"]]
    return cfg


@pytest.fixture(scope="module")
def frames():
    """The real pipeline over 20 s of the scene: crossings on the north and south approaches, zones on and off."""
    scene = small_scene(seed=3, arrivals_per_s=0.4)
    camera = camera_from_dict(_camera_dict())
    pipe = small_pipeline(scene, camera)
    return camera, [pipe.process(img, t, signal_state=state) for img, t, _truth, state in scene.frames(20.0)]


def _feed(frames, need=None):
    """A source fed every frame, observed once a second: (zone states by approach, observation) per second."""
    camera, results = frames
    inter = _b1()
    source = CameraObservationSource([inter], APPROACH_OF_LANE, [camera])
    need = need or ObservationNeed(tuple(APPROACH_OF_LANE), detector_idle_ids=tuple(d.id for d in DETECTORS),
                                   detector_count_ids=tuple(d.id for d in DETECTORS))
    seen = []
    for k, r in enumerate(results):
        source.update(camera.camera_id, r)
        if k % 10 == 9:
            seen.append(({z.approach: z for z in r.zones}, source.observe(inter, r.time_s, need)))
    return source, seen


def test_a_zone_idles_the_detectors_of_its_own_approach_not_whichever_has_its_channel(frames):
    _source, seen = _feed(frames)
    differed = 0
    for zones, obs in seen:
        for det_id, idle in obs.detector_idle_s.items():
            zone = zones[APPROACH_OF_DETECTOR[det_id]]
            assert idle == zone.idle_s, (obs.time_s, det_id, idle, zone)  # its own approach's zone, no other
        north, south = zones["north"].idle_s, zones["south"].idle_s
        if math.isfinite(south) and north != south:
            differed += 1
            assert obs.detector_idle_s["d_s0"] == south  # channel 1: the file's first zone is north's
    assert differed >= 3
    # both lanes of a two-lane approach are covered by its zone
    assert any("d_n1" in obs.detector_idle_s for _z, obs in seen)


def test_an_approachs_crossings_are_shared_over_its_lanes_stop_bars(frames):
    _camera, results = frames
    _source, seen = _feed(frames)
    crossed = {a: sum(1 for r in results for c in r.crossings if c.approach == a) for a in ("north", "south")}
    assert crossed["north"] >= 4 and crossed["south"] >= 3, crossed
    total = {}
    for _zones, obs in seen:
        for det_id, n in obs.detector_counts_veh.items():
            total[det_id] = total.get(det_id, 0) + n
    for approach, (a, b) in (("north", ("d_n0", "d_n1")), ("south", ("d_s0", "d_s1"))):
        assert total[a] + total[b] == crossed[approach]  # nothing lost, nothing counted twice
        assert abs(total[a] - total[b]) <= 1, total  # each lane's detector counts its share, not one all of them


def test_zone_events_are_logged_under_the_channels_of_the_detectors_they_stand_for(frames):
    camera, results = frames
    source, _seen = _feed(frames)
    events = source.drain_events()
    assert events
    raw = [e for r in results for e in r.events]
    zone_of = {ch: name for name, ch in camera.zone_channels().items()}
    north_on = [e.time_s for e in raw if zone_of[e.parameter] == "n-queue" and e.event_code == 82]
    assert north_on
    by_channel = {}
    for e in events:
        by_channel.setdefault(e.parameter, []).append((e.time_s, e.event_code))
    assert set(by_channel) <= {d.channel for d in DETECTORS}
    assert [t for t, code in by_channel[3] if code == 82] == north_on  # both north lanes' detectors
    assert [t for t, code in by_channel[5] if code == 82] == north_on
    for codes in by_channel.values():  # on and off alternate per detector
        assert all(a[1] != b[1] for a, b in zip(codes, codes[1:], strict=False))


def test_a_zone_on_an_approach_without_detectors_gets_a_channel_no_detector_has(frames):
    camera, results = frames
    inter = _b1()
    bare = Intersection(inter.id, inter.phases, inter.n_links, inter.movements,
                        tuple(d for d in DETECTORS if APPROACH_OF_DETECTOR[d.id] != "north"), (), inter.timing)
    source = CameraObservationSource([bare], APPROACH_OF_LANE, [camera])
    for r in results:
        source.update(camera.camera_id, r)
    zone_of = {ch: name for name, ch in camera.zone_channels().items()}
    raw_on = {}
    for e in (e for r in results for e in r.events if e.event_code == 82):
        raw_on.setdefault(zone_of[e.parameter], []).append(e.time_s)
    logged_on = {}
    for e in (e for e in source.drain_events() if e.event_code == 82):
        logged_on.setdefault(e.parameter, []).append(e.time_s)
    assert raw_on["n-queue"] and raw_on["s-queue"]
    # n-queue's own channel (1) is d_s0's and 2 is d_e0's: it is logged under 3, the next one no detector has
    assert logged_on[3] == raw_on["n-queue"]
    assert logged_on[1] == logged_on[6] == raw_on["s-queue"]  # the south zone under its two detectors


@pytest.mark.parametrize(("where", "channel", "needle"), [
    ("zone", 1, "zones[0] (n-queue): channel 1 is detector d_s0 on the south approach of B1, not on its approach "
                "'north' (that approach's detectors: d_n0 channel 3, d_n1 channel 5)"),
    ("zone", 9, "zones[0] (n-queue): channel 9 is no detector of B1 (its detectors' channels: 1, 2, 3, 4, 5, 6)"),
    ("stop line", 2, "stop_lines[0] (n): channel 2 is detector d_e0 on the east approach of B1, not on its "
                     "approach 'north'"),
    ("stop line", 12, "stop_lines[0] (n): channel 12 is no detector of B1"),
])
def test_a_channel_that_names_no_detector_of_the_zones_approach_is_refused_by_name(where, channel, needle):
    cfg = _camera_dict()
    if where == "zone":
        cfg["zones"][0]["channel"] = channel
    else:
        cfg["stop_lines"][0]["channel"] = channel
    with pytest.raises(CameraFileError) as refused:
        CameraObservationSource([_b1()], APPROACH_OF_LANE, [camera_from_dict(cfg)])
    assert str(refused.value).startswith("camera cam-1: ") and needle in str(refused.value)


def test_a_channel_on_the_zones_approach_is_that_detector_only(frames):
    """n-queue given channel 5 stands for d_n1 alone (its idle time, its 82/81), not d_n0 beside it."""
    camera = camera_from_dict(_camera_dict(**{"n-queue": 5}))
    inter = _b1()
    source = CameraObservationSource([inter], APPROACH_OF_LANE, [camera])
    assert source.cameras == ["cam-1"]
    _camera, results = frames
    need = ObservationNeed(tuple(APPROACH_OF_LANE), detector_idle_ids=tuple(d.id for d in DETECTORS))
    idle_n0 = set()
    for r in results:
        source.update(camera.camera_id, r)
        idle_n0 |= set(source.observe(inter, r.time_s, need).detector_idle_s) & {"d_n0"}
    assert not idle_n0  # d_n0 is no zone's: the zone named d_n1
    assert {e.parameter for e in source.drain_events() if e.parameter in (3, 5)} == {5}


def test_an_approach_no_intersection_has_is_refused_in_the_camera_file():
    cfg = _camera_dict()
    cfg["zones"][0]["approach"] = "northeast"
    with pytest.raises(CameraFileError) as refused:
        camera_from_dict(cfg, "cam.yaml")
    assert str(refused.value) == ("cam.yaml: zones[0] (n-queue): approach 'northeast' is not an approach of any "
                                  "intersection (approaches: north, east, south, west, where its traffic comes from)")
