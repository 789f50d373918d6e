"""A camera as the loop's only source on the built-in `single` scenario: frames drawn from SUMO's vehicles each
step go through the vision pipeline into a `CameraObservationSource`; at DARK_AT the camera goes dark. Its
data go stale and the shield falls back to its Webster plan, saying why; the audit finds nothing."""

from __future__ import annotations

import math
import zlib

import cv2
import numpy as np
import pytest

from signalwise.analytics.safety_audit import audit
from signalwise.core.types import ObservationNeed
from signalwise.runtime.config import RunConfig
from signalwise.runtime.loop import (
    LoopStepper,
    compass_approach,
    describe_intersections,
    open_field,
    resolve_scenario,
    sumo_options,
)

END_S, DARK_AT, MAX_AGE_S = 420.0, 240.0, 10.0
SIZE, PX_PER_M = 480, 3.0


class TopDown:
    """SUMO's vehicles drawn from above around one junction (front bumper, angle, length, width)."""

    def __init__(self, api, center):
        self.api, (self.x0, self.y0) = api, center

    def px(self, x, y):
        return SIZE / 2 + (x - self.x0) * PX_PER_M, SIZE / 2 - (y - self.y0) * PX_PER_M

    def render(self):
        img = np.full((SIZE, SIZE, 3), 90, np.uint8)
        v = self.api.vehicle
        for vid in v.getIDList():
            (fx, fy), a = v.getPosition(vid), math.radians(v.getAngle(vid))
            hx, hy = math.sin(a), math.cos(a)
            length, half = v.getLength(vid), v.getWidth(vid) / 2
            bx, by = fx - hx * length, fy - hy * length
            nx, ny = hy * half, -hx * half
            pts = [self.px(fx + nx, fy + ny), self.px(fx - nx, fy - ny), self.px(bx - nx, by - ny),
                   self.px(bx + nx, by + ny)]
            color = tuple(int(c) for c in (zlib.crc32(vid.encode()) % 150 + 100, 30, 220))
            cv2.fillConvexPoly(img, np.round(np.array(pts)).astype(np.int32), color)
        return img

    def camera(self, inter, approach_of_lane, backend):
        zones = []
        for approach in sorted({approach_of_lane[lane] for lane in inter.in_lanes}):
            pts = []
            for lane in inter.in_lanes:
                if approach_of_lane[lane] != approach:
                    continue
                shape = np.array(backend.lane_shapes([lane])[lane])
                end, prev = shape[-1], shape[-2]
                d = (end - prev) / np.linalg.norm(end - prev)
                pts += [end, end - d * 40.0]
            pts = np.array([self.px(*p) for p in pts])
            (x0, y0), (x1, y1) = pts.min(axis=0) - 6, pts.max(axis=0) + 6
            quad = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
            zones.append({"name": f"{approach}-zone", "approach": approach,
                          "px": [[float(np.clip(x, 0, SIZE)), float(np.clip(y, 0, SIZE))] for x, y in quad]})
        corners = [(self.x0 + dx, self.y0 + dy) for dx, dy in ((-60, -60), (60, -60), (60, 60), (-60, 60))]
        calibration = [{"px": list(self.px(*c)), "m": list(c)} for c in corners]
        return {"camera_id": "cam-C", "device_id": inter.id, "calibration": calibration, "stop_lines": [],
                "zones": zones, "anchor": "center"}


@pytest.fixture(scope="module")
def camera_run():
    from signalwise.vision.blobs import BlobDetector
    from signalwise.vision.camera import camera_from_dict
    from signalwise.vision.pipeline import Pipeline
    from signalwise.vision.source import CameraObservationSource

    cfg = RunConfig(scenario="single", controller="max-pressure", seed=1, duration_s=END_S, emissions=False,
                    shield={"max_observation_age_s": MAX_AGE_S})
    scenario = resolve_scenario(cfg)
    fld = open_field(cfg, scenario, sumo_options(cfg, scenario, end_s=scenario.begin_s + END_S))
    try:
        (inter,) = fld.intersections
        backend = fld.backend
        approach_of_lane = {lane: compass_approach(shape) for lane, shape in backend.lane_shapes(inter.in_lanes).items()}
        view = TopDown(backend.api, backend.api.junction.getPosition(inter.id))
        camera = camera_from_dict(view.camera(inter, approach_of_lane, backend))
        source = CameraObservationSource([inter], approach_of_lane, [camera], emergency_source=backend)
        pipe = Pipeline(camera, BlobDetector(min_area_px=25, close_px=3))
        stepper = LoopStepper(cfg, fld, scenario.begin_s + END_S, source=source)
        seen_queue = 0
        while not stepper.done:
            t = stepper.step()
            if t - scenario.begin_s < DARK_AT:
                source.update("cam-C", pipe.process(view.render(), t))
                obs = source.observe(inter, t, ObservationNeed(inter.in_lanes, "counts"))
                seen_queue = max(seen_queue, sum(s.queue_veh for s in obs.lanes.values()))
        events = source.drain_events()
    finally:
        fld.backend.close()
    return cfg, stepper, scenario.begin_s, seen_queue, events


@pytest.mark.slow
def test_a_dark_camera_goes_stale_and_the_shield_falls_back_saying_why(camera_run):
    cfg, stepper, begin_s, seen_queue, events = camera_run
    assert seen_queue >= 3  # while it could see, the camera gave the controller queues
    assert any(e.event_code == 82 for e in events) and any(e.event_code == 81 for e in events)
    (shield,) = stepper.shields.values()
    fallbacks = [iv for iv in shield.interventions if iv.rule == "fallback"]
    ends = [iv for iv in shield.interventions if iv.rule == "fallback_end"]
    dark = begin_s + DARK_AT
    late = [iv for iv in fallbacks if iv.time_s >= dark]
    assert late, [(iv.time_s, iv.detail) for iv in fallbacks]
    first = late[0]
    lag = stepper.controllers[shield.inter.id].period_s + shield.inter.timing.clearance_s() + cfg.step_length_s
    assert dark + MAX_AGE_S < first.time_s <= dark + MAX_AGE_S + lag, first
    assert "camera:cam-C stale" in first.detail, first.detail
    assert not [iv for iv in ends if iv.time_s > first.time_s]  # dark to the end: no recovery
    # before the camera went dark, the controller (not the plan) ran after the first frames
    early = [iv for iv in fallbacks if iv.time_s < dark]
    assert all(iv.time_s < begin_s + 5 for iv in early), [(iv.time_s, iv.detail) for iv in early]
    assert shield.fallback_fraction < 0.6


@pytest.mark.slow
def test_the_independent_audit_finds_nothing(camera_run):
    cfg, stepper, _begin, _q, _e = camera_run
    report = audit(stepper.events(), describe_intersections(stepper.intersections), stepper.signal_states,
                   cfg.step_length_s, end_s=stepper.t)
    assert report.ok, report.violations[:3]
