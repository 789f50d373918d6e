"""One camera's pipeline: a frame and its time in, a `FrameResult` out.

detect -> track -> road positions (homography) -> speed -> zones (virtual
detectors, 82/81) -> stop-line crossings -> violations (red light from the
signal's own state, timed by the vehicle's front and confirmed once it went
on into the junction: `redlight.py`; speeding) -> evidence images
(asynchronous). Each stage is its own module; this file only wires them and
keeps per-track memory.

The signal state comes either with each frame (`process(..., signal_state=)`,
the controller's own state in a live loop) or from a `SignalTimeline` (the
`--signals` file). Times are seconds on the caller's clock (video seconds
from the first frame in `signalwise vision run`).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..core.types import EventCode, SignalEvent
from .bytetrack import ByteTracker
from .camera import CameraConfig
from .detections import Detections
from .evidence import EvidenceJob, EvidenceWriter
from .reacquire import RepeatCall, TicketedVehicles, fitted_velocity
from .redlight import Pending, RedLightWatch, downstream_normal, front_crossing
from .signals import SignalTimeline, all_red, link_chars
from .speed import SpeedEstimator
from .stoplines import Crossing, StopLineCounter, StopLineGeometry
from .violations import RED_LIGHT, SPEEDING, SpeedingRule, Violation
from .zones import ZoneDetector, ZoneState

#: per-track memory (trail, approach, speed samples) is dropped this long after a track was last seen
FORGET_S = 5.0
#: seconds of trail kept per track for evidence images and violation records
TRAIL_S = 10.0
#: slower than this a track keeps the direction it had (front anchors): a standing box's filter velocity is noise
FRONT_MIN_MPS = 2.0
#: no road vehicle is narrower than this (a car is 1.8 m, a motorcycle with its rider near 0.8 m); a thinner blob is
#: something else that changed: a signal's lamp bar, a pedestrian
VEHICLE_MIN_WIDTH_M = 0.8
#: a blob smaller than this on the road is no vehicle: a third of a car (4.5 x 1.8 m), so one half in the frame counts
VEHICLE_MIN_AREA_M2 = 2.5
#: the typical speed of moving tracks is kept from at most this many tracks (a long run's memory stays bounded)
TYPICAL_SPEED_TRACKS = 10_000
#: a box this close to the frame's border (pixels) may be cut off by it: its centre is not the vehicle's, and it
#: moves as the vehicle comes into view (still, then jumping), so its position measures no speeding
FRAME_EDGE_PX = 2.0


@dataclass(frozen=True, slots=True)
class TrackPoint:
    track_id: int
    x_px: float
    y_px: float
    x_m: float
    y_m: float
    speed_mps: float  # NaN until the track spans the speed window
    moving: bool
    box_px: tuple[float, float, float, float]


@dataclass(frozen=True)
class FrameResult:
    frame_index: int
    time_s: float
    detections: Detections  # the detector's output, before tracking
    tracked: Detections  # detections of confirmed tracks, tracker_id set
    tracks: tuple[TrackPoint, ...]
    crossings: tuple[Crossing, ...]
    violations: tuple[Violation, ...]
    events: tuple[SignalEvent, ...]  # zone detector on (82) / off (81), parameter = channel
    zones: tuple[ZoneState, ...]
    signal_state: str | None
    timing_s: dict[str, float] = field(default_factory=dict)  # detect, track, rest, total
    repeats: tuple[RepeatCall, ...] = ()  # calls withheld: a ticketed vehicle's broken track (`reacquire.py`)


def default_detector(camera: CameraConfig):
    """The blob detector, with the camera's empty-road image when it names one, closing along its lanes."""
    from .blobs import BlobDetector
    from .lanes import LaneCloser, road_arms

    reference = None
    if camera.background_image:
        import cv2

        reference = cv2.imread(camera.background_image, cv2.IMREAD_COLOR)
        if reference is None:
            from .camera import CameraFileError

            raise CameraFileError(f"background_image {camera.background_image}: not an image OpenCV can read")
    arms = road_arms(camera)
    if not arms:
        return BlobDetector(reference=reference)
    # the smallest blob worth a box, in pixels where a metre is fewest (the far side of an oblique view)
    min_area_px = VEHICLE_MIN_AREA_M2 * min(a.px_per_m for a in arms) ** 2
    return BlobDetector(reference=reference, min_area_px=min_area_px,
                        closer=LaneCloser(arms, min_width_m=VEHICLE_MIN_WIDTH_M))


class Pipeline:
    def __init__(self, camera: CameraConfig, detector=None, tracker: ByteTracker | None = None, *,
                 signals: SignalTimeline | None = None, evidence: EvidenceWriter | None = None,
                 interval_s: float = 60.0, speed_window_s: float = 1.5, zone_window_s: float = 30.0):
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.camera = camera
        self.detector = detector if detector is not None else default_detector(camera)
        self.tracker = tracker or ByteTracker()
        if self.tracker.lost_s >= FORGET_S:  # a forgotten id that comes back would be counted and fined again
            raise ValueError(f"the tracker keeps a lost track {self.tracker.lost_s:g} s; the pipeline forgets a "
                             f"track after {FORGET_S:g} s, so it must give up sooner")
        self.signals = signals
        self.evidence = evidence
        self.interval_s = interval_s
        self.homography = camera.homography
        self.speeds = SpeedEstimator(speed_window_s, forget_s=FORGET_S)
        channels = camera.zone_channels()
        self.zones = [ZoneDetector(z.name, z.approach, channels[z.name], z.px, zone_window_s) for z in camera.zones]
        upstream = {}
        for z in self.zones:
            upstream.setdefault(z.approach, z.centroid())
        self.lines = [StopLineGeometry(s.name, s.approach, s.links, s.px[0], s.px[1], upstream.get(s.approach))
                      for s in camera.stop_lines]
        self.counter = StopLineCounter(self.lines, self.homography.to_road,
                                       lambda p: any(z.contains(p) for z in self.zones))
        self.speeding = SpeedingRule(camera.speed_limit_mps, camera.speed_tolerance_mps, camera.speed_sustain_s) \
            if camera.speed_limit_mps is not None else None
        self._live = SignalTimeline()
        self._trail: dict[int, deque] = {}
        self._boxes: dict[int, deque] = {}  # track -> its last TRAIL_S of `redlight.BoxSample`s
        self.red_watch = RedLightWatch(camera.red_entry_m)
        #: ticketed vehicles and the tracks that continue them: one ticket per vehicle per violation
        self.ticketed = TicketedVehicles()
        #: every call withheld as a repeat of a ticket (both track ids: the evidence that they are one vehicle)
        self.repeat_calls: list[RepeatCall] = []
        #: crossings whose front was seen crossing (not joined, not past the line already in the track's first box)
        #: while signal states were given: whose state was known then, and whose was not (outside the signal log's
        #: coverage): those judge no red light
        self.judged_crossings = 0
        self.unjudged_crossings = 0
        #: crossings (not joined) while signal states were given whose front was past the line already in the
        #: track's first box: when the front crossed is unknown, so none is judged, and each is counted here so a
        #: summary's judged and not-judged counts do not read as every crossing
        self.front_unseen_crossings = 0
        self._moving_speeds: dict[int, list[float]] = {}  # track -> its speeds while moving
        self._track_speeds: deque = deque(maxlen=TYPICAL_SPEED_TRACKS)  # median speed of each forgotten track
        self._approach: dict[int, str] = {}
        self._heading: dict[int, np.ndarray] = {}  # unit image direction of travel (front anchors)
        self._speed: dict[int, float] = {}  # latest known speed per track
        self._implausible: set[int] = set()  # tracks followed now that were measured implausibly fast
        #: tracks ever measured over the camera's `max_plausible_speed_mps` (the tracker never gives an id twice),
        #: and the fastest such speed: a wrong fps or calibration, said in a run's summary
        self.implausible_tracks = 0
        self.fastest_implausible_mps: float | None = None
        self._last_seen: dict[int, float] = {}
        self._counts: dict[int, dict[str, int]] = {}
        self._first_interval: int | None = None
        self._reported_through = -1  # intervals before this are closed and handed out
        self.frame_index = -1
        self.time_s: float | None = None
        self._checked_frame = False

    # -- the frame --------------------------------------------------------------------------------
    def process(self, image: np.ndarray, time_s: float, signal_state: str | None = None) -> FrameResult:
        if self.time_s is not None and time_s < self.time_s:
            raise ValueError(f"frame time {time_s:g} s is before the previous frame's ({self.time_s:g} s)")
        if not self._checked_frame:
            self.camera.check_frame(image.shape[1], image.shape[0], self.camera.camera_id)
            self._checked_frame = True
        c0 = time.perf_counter()
        self.frame_index += 1
        self.time_s = time_s
        if self._first_interval is None:
            self._first_interval = int(math.floor(time_s / self.interval_s))
        timeline = self.signals
        if signal_state is not None:
            self._live.append(time_s, self.camera.device_id, signal_state)
            timeline = self._live
        state = timeline.state_at(self.camera.device_id, time_s) if timeline is not None else None

        dets = self.detector.detect(image, time_s)
        c1 = time.perf_counter()
        tracked = self.tracker.update(dets, time_s)
        c2 = time.perf_counter()

        anchors = self._anchors(tracked)
        road = self.homography.to_road(anchors)
        # speed from a point that never jumps along the box: the front anchor moves when the heading is learnt
        steady = road if self.camera.anchor != "front" else self.homography.to_road(tracked.centers_px)
        points: dict[int, np.ndarray] = {}
        speeds: dict[int, float] = {}
        moving: dict[int, bool] = {}
        tracks = []
        known = set(self._last_seen)
        for k, tid in enumerate(tracked.tracker_id.tolist()):
            p, (xm, ym) = anchors[k], road[k]
            v = self.speeds.add(tid, time_s, float(steady[k][0]), float(steady[k][1]))
            points[tid], speeds[tid], moving[tid] = p, v, bool(tracked.moving[k])
            if not math.isnan(v):
                self._speed[tid] = v
            self._last_seen[tid] = time_s
            trail = self._trail.setdefault(tid, deque())
            trail.append((time_s, float(p[0]), float(p[1]), float(xm), float(ym)))
            while trail and trail[0][0] < time_s - TRAIL_S:
                trail.popleft()
            boxes = self._boxes.setdefault(tid, deque())
            boxes.append((time_s, *(float(c) for c in tracked.xyxy[k]), float(steady[k][0]), float(steady[k][1])))
            while boxes and boxes[0][0] < time_s - TRAIL_S:
                boxes.popleft()
            if v > 0:  # NaN compares False: no speed yet
                self._moving_speeds.setdefault(tid, []).append(v)
            tracks.append(TrackPoint(tid, float(p[0]), float(p[1]), float(xm), float(ym), v, bool(tracked.moving[k]),
                                     tuple(float(c) for c in tracked.xyxy[k])))
        visible = set(points)
        self.ticketed.started_all(time_s, [(tid, float(steady[k][0]), float(steady[k][1]))
                                           for k, tid in enumerate(tracked.tracker_id.tolist()) if tid not in known],
                                  visible)
        for tid in tracked.tracker_id.tolist():
            if self.ticketed.follows(tid):
                self.ticketed.seen(tid, self._steady_samples(tid))
        repeats: list[RepeatCall] = []

        events = []
        for z in self.zones:
            change = z.update(time_s, points, speeds, moving)
            if change is not None:
                code = EventCode.DETECTOR_ON if change == "on" else EventCode.DETECTOR_OFF
                events.append(SignalEvent(time_s, self.camera.device_id, int(code), z.channel))
            for tid, p in points.items():
                if tid not in self._approach and z.contains(p):
                    self._approach[tid] = z.approach

        crossings, violations = [], []
        box_of = {tp.track_id: tp.box_px for tp in tracks}
        for line, tid, t_anchor, where, joined, beside in self.counter.update(time_s, points):
            self._approach.setdefault(tid, line.approach)
            front = None if joined else self._front_crossing(tid, line)  # joined: nobody saw it cross
            t_cross = front.time_s if front is not None else t_anchor
            at = timeline.state_at(self.camera.device_id, t_cross) if timeline is not None else None
            chars = link_chars(at, line.links)
            crossings.append(Crossing(t_cross, tid, line.name, line.approach, chars, float(where[0]),
                                      float(where[1]), joined))
            self._count(t_anchor, line.approach)  # the front's earlier time can fall in an interval already closed
            if timeline is None or joined:
                continue
            if front is None:  # the front was past the line in the track's first box: when it crossed is unknown
                self.front_unseen_crossings += 1
                continue
            if at is None:  # outside the signal log's coverage: not judged, not read as the last state
                self.unjudged_crossings += 1
                continue
            self.judged_crossings += 1
            # on the lines beside too (a vehicle on the lane boundary): which lane it is in is unknown, so all red
            links = [i for ln in (line, *beside) for i in ln.links]
            if all_red(at, links):
                since = timeline.red_since(self.camera.device_id, links, t_cross)
                if since is not None and t_cross - since >= self.camera.red_grace_s:
                    self.red_watch.add(tid, Pending(line, links, front, chars))
        if timeline is not None:
            violations += self._entered_on_red(timeline, points, speeds, image, box_of, repeats)
        implausible = self._implausible_speeds(speeds)
        if self.speeding is not None:
            height, width = image.shape[:2]
            pixel_m = self._pixel_m(tracked.centers_px if self.camera.anchor == "front" else anchors, steady)
            for k, tid in enumerate(tracked.tracker_id.tolist()):
                if tid in implausible:  # a wrong fps or calibration, or a jump: not a drive to measure over
                    self.speeding.interrupt(tid)
                    continue
                x1, y1, x2, y2 = (float(c) for c in tracked.xyxy[k])
                if (x1 <= FRAME_EDGE_PX or y1 <= FRAME_EDGE_PX or x2 >= width - FRAME_EDGE_PX
                        or y2 >= height - FRAME_EDGE_PX):
                    continue  # cut off by the frame's edge: its centre is not the vehicle's
                measured = self.speeding.observe(tid, time_s, float(steady[k][0]), float(steady[k][1]),
                                                 float(pixel_m[k]))
                if measured is None:
                    continue
                if measured.speed_mps > self.camera.max_plausible_speed_mps:
                    self._implausible_speeds({tid: measured.speed_mps})
                    continue
                if self._repeats(SPEEDING, tid, time_s, "", repeats):
                    continue
                violations.append(self._violation(SPEEDING, time_s, tid, self._approach_of(tid, points[tid]),
                                                  measured.speed_mps, image, box_of[tid], None, "",
                                                  speed_span=measured))
        self._forget(time_s)
        c3 = time.perf_counter()
        return FrameResult(self.frame_index, time_s, dets, tracked, tuple(tracks), tuple(crossings), tuple(violations),
                           tuple(events), tuple(z.state(time_s) for z in self.zones), state,
                           {"detect": c1 - c0, "track": c2 - c1, "rest": c3 - c2, "total": c3 - c0}, tuple(repeats))

    # -- one ticket per vehicle per violation --------------------------------------------------------
    def _steady_samples(self, tid: int) -> list[tuple[float, float, float]]:
        """The track's kept (time_s, x_m, y_m) of its steady road point."""
        return [(b[0], b[5], b[6]) for b in self._boxes.get(tid, ())]

    def _repeats(self, kind: str, tid: int, time_s: float, stop_line: str, repeats: list) -> bool:
        """Whether a call of `kind` on the track repeats a ticket its vehicle got under an earlier track (kept in
        `repeats` and `repeat_calls`: withheld); else the call is made and its vehicle marked ticketed for it."""
        key = self.ticketed.key(kind, stop_line)
        samples = self._steady_samples(tid)
        velocity = fitted_velocity([s for s in samples if s[0] >= time_s - 1.0 - 1e-9])
        repeat = self.ticketed.repeat(tid, key, kind, time_s, velocity, stop_line)
        if repeat is not None:
            repeats.append(repeat)
            self.repeat_calls.append(repeat)
            return True
        self.ticketed.ticketed(tid, key)
        if samples:
            self.ticketed.seen(tid, samples)
        return False

    # -- red light --------------------------------------------------------------------------------
    def _front_crossing(self, tid: int, line):
        """When the track's box front last passed `line` downstream (`redlight.front_crossing`), or None."""
        trail = self._trail.get(tid, ())
        came_from = (trail[-2][1], trail[-2][2]) if len(trail) >= 2 else line.a
        return front_crossing(self._boxes.get(tid, ()), line, downstream_normal(line, came_from))

    def _entered_on_red(self, timeline, points, speeds, image, box_of, repeats: list) -> list[Violation]:
        """Red-light violations of tracks whose front crossed on red and has now gone `red_entry_m` further while
        every link of the line still showed red (the second trigger); a track that got that far on another
        colour is dropped, one that got there outside the log's coverage is not judged."""
        out = []
        for tid in [t for t in points if self.red_watch.pending(t) is not None]:
            t2 = self.red_watch.reached_s(tid, self._boxes[tid])
            if t2 is None:
                continue
            p = self.red_watch.drop(tid)
            state = timeline.state_at(self.camera.device_id, t2)
            if state is None:
                self.judged_crossings -= 1
                self.unjudged_crossings += 1
                continue
            if not all_red(state, p.links):
                continue
            if self._repeats(RED_LIGHT, tid, p.crossing.time_s, p.line.name, repeats):
                continue
            entry = (f"front over {p.line.name} at {p.crossing.time_s:.2f} s, signal {p.chars}; "
                     f"{self.camera.red_entry_m:g} m on at {t2:.2f} s, signal {link_chars(state, p.line.links)}")
            since = timeline.red_since(self.camera.device_id, p.links, p.crossing.time_s)  # as when it was added
            out.append(self._violation(RED_LIGHT, p.crossing.time_s, tid, p.line.approach,
                                       self.speeds.mean_speed(tid) if tid in speeds else None, image,
                                       box_of[tid], p.line, p.chars, entry,
                                       None if since is None else p.crossing.time_s - since))
        return out

    def typical_speed_mps(self, percentile: float = 85.0) -> tuple[float | None, int]:
        """(`percentile` over moving tracks of each one's median speed while moving, how many tracks): a
        calibration in feet or a wrong frame rate shows as the traffic far over the limit."""
        per_track = [*self._track_speeds, *(float(np.median(v)) for v in self._moving_speeds.values() if v)]
        return (float(np.percentile(per_track, percentile)) if per_track else None), len(per_track)

    # -- helpers ------------------------------------------------------------------------------------
    def _implausible_speeds(self, speeds: dict[int, float]) -> set[int]:
        """The tracks among `speeds` measured over the camera's `max_plausible_speed_mps`, counted once per track
        (`implausible_tracks`, the fastest in `fastest_implausible_mps`): their speeds judge no speeding."""
        limit = self.camera.max_plausible_speed_mps
        out = {tid for tid, v in speeds.items() if v > limit}  # NaN compares False: no speed yet is no flag
        for tid in out:
            if tid not in self._implausible:
                self._implausible.add(tid)
                self.implausible_tracks += 1
            self.fastest_implausible_mps = max(self.fastest_implausible_mps or 0.0, speeds[tid])
        return out

    def _pixel_m(self, points_px: np.ndarray, road: np.ndarray) -> np.ndarray:
        """The size on the road (m) of a pixel at each of `points_px` (whose road points are `road`): the longer of
        its sides' images, what a position there can be known to at best."""
        if not len(points_px):
            return np.zeros(0)
        pts = np.asarray(points_px, float)
        across = self.homography.to_road(pts + (1.0, 0.0)) - road
        down = self.homography.to_road(pts + (0.0, 1.0)) - road
        return np.maximum(np.hypot(across[:, 0], across[:, 1]), np.hypot(down[:, 0], down[:, 1]))

    def _anchors(self, tracked: Detections) -> np.ndarray:
        if self.camera.anchor != "front":
            return tracked.anchors(self.camera.anchor)
        centers = tracked.centers_px
        out = centers.copy()
        for k, tid in enumerate(tracked.tracker_id.tolist()):
            v = getattr(self.tracker, "velocity_px_s", lambda _t: None)(tid)
            if v is not None and self._speed.get(tid, 0.0) > FRONT_MIN_MPS and float(np.hypot(*v)) > 0:
                self._heading[tid] = np.asarray(v, float) / float(np.hypot(*v))
            u = self._heading.get(tid)
            if u is None:
                continue
            x1, y1, x2, y2 = tracked.xyxy[k]
            reach = min((x2 - x1) / 2 / max(abs(u[0]), 1e-9), (y2 - y1) / 2 / max(abs(u[1]), 1e-9))
            out[k] = centers[k] + u * reach
        return out

    def _approach_of(self, tid: int, point) -> str:
        known = self._approach.get(tid)
        if known is not None or not self.lines:
            return known or ""
        return min(self.lines, key=lambda ln: ln.distance_px(point)).approach

    def _violation(self, kind: str, t: float, tid: int, approach: str, speed, image, box, line, chars,
                   entry: str = "", red_for_s: float | None = None, speed_span=None) -> Violation:
        cam = self.camera
        speed = math.nan if speed is None else float(speed)
        rel = ""
        trail = tuple(self._trail.get(tid, ()))
        if self.evidence is not None:
            rel = f"evidence/{_safe(cam.camera_id)}_{kind}_{tid}_{round(t * 1000)}.jpg"
            caption = [f"{cam.camera_id} {cam.device_id} {kind.replace('_', ' ')} track {tid} t={t:.2f} s"]
            if kind == RED_LIGHT:
                caption.append(f"approach {approach or '?'}"
                               + (f" speed {speed:.1f} m/s" if not math.isnan(speed) else ""))
                caption.append(entry or f"stop line {line.name}, signal {chars}")
            else:
                caption.append(f"approach {approach or '?'} speed {speed_span.describe()}")
                caption.append(f"at least {speed_span.lower_mps:.2f} m/s ({100 * speed_span.confidence:g} %) > "
                               f"limit {cam.speed_limit_mps:g} m/s + {cam.speed_tolerance_mps:g} tolerance")
            job = EvidenceJob(self.evidence.root / rel, image, box, tuple((p[1], p[2]) for p in trail),
                              (tuple(line.a), tuple(line.b)) if line is not None else None, tuple(caption))
            if not self.evidence.submit(job):
                rel = ""
        return Violation(t, tid, kind, approach, speed, cam.camera_id, cam.device_id,
                         line.name if line is not None else "", chars,
                         cam.speed_limit_mps if kind == SPEEDING else None, rel, trail, red_for_s, speed_span)

    def _count(self, t: float, approach: str) -> None:
        k = int(math.floor(t / self.interval_s))
        per = self._counts.setdefault(k, {})
        per[approach] = per.get(approach, 0) + 1

    def _forget(self, now_s: float) -> None:
        gone = [tid for tid, t in self._last_seen.items() if now_s - t > FORGET_S]
        for tid in gone:
            self._last_seen.pop(tid, None)
            self._trail.pop(tid, None)
            self._approach.pop(tid, None)
            self._heading.pop(tid, None)
            self._speed.pop(tid, None)
            self._implausible.discard(tid)
            self._boxes.pop(tid, None)
            moving = self._moving_speeds.pop(tid, None)
            if moving:
                self._track_speeds.append(float(np.median(moving)))
        self.ticketed.expire(now_s, self._last_seen)
        if gone:
            self.counter.forget(gone)
            self.red_watch.forget(gone)
            if self.speeding is not None:
                self.speeding.forget(gone)
        self.speeds.forget(now_s)

    # -- counts per interval -------------------------------------------------------------------------
    @property
    def count_approaches(self) -> list[str]:
        seen: dict[str, None] = {}
        for ln in self.lines:
            seen.setdefault(ln.approach, None)
        return list(seen)

    def closed_counts(self, final: bool = False) -> list[tuple[float, str, int]]:
        """(interval start s, approach, vehicles crossing its stop lines) for intervals closed since the last call.

        An interval is closed once a frame at or after its end was processed;
        `final=True` closes the one in progress too (the end of a video).
        Every approach with a stop line gets a row, zero included.
        """
        if self.time_s is None:
            return []
        current = int(math.floor(self.time_s / self.interval_s))
        last = current if final else current - 1
        first = max(self._reported_through + 1, self._first_interval)
        rows = []
        for k in range(first, last + 1):
            per = self._counts.pop(k, {})
            rows.extend((k * self.interval_s, a, per.get(a, 0)) for a in self.count_approaches)
        self._reported_through = max(self._reported_through, last)
        return rows


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)

