"""Camera streams as inputs of a live run: their clock and (with `--field none`) their
zones as a source of the loop beside the detector feed.

`LiveCameras` is what a live run gives the camera streams (`vision.manager.StreamManager(source=...)`):

- `frame_time_s(decoded_at)`: a frame's time on the run's clock. A frame is stamped when it was decoded
  (wall time, `time.monotonic()`), mapped as the detector feeds map a message's wall-clock `time`: from the
  moment the loop started (`rebase`), `speed` run seconds per wall second. Unpaced (`--speed max`), where
  the wall clock means nothing to the run, a frame gets the loop's time when it is processed; a frame decoded
  before the loop began is placed at its start. The pipeline
  keeps the stream's own seconds (so tracks and speeds are physical at any speed); `update` moves each
  result (its time, its zones' 82/81 events, its crossings) on to the run's clock before the loop sees it.
- `add` / `remove`: a camera joins (or leaves) the run. One whose `device_id` is not a signal of the run, whose
  approaches the intersection does not have, whose stop-line links are not in its state string, or whose
  `camera_id` another stream of the run already has, is refused (`CameraFileError`, one line).
- `update` / `mark_down` / `end`: the pipelines' results, the streams that dropped, and those that ended. A
  camera whose stream drops, ends, or sends no frame for SILENT_AFTER_S wall seconds has its zones closed: every
  detector channel they held on gets an 81 at its newest frame's time (the last moment it saw the zone), so the
  log shows no occupancy after the picture stopped; its source is down (or stale), so the shield falls back.

With `--field none` (`feeds_loop`) each camera's zones are a `CameraObservationSource` of its own and
`FeedsAndCameras` is the loop's source; `drain_events` gives the hi-res log one 82/81 stream per detector channel
(merged over the cameras, and none for a detector the detector feed reports itself). With `--field sumo` the simulator is the field: a camera drives no
decision, its zones' 82/81 events are not logged (SUMO's detectors are) and its silence causes no fallback;
its crossings and speeding violations are still recorded (no red light is judged live: the run's states are not
the lights a camera films).

Thread-safe: stream workers call `update` and `frame_time_s` while the loop observes.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from ...core.types import (
    EmergencyApproach,
    EventCode,
    Intersection,
    LaneState,
    Observation,
    ObservationNeed,
    SignalEvent,
    SourceHealth,
)

#: frames stamped more than this ahead of the loop make the camera unhealthy (as detector messages do)
MAX_AHEAD_S = 5.0
#: a camera with no frame for this many wall seconds has stopped (a file that ended, a stream that dropped and has
#: not been marked down yet): its zones are closed. Wall seconds, as frames come at the stream's pace whatever the
#: run's speed; a pipeline slower than this per frame would close and reopen its zones between frames.
SILENT_AFTER_S = 5.0
#: a closing 81 is stamped no earlier than this many simulated seconds before the loop's time: noticed late (the
#: silence above, at --speed 4 twenty simulated seconds), at the newest frame's time it would fall behind events.csv's
#: hold for late events (`max_observation_age_s`, 10 s by default) and be written out of time order
CLOSE_BEHIND_S = 5.0


class LiveCameras:
    """The cameras of one live run (see the module's docstring)."""

    def __init__(self, intersections: Iterable[Intersection], approach_of_lane: Mapping[str, str], *,
                 feeds_loop: bool, speed: float | None, now: Callable[[], float],
                 max_ahead_s: float = MAX_AHEAD_S, silent_after_s: float = SILENT_AFTER_S):
        self._inters = {i.id: i for i in intersections}
        self._approach_of_lane = dict(approach_of_lane)
        self.feeds_loop = feeds_loop
        self.speed = speed
        self._now = now
        self.max_ahead_s = max_ahead_s
        self.silent_after_s = silent_after_s
        #: CLOSE_BEHIND_S, or less where the run holds late events for less (`LiveRuntime._feed_follows_shield`)
        self.close_behind_s = CLOSE_BEHIND_S
        self._lock = threading.Lock()
        self._sources: dict[str, object] = {}  # camera id -> its CameraObservationSource (feeds_loop only)
        self._devices: dict[str, str] = {}  # camera id -> device id
        self._newest_s: dict[str, float] = {}  # camera id -> time of its newest frame, on the run's clock
        self._updated_at: dict[str, float] = {}  # camera id -> when its newest frame came (monotonic)
        self._closed: set[str] = set()  # cameras whose zones were closed since their last frame
        self._origin: tuple[float, float] | None = None  # (monotonic, run seconds) the loop started at; None: not yet
        #: the detector feed beside the cameras (`--field none`): a detector it has taken a message for is its own
        #: in the hi-res log (`first_report_s`); the runtime sets it
        self.feed = None
        self._pending: list[tuple[SignalEvent, str]] = []  # zone events of removed cameras, for the next drain
        self._on: dict[tuple[str, int], set[str]] = {}  # (device, channel) -> the cameras whose zones hold it on
        self._logged_on: set[tuple[str, int]] = set()  # channels whose camera stream in the log is on
        self._last_logged: dict[tuple[str, int], float] = {}  # channel -> time of its latest camera event logged

    # -- the run's side ----------------------------------------------------------------------------
    def rebase(self, sim_s: float) -> None:
        """The loop starts (or, after a recovery rewound it, resumes) now at `sim_s`: frames are stamped from this
        moment on (as the pacer counts). Until the first call, a frame is placed at the run's current time (where
        the loop will start)."""
        self._origin = (time.monotonic(), sim_s)

    @property
    def cameras(self) -> list[str]:
        with self._lock:
            return sorted(self._devices)

    def cameras_of(self, device_id: str) -> list[str]:
        with self._lock:
            return sorted(c for c, d in self._devices.items() if d == device_id)

    def check(self, camera) -> None:
        """Refuse (CameraFileError) a camera that cannot be an input of this run; nothing is registered."""
        self._checked_source(camera)

    def _checked_source(self, camera):
        from ...vision.camera import CameraFileError
        from ...vision.source import CameraObservationSource

        with self._lock:
            if camera.camera_id in self._devices:
                raise CameraFileError(f"camera {camera.camera_id}: another stream of this run has this camera_id; "
                                      "give each camera its own")
        # the checks of the loop's camera source: device_id a signal of the run, approaches it has, links in range
        return CameraObservationSource(self._inters.values(), self._approach_of_lane, [camera])

    def add(self, camera) -> None:
        """`camera` (a `CameraConfig`) becomes an input of the run, or is refused (CameraFileError)."""
        source = self._checked_source(camera)
        with self._lock:
            if camera.camera_id in self._devices:  # added meanwhile by another request
                from ...vision.camera import CameraFileError

                raise CameraFileError(f"camera {camera.camera_id}: another stream of this run has this camera_id")
            self._devices[camera.camera_id] = camera.device_id
            if self.feeds_loop:
                self._sources[camera.camera_id] = source

    def remove(self, camera_id: str) -> None:
        """The camera's stream was deleted: it is no input of the run any more (its intersection goes on without
        it). Its zone events not yet drained go into the next drain, and every zone it held on is closed with an
        81 at the removal time on the run's clock (not before its newest frame), so no channel stays occupied."""
        with self._lock:
            self._devices.pop(camera_id, None)
            source = self._sources.pop(camera_id, None)
            newest = self._newest_s.pop(camera_id, None)
            self._updated_at.pop(camera_id, None)
            self._closed.discard(camera_id)
            if source is not None:
                at = self._now() if newest is None else max(self._now(), newest)
                self._pending.extend((e, camera_id) for e in source.close(at))

    # -- the streams' side -------------------------------------------------------------------------
    def frame_time_s(self, decoded_at: float) -> float:
        """A frame decoded at `decoded_at` (`time.monotonic()`) on the run's clock."""
        origin = self._origin
        if self.speed is None or origin is None:  # unpaced, or the loop has not begun: at its (start) time
            return self._now()
        mono0, sim0 = origin
        return sim0 + max(0.0, decoded_at - mono0) * self.speed  # decoded before the loop began: at its start

    def update(self, camera_id: str, result, run_time_s: float | None = None, down: str | None = None) -> None:
        """A processed frame (`FrameResult`), placed at `run_time_s` on the run's clock (None: its time is);
        `down`: the camera stays unhealthy for this reason (a blank or frozen picture), None: it is up."""
        if run_time_s is not None and run_time_s != result.time_s:
            result = _shifted(result, run_time_s - result.time_s)
        with self._lock:
            if camera_id not in self._devices:
                return  # removed while its last frame was processed
            newest = self._newest_s.get(camera_id)
            self._newest_s[camera_id] = result.time_s if newest is None else max(newest, result.time_s)
            self._updated_at[camera_id] = time.monotonic()
            self._closed.discard(camera_id)
            source = self._sources.get(camera_id)
            if source is not None:  # under the lock: a `remove` meanwhile closes what this frame opened
                source.update(camera_id, result, down=down)

    def mark_down(self, camera_id: str, reason: str) -> None:
        """The camera's stream dropped (reconnecting, failed): unhealthy until its next frame, its zones closed."""
        with self._lock:
            source = self._sources.get(camera_id)
            if source is not None:
                self._close_locked(camera_id)
        if source is not None:
            source.mark_down(camera_id, reason)

    def end(self, camera_id: str, reason: str) -> None:
        """The camera's stream ended (a file's last frame, a stream stopped): as a drop, it is unhealthy and its
        zones are closed; it stays an input of the run (a stream started again feeds it again)."""
        self.mark_down(camera_id, reason)

    def _close_locked(self, camera_id: str) -> None:
        """Close the zones the camera holds on: an 81 per detector channel at its newest frame's time (the loop's
        time when it sent none; at most `close_behind_s` before the loop's), its undrained events before them, for
        the next drain. Once per silence."""
        if camera_id in self._closed:
            return
        source = self._sources.get(camera_id)
        if source is None:
            return
        newest, now_s = self._newest_s.get(camera_id), self._now()
        at_s = now_s if newest is None else max(newest, now_s - self.close_behind_s)
        self._pending.extend((e, camera_id) for e in source.close(at_s))
        self._closed.add(camera_id)

    def _close_silent_locked(self) -> None:
        """Close the zones of the cameras that sent no frame for `silent_after_s` wall seconds (under the lock)."""
        now = time.monotonic()
        for camera_id, at in self._updated_at.items():
            if camera_id not in self._closed and now - at > self.silent_after_s:
                self._close_locked(camera_id)

    # -- the loop's side (feeds_loop) --------------------------------------------------------------
    def observations(self, inter: Intersection, time_s: float, need: ObservationNeed) -> list[Observation]:
        """One observation per camera of `inter`, each with its camera's health (a frame from more than
        `max_ahead_s` ahead of the loop makes it unhealthy)."""
        with self._lock:
            sources = [(c, s) for c, s in self._sources.items() if self._devices.get(c) == inter.id]
            newest = dict(self._newest_s)
        out = []
        for camera_id, source in sorted(sources, key=lambda cs: cs[0]):
            obs = source.observe(inter, time_s, need)
            ahead = newest.get(camera_id, time_s) - time_s
            if obs.sources and ahead > self.max_ahead_s:
                health = SourceHealth(obs.sources[0].source, 0.0, False,
                                      f"newest frame is {ahead:.0f} s ahead of the run's clock (frames are stamped "
                                      "when decoded; the run's clock is behind them)")
                obs = dataclasses.replace(obs, sources=(health,))
            out.append(obs)
        return out

    def drain_events(self) -> list[SignalEvent]:
        """The zones' detector on/off events (82 / 81, parameter = the zone's channel) since the last drain, one
        stream per detector channel:

        - across cameras a channel is on while any camera's zone for it is: 82 when the first goes on, 81 when
          the last goes off (two cameras on one approach do not interleave two streams);
        - a detector the feed has taken a message for is the feed's: the feed logs its 82/81 and the cameras'
          for it are left out from then on (one physical loop, one stream); a camera stream of it that was on is
          closed with an 81 where the feed's data begin (not before the camera's last event for it).
        """
        first_report = getattr(self.feed, "first_report_s", None)
        owned: dict[tuple[str, int], float | None] = {}

        def feed_since(key: tuple[str, int]) -> float | None:
            if key not in owned:
                owned[key] = first_report(*key) if first_report is not None else None
            return owned[key]

        out: list[SignalEvent] = []
        with self._lock:
            self._close_silent_locked()
            raw, self._pending = self._pending, []
            for camera_id, source in self._sources.items():
                raw.extend((e, camera_id) for e in source.drain_events())
            # by time only, and stable: a zone's closing 81 stamped with its camera's newest frame stays after the 82
            # that frame brought (sorted whole, the 81 came first and the channel stayed on)
            raw.sort(key=lambda pair: pair[0].time_s)
            for key in sorted(self._logged_on):
                since = feed_since(key)
                if since is not None:
                    self._log(out, key, max(since, self._last_logged.get(key, since)), False)
            for e, camera_id in raw:
                if e.event_code not in (EventCode.DETECTOR_ON, EventCode.DETECTOR_OFF):
                    continue
                key = (e.device_id, e.parameter)
                on = self._on.setdefault(key, set())
                if e.event_code == EventCode.DETECTOR_ON:
                    on.add(camera_id)
                else:
                    on.discard(camera_id)
                want = bool(on) and feed_since(key) is None
                if want != (key in self._logged_on):
                    self._log(out, key, e.time_s, want)
        out.sort()
        return out

    def _log(self, out: list[SignalEvent], key: tuple[str, int], time_s: float, on: bool) -> None:
        (self._logged_on.add if on else self._logged_on.discard)(key)
        self._last_logged[key] = time_s
        code = EventCode.DETECTOR_ON if on else EventCode.DETECTOR_OFF
        out.append(SignalEvent(round(time_s, 1), key[0], int(code), key[1]))


def _shifted(result, by_s: float):
    """The frame result moved `by_s` seconds: its time, its zones' events and its crossings."""
    return dataclasses.replace(
        result, time_s=result.time_s + by_s,
        events=tuple(dataclasses.replace(e, time_s=round(e.time_s + by_s, 1)) for e in result.events),
        crossings=tuple(dataclasses.replace(c, time_s=c.time_s + by_s) for c in result.crossings))


def _rank(obs: Observation) -> tuple[bool, float]:
    """Sound before faulty, then newer data before older."""
    return (not all(s.healthy for s in obs.sources), max((s.age_s for s in obs.sources), default=0.0))


class FeedsAndCameras:
    """The loop's source with `--field none`: the detector feed, and the cameras where they watch.

    An intersection no camera watches gets the feed's observation as it is. One a camera watches gets, per lane
    and per detector idle time, the value of the sound source with the newest data among the cameras and the
    feed (a source whose health is bad only when no other has the value); detector counts are the feed's where
    it sends a count for that detector, else the camera's stop-line crossings where a stop line counts for it; a
    detector neither counts for (one the feed leaves out as stale or stuck, and no stop line's) is left out, not
    0. Known limitation: the two counts' periods differ, the feed's is its latest interval's, the camera's the
    crossings since the loop last asked. Its `sources` are every camera's
    and, once the feed has taken a message for the intersection (or refused enough in a row to be unhealthy),
    the feed's: the shield trusts the data only while every source that feeds it is sound, so a camera that
    goes dark or drops makes its intersection fall back even where detectors still report.
    """

    def __init__(self, feed, cameras: LiveCameras | None = None):
        self.feed = feed
        self.cameras = cameras
        self._loop_time_s: float | None = None
        self._lanes_of: dict[str, Intersection] = {}

    def observe(self, inter: Intersection, time_s: float, need: ObservationNeed) -> Observation:
        if self._loop_time_s is None or time_s > self._loop_time_s:
            self._loop_time_s = time_s
        base = self.feed.observe(inter, time_s, need)
        cams = self.cameras.observations(inter, time_s, need) if self.cameras is not None else []
        if not cams:
            return base
        reports = getattr(self.feed, "reports", None)  # a feed of the caller's own: taken as speaking throughout
        parts = ([base] if reports is None or reports(inter.id) else []) + cams
        ranked = sorted(parts, key=_rank)
        lanes: dict[str, LaneState] = {}
        idle: dict[str, float] = {}
        for obs in reversed(ranked):  # the best source is written last
            lanes.update(obs.lanes)
            idle.update(obs.detector_idle_s)
        counts = {}
        for obs in reversed(sorted(cams, key=_rank)):
            counts.update(obs.detector_counts_veh)
        counts.update(base.detector_counts_veh)  # a count the feed sends stands
        sources = tuple(s for obs in parts for s in obs.sources)
        return dataclasses.replace(base, lanes=lanes, detector_idle_s=idle, detector_counts_veh=counts,
                                   sources=sources)

    def lane_queues(self, lanes: Iterable[str]) -> dict[str, int]:
        """Halting vehicles per lane (the snapshot's queues) as the loop's source sees them at its latest time."""
        lanes = tuple(lanes)
        estimate = getattr(self.feed, "lane_queues", None)
        out = dict(estimate(lanes)) if estimate is not None else {}
        if self.cameras is None or self._loop_time_s is None:
            return out
        by_inter: dict[str, list[str]] = {}
        for lane in lanes:
            inter = self._inter_of(lane)
            if inter is not None and self.cameras.cameras_of(inter.id):
                by_inter.setdefault(inter.id, []).append(lane)
        for lanes_here in by_inter.values():
            inter = self._inter_of(lanes_here[0])
            obs = self.observe(inter, self._loop_time_s, ObservationNeed(tuple(lanes_here)))
            for lane in lanes_here:
                if lane in obs.lanes:
                    out[lane] = obs.lanes[lane].queue_veh
        return out

    def _inter_of(self, lane: str) -> Intersection | None:
        if not self._lanes_of and self.cameras is not None:
            self._lanes_of = {lane: i for i in self.cameras._inters.values() for lane in i.in_lanes}
        return self._lanes_of.get(lane)

    @property
    def emergency_active(self) -> bool:
        return bool(self.feed.emergency_active)

    def emergency_approaches(self, intersections: Mapping[str, Intersection],
                             within_m: float) -> dict[str, list[EmergencyApproach]]:
        return self.feed.emergency_approaches(intersections, within_m)
