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
- `detector_idle_s`: a zone stands for detectors of its own approach: the
  detectors with its `channel` (which must be on the zone's approach), or,
  without one, the approach's stop-bar detectors that no other zone of the
  camera names. Each gets the zone's idle time (0 while a vehicle is inside;
  the least of its zones' when several zones stand for it).
- `detector_counts_veh`: stop-line crossings since that detector was last
  asked (not the latest interval's count, as a detector feed's is), only for
  the detectors a stop line counts for (a detector none counts for is left
  out, not 0): a stop line's own `channel` (a detector on its approach), else shared
  over the stop-bar detectors of its approach's lanes (those no other stop
  line of the camera names), one crossing to each in turn, so each lane's
  detector counts about its lane's share and Webster's busiest-lane flow ratio
  is per lane, not the approach's total. Counts are whole vehicles, so a
  detector's count in one interval is the even share rounded up or down.
- `drain_events`: the zones' 82/81 under the channels of the detectors they
  stand for (a detector is on while any of its zones is); a zone that stands
  for no detector (its approach has no stop-bar detector) is a detector of its
  own, logged under its channel from the camera file's order
  (`CameraConfig.zone_channels`) or, when a detector of the intersection has
  that one, the next one none has: the log never puts it on a real detector.
- `sources`: one `SourceHealth` per camera, `camera:<camera_id>`, aged from
  the newest frame: a camera that goes dark goes stale and the shield falls
  back to its plan; `mark_down` (a stream that dropped) makes it unhealthy at
  once, until its next frame; `update(..., down=reason)` keeps it unhealthy
  while frames come (a blank or frozen picture).

A channel that names no detector of the intersection, or one on another
approach, is refused at construction (`CameraFileError` naming the camera,
the zone or stop line, the channel and the approaches).

Frame times must be on the loop's clock. Thread-safe: pipelines call
`update` from their threads while the loop calls `observe`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping

from ..core.types import (
    Detector,
    EmergencyApproach,
    EventCode,
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
    def __init__(self, camera: CameraConfig, wiring: _Wiring):
        self.camera = camera
        self.wiring = wiring
        self.newest_s: float | None = None
        self.zones: dict[str, object] = {}  # zone name -> ZoneState
        self.down: str | None = None


class _Wiring:
    """Which detectors of its intersection a camera's zones and stop lines stand for (see the module docstring)."""

    def __init__(self, cam: CameraConfig, inter: Intersection, approach_of_lane: Mapping[str, str], where: str):
        self.zone_detectors: dict[str, tuple[Detector, ...]] = {}  # zone name -> detectors it stands for
        self.line_detectors: dict[str, tuple[str, ...]] = {}  # stop line with a channel -> its detector ids
        self.shared_bars: dict[str, tuple[str, ...]] = {}  # approach -> stop bars its other lines' counts share
        pipeline_channel = cam.zone_channels()  # what the camera's pipeline stamps each zone's 82/81 with
        self._turn: dict[str, int] = {}  # approach -> crossings shared so far (whose detector is next)
        approach = {d.id: approach_of_lane.get(d.lane) for d in inter.detectors}
        bars_of = {}
        for d in inter.detectors:
            if d.kind == "stopbar" and approach[d.id]:
                bars_of.setdefault(approach[d.id], []).append(d)

        def named(key: str, i: int, item) -> tuple[Detector, ...]:
            dets = tuple(d for d in inter.detectors if d.channel == item.channel)
            if not dets:
                have = sorted({d.channel for d in inter.detectors})
                raise CameraFileError(
                    f"{where}: {key}[{i}] ({item.name}): channel {item.channel} is no detector of {inter.id} "
                    + (f"(its detectors' channels: {', '.join(map(str, have))})" if have else "(it has no detectors)"))
            away = next((d for d in dets if approach[d.id] != item.approach), None)
            if away is not None:
                on = f"the {approach[away.id]} approach" if approach[away.id] else f"lane {away.lane}"
                here = [f"{d.id} channel {d.channel}" for d in inter.detectors if approach[d.id] == item.approach]
                raise CameraFileError(
                    f"{where}: {key}[{i}] ({item.name}): channel {item.channel} is detector {away.id} on {on} of "
                    f"{inter.id}, not on its approach {item.approach!r} ("
                    + (f"that approach's detectors: {', '.join(here)})" if here else "that approach has no detector)"))
            return dets

        for i, z in enumerate(cam.zones):
            if z.channel is not None:
                self.zone_detectors[z.name] = named("zones", i, z)
        for z in cam.zones:
            if z.channel is None:  # the approach's stop bars no zone of this camera names
                taken = {d.id for other in cam.zones if other.approach == z.approach
                         for d in self.zone_detectors.get(other.name, ()) if other.channel is not None}
                self.zone_detectors[z.name] = tuple(d for d in bars_of.get(z.approach, ()) if d.id not in taken)
        used = {d.channel for d in inter.detectors}
        self.event_channels: dict[str, tuple[int, ...]] = {}  # zone name -> channels its 82/81 are logged under
        for z in cam.zones:
            dets = self.zone_detectors[z.name]
            if dets:
                self.event_channels[z.name] = tuple(sorted({d.channel for d in dets}))
                continue
            ch = pipeline_channel[z.name]  # a virtual detector of its own: a channel no detector has
            while ch in used:
                ch += 1
            used.add(ch)
            self.event_channels[z.name] = (ch,)
        for i, s in enumerate(cam.stop_lines):
            if s.channel is not None:
                self.line_detectors[s.name] = tuple(d.id for d in named("stop_lines", i, s))
        for a, bars in bars_of.items():
            taken = {d for s in cam.stop_lines if s.approach == a for d in self.line_detectors.get(s.name, ())}
            free = tuple(d.id for d in bars if d.id not in taken)
            self.shared_bars[a] = free or tuple(d.id for d in bars)
        #: the detectors its stop lines count for: only these get a count (0 when nothing crossed); a detector no
        #: stop line counts for is left out, as a feed leaves out one it has no count for
        self.counted: frozenset[str] = frozenset(
            d for s in cam.stop_lines
            for d in (self.line_detectors[s.name] if s.channel is not None else self.shared_bars.get(s.approach, ())))

    def count_targets(self, line_name: str, approach: str) -> tuple[str, ...]:
        """The detector(s) one crossing of this line counts on: the line's own, else the next of its approach's."""
        own = self.line_detectors.get(line_name)
        if own is not None:
            return own
        bars = self.shared_bars.get(approach, ())
        if not bars:
            return ()
        k = self._turn.get(approach, 0)
        self._turn[approach] = k + 1
        return (bars[k % len(bars)],)


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
            where = f"camera {cam.camera_id}"
            cam.check_intersection(have, inter.n_links, where)
            self._cams[cam.camera_id] = _CameraState(cam, _Wiring(cam, inter, approach_of_lane, where))
            self._by_device.setdefault(cam.device_id, []).append(cam.camera_id)
        self._counts: dict[tuple[str, str], int] = {}  # (device, detector id) -> crossings since last asked
        self._events: list[SignalEvent] = []
        self._on: dict[tuple[str, int], set[tuple[str, str]]] = {}  # (device, channel) -> (camera, zone)s on
        self._first_observe_s: float | None = None
        self._emergency = emergency_source

    @property
    def cameras(self) -> list[str]:
        return list(self._cams)

    # -- the pipelines' side ------------------------------------------------------------------------
    def update(self, camera_id: str, result, down: str | None = None) -> None:
        """A processed frame of `camera_id` (a `FrameResult`, time on the loop's clock). `down`: the frame came
        but the camera is still unhealthy, this the reason (its picture is blank or frozen); None marks it up."""
        with self._lock:
            st = self._cams[camera_id]
            st.newest_s = result.time_s if st.newest_s is None else max(st.newest_s, result.time_s)
            st.down = down
            st.zones = {z.name: z for z in result.zones}
            zone_of = {z.channel: z.name for z in result.zones}  # the pipeline's channel -> its zone
            for e in result.events:
                self._detector_events(camera_id, st.wiring, zone_of.get(e.parameter), e)
            for c in result.crossings:
                for det_id in st.wiring.count_targets(c.stop_line, c.approach):
                    key = (st.camera.device_id, det_id)
                    self._counts[key] = self._counts.get(key, 0) + 1

    def _detector_events(self, camera_id: str, wiring: _Wiring, zone: str | None, e: SignalEvent) -> None:
        """A zone's 82/81 as its detectors' own, each on while any of its zones is."""
        if zone is None or e.event_code not in (EventCode.DETECTOR_ON, EventCode.DETECTOR_OFF):
            return
        for ch in wiring.event_channels.get(zone, ()):
            on = self._on.setdefault((e.device_id, ch), set())
            was_on = bool(on)
            if e.event_code == EventCode.DETECTOR_ON:
                on.add((camera_id, zone))
            else:
                on.discard((camera_id, zone))
            if was_on != bool(on):
                self._events.append(SignalEvent(e.time_s, e.device_id, e.event_code, ch))

    def close(self, time_s: float) -> list[SignalEvent]:
        """The cameras leave the run: their pending zone events and an 81 at `time_s` (not before the newest of
        them) for every detector channel their zones hold on, so no channel is left occupied in the log."""
        with self._lock:
            events, self._events = sorted(self._events), []
            at = max([time_s, *(e.time_s for e in events)])
            for (dev, ch), on in sorted(self._on.items()):
                if on:
                    events.append(SignalEvent(round(at, 1), dev, int(EventCode.DETECTOR_OFF), ch))
            self._on.clear()
        return events

    def mark_down(self, camera_id: str, reason: str) -> None:
        """The camera's stream is down: its data are unhealthy until the next frame."""
        with self._lock:
            self._cams[camera_id].down = reason

    # -- the loop's side ----------------------------------------------------------------------------
    def observe(self, inter: Intersection, time_s: float, need: ObservationNeed) -> Observation:
        with self._lock:
            if self._first_observe_s is None:
                self._first_observe_s = time_s
            cams = [self._cams[c] for c in self._by_device.get(inter.id, ())]
            lanes = self._lane_states(inter, cams, set(need.lane_ids))
            idle: dict[str, float] = {}
            wanted_idle = set(need.detector_idle_ids)
            for st in cams:
                for z in st.zones.values():
                    if not math.isfinite(z.idle_s):
                        continue  # no vehicle seen in it yet
                    for det in st.wiring.zone_detectors.get(z.name, ()):
                        if det.id in wanted_idle:
                            idle[det.id] = min(idle.get(det.id, math.inf), z.idle_s)
            counted = {d for st in cams for d in st.wiring.counted}
            counts = {d: self._counts.pop((inter.id, d), 0) for d in need.detector_count_ids if d in counted}
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
            # a camera zone does not know an emergency vehicle: a live run's preemption calls come from its
            # own input (runtime/live/preempt.py, REST or MQTT; docs/live-feeds.md#preemption-calls)
            return {}
        return self._emergency.emergency_approaches(intersections, within_m)

    def drain_events(self) -> list[SignalEvent]:
        """The zones' detector on/off events (82 / 81) since the last drain, in time order."""
        with self._lock:
            events, self._events = self._events, []
        return sorted(events)
