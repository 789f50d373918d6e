"""One ticket per vehicle per violation: a ticketed vehicle whose track broke is not ticketed again under the new one.

A track breaks when the detector loses a vehicle for longer than the tracker
keeps a lost track (`ByteTracker.lost_s`): an occlusion, a run of missed
detections, a queued vehicle taken into the background. The tracker then
starts a new track (a new id) when the vehicle shows again, and each rule
(`SpeedingRule`, the red-light watch) judges the new id afresh: the same
speeder would be ticketed twice.

The rule, kept per camera (`TicketedVehicles`):

- A ticketed track's end is kept: its last time and road position (the
  steady point speeds are measured from), its velocity fitted over its last
  `END_FIT_S`, and its heading (its last direction of travel faster than
  `HEADING_MIN_MPS`).
- A track first seen where and when such a track went missing continues
  that vehicle: it started within `REACQUIRE_S` of the end (within
  `REACQUIRE_STANDING_S` when the ticketed vehicle stood still: a queued
  vehicle lost while it waited), at the position the end's velocity
  predicts (standing: where it stood) within `LATERAL_M` across the heading
  (a vehicle keeps its lane) and `ALONG_M` plus what a `ACCEL_MPS2`
  acceleration or braking moves it in the gap (the gap taken at most
  `REACQUIRE_S`) along it, and not more than `BEHIND_M` behind where it was
  lost (a vehicle does not back up: a standing one is looked for only ahead
  of where it stood). The tracks first seen in one frame and the ends are
  matched nearest pair first (by the distance from the predicted position):
  of several such new tracks the nearest takes it; an end continued by a
  track now followed is not taken again.
- A call of a kind the vehicle was already ticketed for (speeding; a red
  light at the same stop line) on a continuing track is withheld when the
  track drives within `HEADING_MAX_DEG` of the ticketed heading (checked at
  the call, when the new track has a direction): a `RepeatCall` names both
  track ids, the gap and the distance. A call of another kind is made.
- Ends are kept `REACQUIRE_STANDING_S` at most; a vehicle back after that is
  a new visit.

A different vehicle is taken for the ticketed one only if its track starts
within that gate of where the ticketed one vanished: a vehicle following
behind already has its own track (it was seen coming), and one that enters
the view enters at its edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: a moving ticketed vehicle's track may be continued this long after it was last seen, s
REACQUIRE_S = 3.0
#: a standing ticketed vehicle's (slower than `STANDING_MPS` at its end) this long: a queue's red, s
REACQUIRE_STANDING_S = 60.0
STANDING_MPS = 0.5
#: how far across its heading a continuing track may start from the predicted position, m (half a lane)
LATERAL_M = 1.5
#: how far along it, m, before the acceleration allowance
ALONG_M = 2.0
#: how far behind where it was lost (along its heading) a continuing track may start, m: a box's jitter
BEHIND_M = 1.0
#: the acceleration or braking allowed over the gap, m/s^2 (firm braking is 3-4 m/s^2)
ACCEL_MPS2 = 3.0
#: the velocity at a track's end is fitted over its last positions of this long, s
END_FIT_S = 1.0
#: faster than this the direction of travel is known (slower, a box's jitter is most of the motion), m/s
HEADING_MIN_MPS = 2.0
#: a continuing track driving further than this from the ticketed heading is another vehicle, degrees
HEADING_MAX_DEG = 45.0


@dataclass(frozen=True)
class RepeatCall:
    """A call withheld: `track_id` continues `ticketed_track_id` (the track the ticket named), already ticketed
    for `kind` (at `stop_line`, red light)."""

    time_s: float
    kind: str
    track_id: int
    ticketed_track_id: int
    previous_track_id: int  # the track it continues directly (the ticketed one, or a continuation of it)
    gap_s: float  # from the previous track's last sighting to this one's first
    offset_m: float  # from where the previous track's end predicted it to where this one started
    stop_line: str = ""

    def record(self) -> dict:
        return {"time_s": round(self.time_s, 3), "kind": self.kind, "track_id": self.track_id,
                "ticketed_track_id": self.ticketed_track_id, "previous_track_id": self.previous_track_id,
                "gap_s": round(self.gap_s, 3), "offset_m": round(self.offset_m, 2), "stop_line": self.stop_line}


@dataclass
class _End:
    root: int  # the ticketed track
    time_s: float
    x_m: float
    y_m: float
    vx: float
    vy: float
    heading: tuple[float, float] | None
    next_id: int | None = None  # the track that continued it


@dataclass(frozen=True)
class _Link:
    root: int
    previous: int
    gap_s: float
    offset_m: float
    heading: tuple[float, float] | None


def fitted_velocity(samples) -> tuple[float, float]:
    """(vx, vy) m/s: the least-squares slope of (x_m, y_m) against time over `samples` ((time_s, x_m, y_m)); 0 with
    fewer than two times."""
    if len(samples) < 2:
        return 0.0, 0.0
    a = np.asarray(samples, float)
    t = a[:, 0] - a[:, 0].mean()
    stt = float(t @ t)
    if stt <= 0:
        return 0.0, 0.0
    return float(t @ (a[:, 1] - a[:, 1].mean())) / stt, float(t @ (a[:, 2] - a[:, 2].mean())) / stt


class TicketedVehicles:
    """Which tracks continue a ticketed vehicle, and which calls on them repeat a ticket (module docstring)."""

    def __init__(self):
        self._kinds: dict[int, set[str]] = {}  # ticketed track -> the kinds it was ticketed for
        self._ends: dict[int, _End] = {}  # track of a ticketed vehicle -> its last known state
        self._links: dict[int, _Link] = {}  # continuing track -> what it continues

    @staticmethod
    def key(kind: str, stop_line: str = "") -> str:
        return f"{kind}@{stop_line}" if stop_line else kind

    def root(self, track_id: int) -> int:
        link = self._links.get(track_id)
        return link.root if link is not None else track_id

    def follows(self, track_id: int) -> bool:
        """Whether the track is of a ticketed vehicle (its end has to be kept up to date: `seen`)."""
        return track_id in self._ends

    def ticketed(self, track_id: int, key: str) -> None:
        root = self.root(track_id)
        self._kinds.setdefault(root, set()).add(key)
        self._ends.setdefault(track_id, _End(root, math.nan, math.nan, math.nan, 0.0, 0.0, None))

    def seen(self, track_id: int, samples) -> None:
        """The track (of a ticketed vehicle) seen again: `samples` are its (time_s, x_m, y_m) so far, the last now."""
        end = self._ends[track_id]
        t, x, y = samples[-1]
        vx, vy = fitted_velocity([s for s in samples if s[0] >= t - END_FIT_S - 1e-9])
        speed = math.hypot(vx, vy)
        end.time_s, end.x_m, end.y_m, end.vx, end.vy = t, x, y, vx, vy
        if speed > HEADING_MIN_MPS:
            end.heading = (vx / speed, vy / speed)

    def started(self, track_id: int, time_s: float, x_m: float, y_m: float, visible) -> int | None:
        """A track first seen at (`x_m`, `y_m`): the ticketed vehicle's track it continues, else None."""
        return self.started_all(time_s, [(track_id, x_m, y_m)], visible).get(track_id)

    def started_all(self, time_s: float, starts, visible) -> dict[int, int]:
        """The tracks first seen in one frame, `starts` ((track_id, x_m, y_m)): {track_id: the ticketed track} of
        those that continue a ticketed vehicle. New tracks and ends are matched nearest pair first."""
        pairs = []
        for track_id, x_m, y_m in starts:
            for tid, end in self._ends.items():
                gated = self._gate(end, tid, time_s, x_m, y_m, visible)
                if gated is not None:
                    pairs.append((gated[0], track_id, tid, gated[1], x_m, y_m))
        taken: dict[int, int] = {}
        for offset, track_id, previous, gap, x_m, y_m in sorted(pairs, key=lambda p: p[:3]):
            end = self._ends[previous]
            if track_id in taken or end.next_id is not None:
                continue
            end.next_id = track_id
            self._links[track_id] = _Link(end.root, previous, gap, offset, end.heading)
            self._ends[track_id] = _End(end.root, time_s, x_m, y_m, end.vx, end.vy, end.heading)
            taken[track_id] = end.root
        return taken

    @staticmethod
    def _gate(end: _End, tid: int, time_s: float, x_m: float, y_m: float, visible) -> tuple[float, float] | None:
        """(offset from the predicted position, gap) when a track first seen at (`x_m`, `y_m`) may continue `end`
        (of track `tid`), else None."""
        if tid in visible or end.next_id is not None or math.isnan(end.time_s) or end.time_s >= time_s:
            return None
        gap = time_s - end.time_s
        standing = math.hypot(end.vx, end.vy) < STANDING_MPS
        if gap > (REACQUIRE_STANDING_S if standing else REACQUIRE_S):
            return None
        px, py = (end.x_m, end.y_m) if standing else (end.x_m + end.vx * gap, end.y_m + end.vy * gap)
        dx, dy = x_m - px, y_m - py
        along_max = ALONG_M + 0.5 * ACCEL_MPS2 * min(gap, REACQUIRE_S) ** 2
        if end.heading is None:
            ok = math.hypot(dx, dy) <= LATERAL_M
        else:
            ux, uy = end.heading
            along = dx * ux + dy * uy
            # a vehicle does not back up: not behind where it was lost (standing: ahead of where it stood)
            from_lost = (x_m - end.x_m) * ux + (y_m - end.y_m) * uy
            ok = abs(along) <= along_max and from_lost >= -BEHIND_M and abs(dx * uy - dy * ux) <= LATERAL_M
        return (math.hypot(dx, dy), gap) if ok else None

    def repeat(self, track_id: int, key: str, kind: str, time_s: float, velocity: tuple[float, float],
               stop_line: str = "") -> RepeatCall | None:
        """The call (`key`) on the track repeats its vehicle's ticket: the `RepeatCall` to keep, else None (make
        it). A continuing track driving another way than the ticketed vehicle is let go (another vehicle)."""
        link = self._links.get(track_id)
        if link is None or key not in self._kinds.get(link.root, ()):
            return None
        speed = math.hypot(*velocity)
        if link.heading is not None and speed > HEADING_MIN_MPS:
            cos = (velocity[0] * link.heading[0] + velocity[1] * link.heading[1]) / speed
            if cos < math.cos(math.radians(HEADING_MAX_DEG)):
                self._unlink(track_id)
                return None
        return RepeatCall(time_s, kind, track_id, link.root, link.previous, link.gap_s, link.offset_m, stop_line)

    def _unlink(self, track_id: int) -> None:
        link = self._links.pop(track_id)
        previous = self._ends.get(link.previous)
        if previous is not None:
            previous.next_id = None
        self._ends.pop(track_id, None)

    def expire(self, now_s: float, followed) -> None:
        """Drop ends older than `REACQUIRE_STANDING_S` (not of a track still followed) and what only they kept."""
        for tid in [t for t, e in self._ends.items()
                    if t not in followed and not math.isnan(e.time_s) and now_s - e.time_s > REACQUIRE_STANDING_S]:
            self._ends.pop(tid)
        for tid in [t for t in self._links if t not in self._ends]:
            self._links.pop(tid)
        kept = {e.root for e in self._ends.values()}
        for root in [r for r in self._kinds if r not in kept]:
            self._kinds.pop(root)
