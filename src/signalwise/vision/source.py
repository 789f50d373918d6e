"""Camera zones as an observation source for the runtime loop (`runtime.loop.ObservationSource`).

Each camera's pipeline hands its `FrameResult`s to `update`; the loop asks
`observe` like it asks SUMO or a detector feed. What a controller gets, per
intersection, from the cameras that watch it:

- `lanes`: for each incoming lane on an approach a camera zone covers, a
  `LaneState` from the approach's zones: vehicles inside and those standing
  (speed < 1 m/s) shared evenly over the approach's lanes (a camera zone is
  an approach, not a lane), the zone's occupancy over its window, the mean
  speed of the vehicles inside; `wait_s` 0 (not measured). Lanes no zone
  covers are left out, as a detector feed leaves them out.
- `detector_idle_s`: a detector whose channel is a zone's channel gets the
  zone's idle time (0 while a vehicle is inside).
- `detector_counts_veh`: stop-line crossings since that detector was last
  asked: a stop line's own channel, else shared over the stop-bar detectors
  of its approach's lanes.
- `sources`: one `SourceHealth` per camera, `camera:<camera_id>`, aged from
  the newest frame: a camera that goes dark goes stale and the shield falls
  back to its plan; `mark_down` (a stream that dropped) makes it unhealthy at
  once.

Frame times must be on the loop's clock. Thread-safe: pipelines call
`update` from their threads while the loop calls `observe`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping

from ..core.types import (
    EmergencyApproach,
    Intersection,
    LaneState,
    Observation,
    ObservationNeed,
    SignalEvent,
    SourceHealth,
)
from .camera import CameraConfig, CameraFileError

PREFIX = "camera:"


class _CameraState:
    def __init__(self, camera: CameraConfig):
        self.camera = camera
        self.newest_s: float | None = None
        self.zones: dict[str, object] = {}  # zone name -> ZoneState
        self.down: str | None = None


class CameraObservationSource:
    def __init__(self, intersections: Iterable[Intersection], approach_of_lane: Mapping[str, str],
                 cameras: Iterable[CameraConfig], *, emergency_source=None):
        self._inters = {i.id: i for i in intersections}
        self._lock = threading.Lock()
        self._cams: dict[str, _CameraState] = {}
        self._by_device: dict[str, list[str]] = {}
        self._lanes: dict[tuple[str, str], list[str]] = {}  # (device, approach) -> incoming lanes
        for inter in self._inters.values():
            for lane in inter.in_lanes:
                a = approach_of_lane.get(lane)
                if a:
                    self._lanes.setdefault((inter.id, a), []).append(lane)
        for cam in cameras:
            if cam.camera_id in self._cams:
                raise CameraFileError(f"camera {cam.camera_id!r} is given twice")
            inter = self._inters.get(cam.device_id)
            if inter is None:
                raise CameraFileError(f"camera {cam.camera_id}: device_id {cam.device_id!r} is not a signal of this "
                                      f"run (signals: {', '.join(sorted(self._inters))})")
            have = {a for (dev, a) in self._lanes if dev == cam.device_id}
            cam.check_intersection(have, inter.n_links, f"camera {cam.camera_id}")
            self._cams[cam.camera_id] = _CameraState(cam)
            self._by_device.setdefault(cam.device_id, []).append(cam.camera_id)
        self._counts: dict[tuple[str, str], int] = {}  # (device, detector id) -> crossings since last asked
        self._events: list[SignalEvent] = []
        self._first_observe_s: float | None = None
        self._emergency = emergency_source

    @property
    def cameras(self) -> list[str]:
        return list(self._cams)

    # -- the pipelines' side ------------------------------------------------------------------------
    def update(self, camera_id: str, result) -> None:
        """A processed frame of `camera_id` (a `FrameResult`, time on the loop's clock)."""
        with self._lock:
            st = self._cams[camera_id]
            st.newest_s = result.time_s if st.newest_s is None else max(st.newest_s, result.time_s)
            st.down = None
            st.zones = {z.name: z for z in result.zones}
            self._events.extend(result.events)
            inter = self._inters[st.camera.device_id]
            for c in result.crossings:
                for det_id in self._count_targets(st.camera, inter, c.stop_line, c.approach):
                    key = (inter.id, det_id)
                    self._counts[key] = self._counts.get(key, 0) + 1

    def mark_down(self, camera_id: str, reason: str) -> None:
        """The camera's stream is down: its data are unhealthy until the next frame."""
        with self._lock:
            self._cams[camera_id].down = reason

    def _count_targets(self, cam: CameraConfig, inter: Intersection, line_name: str, approach: str) -> list[str]:
        line = next((s for s in cam.stop_lines if s.name == line_name), None)
        if line is not None and line.channel is not None:
            return [d.id for d in inter.detectors if d.channel == line.channel]
        lanes = set(self._lanes.get((inter.id, approach), ()))
        bars = [d.id for d in inter.detectors if d.kind == "stopbar" and d.lane in lanes]
        return bars[:1] if bars else []  # one count per crossing: on the approach's first stop-bar detector

    # -- the loop's side ----------------------------------------------------------------------------
    def observe(self, inter: Intersection, time_s: float, need: ObservationNeed) -> Observation:
        with self._lock:
            if self._first_observe_s is None:
                self._first_observe_s = time_s
            cams = [self._cams[c] for c in self._by_device.get(inter.id, ())]
            lanes = self._lane_states(inter, cams, set(need.lane_ids))
            idle: dict[str, float] = {}
            channel_idle = {z.channel: z.idle_s for st in cams for z in st.zones.values()}
            for det in inter.detectors:
                if det.id in need.detector_idle_ids and det.channel in channel_idle \
                        and math.isfinite(channel_idle[det.channel]):
                    idle[det.id] = channel_idle[det.channel]
            counts = {d: self._counts.pop((inter.id, d), 0) for d in need.detector_count_ids}
            asked = bool(need.lane_ids or need.detector_idle_ids or need.detector_count_ids)
            sources = tuple(self._health(st, time_s) for st in cams) if asked else ()
            if asked and not cams:
                sources = (SourceHealth(PREFIX + "none", 0.0, False, f"no camera watches {inter.id}"),)
        return Observation(time_s, inter.id, lanes, idle, detector_counts_veh=counts, sources=sources)

    def _lane_states(self, inter: Intersection, cams: list[_CameraState], wanted: set[str]) -> dict[str, LaneState]:
        per_approach: dict[str, list] = {}
        for st in cams:
            for z in st.zones.values():
                per_approach.setdefault(z.approach, []).append(z)
        out = {}
        for approach, zones in per_approach.items():
            lanes = [lane for lane in self._lanes.get((inter.id, approach), ()) if lane in wanted]
            all_lanes = self._lanes.get((inter.id, approach), [])
            if not lanes:
                continue
            n = len(all_lanes)
            vehicles = sum(z.vehicles for z in zones)
            standing = sum(z.standing for z in zones)
            occupancy = max(z.occupancy for z in zones)
            moving = [z.mean_speed_mps for z in zones if z.vehicles]
            speed = sum(moving) / len(moving) if moving else 0.0
            for k, lane in enumerate(all_lanes):
                if lane not in wanted:
                    continue
                q = standing // n + (1 if k < standing % n else 0)
                c = vehicles // n + (1 if k < vehicles % n else 0)
                out[lane] = LaneState(queue_veh=q, count_veh=max(c, q), occupancy=occupancy, mean_speed_mps=speed,
                                      wait_s=0.0)
        return out

    def _health(self, st: _CameraState, time_s: float) -> SourceHealth:
        name = PREFIX + st.camera.camera_id
        if st.newest_s is None:
            age = max(0.0, time_s - self._first_observe_s)
            return SourceHealth(name, age, False, "no frame yet from this camera")
        age = max(0.0, time_s - st.newest_s)
        if st.down is not None:
            return SourceHealth(name, age, False, st.down)
        return SourceHealth(name, age, True)

    def camera_age_s(self, camera_id: str, time_s: float) -> float | None:
        st = self._cams[camera_id]
        return None if st.newest_s is None else max(0.0, time_s - st.newest_s)

    # -- the rest of the source protocol --------------------------------------------------------------
    @property
    def emergency_active(self) -> bool:
        return bool(self._emergency is not None and self._emergency.emergency_active)

    def emergency_approaches(self, intersections: Mapping[str, Intersection],
                             within_m: float) -> dict[str, list[EmergencyApproach]]:
        if self._emergency is None:
            return {}  # a camera zone does not know an emergency vehicle; preemption needs its own input
        return self._emergency.emergency_approaches(intersections, within_m)

    def drain_events(self) -> list[SignalEvent]:
        """The zones' detector on/off events (82 / 81) since the last drain, in time order."""
        with self._lock:
            events, self._events = self._events, []
        return sorted(events)
