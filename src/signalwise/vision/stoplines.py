"""Stop-line crossings: a track's road point passing from the upstream side of a stop line to the other.

The upstream side is where the approach's zone lies (a zone of the same
approach in the camera file); a stop line with no such zone counts crossings
either way. Each track crosses each stop line once. The crossing time is
interpolated between the two frames on either side of the line.

Stop lines of one approach side by side (a left-turn lane's line next to the
through line, sharing an end) overlap by their lengthened ends, so a vehicle
on the lane boundary passes both at once. A vehicle is on one lane: a track
that crosses one of them counts there and on none of the lines beside it
(`beside`: same approach, lengthened segments that meet). When the step
crosses several, it counts on the one whose drawn segment (not lengthened)
passes nearest its crossing point, first in file order on a tie; the others
come with the crossing (`LineCrossing.beside`), since the vehicle was on
them as well. Lines one after another on an approach do not meet: each
counts. A forgotten
track (`forget`) takes the lines it crossed with it: the pipeline forgets a
track unseen for longer than the tracker keeps a lost one, so its id never
comes back.

A vehicle leaving a queue is often lost right at the line (it joins its
neighbour's blob on the crosswalk, or leaves its box behind for a moment)
and found again a few metres on under a new track, which starts past the
line and so never crosses it. A track that appears where no track was is
therefore joined to the nearest track that vanished within `STITCH_S`
and whose last point lies within reach (`STITCH_MPS` for the gap, plus
`STITCH_SLACK_M`) when the path from one to the other crosses a stop line
the vanished track had not crossed: that path counts as crossed. Each
vanished track is joined once, and the new track takes over the lines it
had crossed: the vehicle is counted on none of them again. Such a crossing
counts, but calls no red light: a violation needs the vehicle seen on the
line. A track that appears on an approach (`on_approach`, the camera's
approach zones) has come over no stop line: it is a vehicle newly seen in a
queue, not one lost in the junction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

#: a stop line is lengthened by this share at each end, so a vehicle at the kerb still crosses it
END_MARGIN = 0.05
#: a new track is joined to one that vanished at most this long before (a vehicle lost on the crosswalk)
STITCH_S = 4.0
#: ... and at most this fast in between, plus `STITCH_SLACK_M` (road metres): a queue leaves well below it
STITCH_MPS = 10.0
STITCH_SLACK_M = 3.0
#: two lengthened stop lines this close (pixels) meet: side by side, with no gap a vehicle could pass through
BESIDE_PX = 1.0


@dataclass(frozen=True, slots=True)
class Crossing:
    time_s: float
    track_id: int
    stop_line: str
    approach: str
    signal_state: str  # the stop line's link characters at the crossing ('' when unknown)
    x_px: float
    y_px: float
    joined: bool = False  # on the path from a vanished track to the one continuing it: time within that gap


def _side(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> float:
    return float((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]))


class StopLineGeometry:
    """One stop line: its segment, and which side is upstream (+1 / -1, or 0 when unknown)."""

    def __init__(self, name: str, approach: str, links: list[int], p0, p1, upstream_point=None):
        a, b = np.asarray(p0, float), np.asarray(p1, float)
        d = b - a
        self.p0, self.p1 = a, b  # as drawn in the camera file
        self.a, self.b = a - END_MARGIN * d, b + END_MARGIN * d  # lengthened by the margins
        self.name, self.approach, self.links = name, approach, list(links)
        self.upstream = 0.0
        if upstream_point is not None:
            s = _side(self.a, self.b, np.asarray(upstream_point, float))
            self.upstream = float(np.sign(s))

    def crossing_fraction(self, p, q) -> float | None:
        """Where along p -> q the path crosses the line going downstream (0..1), or None."""
        p, q = np.asarray(p, float), np.asarray(q, float)
        sp, sq = _side(self.a, self.b, p), _side(self.a, self.b, q)
        if self.upstream:
            if np.sign(sp) != self.upstream or np.sign(sq) == self.upstream:
                return None  # not from the upstream side to the other
        elif sp * sq > 0 or sp == 0:
            return None  # same side, or it started on the line (counted when it reached it)
        # the path must cross the segment itself, not its extension
        r = q - p
        s = self.b - self.a
        denom = r[0] * s[1] - r[1] * s[0]
        if abs(denom) < 1e-12:
            return None
        ap = self.a - p
        t = (ap[0] * s[1] - ap[1] * s[0]) / denom  # along p -> q
        u = (ap[0] * r[1] - ap[1] * r[0]) / denom  # along a -> b
        if -1e-9 <= t <= 1 + 1e-9 and -1e-9 <= u <= 1 + 1e-9:
            return float(min(1.0, max(0.0, t)))
        return None

    def distance_px(self, p) -> float:
        return _segment_distance(np.asarray(p, float), self.a, self.b)

    def drawn_distance_px(self, p) -> float:
        """From `p` to the line as drawn, margins left out: 0 for a crossing within the lanes the line spans."""
        return _segment_distance(np.asarray(p, float), self.p0, self.p1)

    def meets(self, other: StopLineGeometry) -> bool:
        """The two lengthened segments touch or overlap (within `BESIDE_PX`)."""
        if _segments_cross(self.a, self.b, other.a, other.b):
            return True
        return min(self.distance_px(other.a), self.distance_px(other.b),
                   other.distance_px(self.a), other.distance_px(self.b)) <= BESIDE_PX


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    s = b - a
    u = float(np.clip(np.dot(p - a, s) / max(float(np.dot(s, s)), 1e-12), 0, 1))
    return float(np.linalg.norm(p - (a + u * s)))


def _segments_cross(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> bool:
    """Proper crossing of a-b and c-d (touching and collinear overlap are left to the distance test)."""
    s1, s2 = _side(a, b, c), _side(a, b, d)
    s3, s4 = _side(c, d, a), _side(c, d, b)
    return s1 * s2 < 0 and s3 * s4 < 0


class LineCrossing(NamedTuple):
    """A track over a stop line between two frames."""

    line: StopLineGeometry
    track_id: int
    time_s: float  # interpolated between the frames
    point: np.ndarray  # image pixels
    joined: bool  # on the path from a vanished track to the new one that continues it: nobody saw it on the line
    beside: tuple[StopLineGeometry, ...] = ()  # lines beside `line` the same step crossed: the vehicle was on them too


class StopLineCounter:
    """Per frame: which tracks crossed which stop lines since the previous frame.

    `to_road` (the camera's `Homography.to_road`) turns image points into road metres for joining a new track
    to a vanished one; without it no tracks are joined. `on_approach(point)` says whether an image point lies on
    an approach (upstream of its stop lines); a track that appears there is joined to none."""

    def __init__(self, lines: list[StopLineGeometry], to_road=None, on_approach=None):
        self.lines = lines
        self.to_road = to_road
        self.on_approach = on_approach
        #: stop line name -> the names of the lines beside it (its own included): a track counts on one of them
        self.beside: dict[str, set[str]] = {
            ln.name: {o.name for o in lines if o is ln or (o.approach == ln.approach and ln.meets(o))} for ln in lines}
        self._last: dict[int, tuple[float, np.ndarray]] = {}
        self._crossed: dict[int, set[str]] = {}  # track id -> the stop lines it has crossed, or one beside them

    def update(self, time_s: float, anchors: dict[int, np.ndarray]) -> list[LineCrossing]:
        """The new crossings since the previous frame, at most one per track and group of lines beside each other."""
        out = []
        new = {tid: q for tid, q in anchors.items() if tid not in self._last}
        joined = self._join(time_s, new) if new else {}
        for tid, q in anchors.items():
            prev = self._last.get(tid)
            was_joined = prev is None and tid in joined
            if was_joined:
                prev = self._last.pop(joined[tid])  # the vanished track lives on as this one: never joined again
                inherited = self._crossed.pop(joined[tid], None)  # ... with the lines it crossed
                if inherited:
                    self._crossed[tid] = inherited
            self._last[tid] = (time_s, q)
            if prev is None:
                continue
            t0, p = prev
            crossed = self._crossed.get(tid, set())
            hits = []  # (how far beyond the drawn line, file order, line, fraction, point)
            for k, line in enumerate(self.lines):
                if line.name in crossed:
                    continue
                f = line.crossing_fraction(p, q)
                if f is not None:
                    point = p + f * (q - p)
                    hits.append((line.drawn_distance_px(point), k, line, f, point))
            for _, _, line, f, point in sorted(hits, key=lambda h: h[:2]):
                if line.name in crossed:
                    continue  # a line beside one this step already counted
                group = self.beside[line.name]
                crossed.update(group)
                also = tuple(h[2] for h in hits if h[2] is not line and h[2].name in group)
                out.append(LineCrossing(line, tid, t0 + f * (time_s - t0), point, was_joined, also))
            if crossed:
                self._crossed[tid] = crossed
        return out

    def _join(self, time_s: float, new: dict[int, np.ndarray]) -> dict[int, int]:
        """New track -> the vanished track it continues over a stop line that one had not crossed, nearest first."""
        if self.to_road is None:
            return {}
        gone = [(tid, t, p) for tid, (t, p) in self._last.items() if t < time_s and time_s - t <= STITCH_S]
        if not gone:
            return {}
        new_ids = [k for k, q in new.items() if self.on_approach is None or not self.on_approach(q)]
        if not new_ids:
            return {}
        a = self.to_road(np.asarray([new[k] for k in new_ids], float).reshape(-1, 2))
        b = self.to_road(np.asarray([p for _, _, p in gone], float).reshape(-1, 2))
        pairs = []
        for j, (old, t, p) in enumerate(gone):
            reach = (time_s - t) * STITCH_MPS + STITCH_SLACK_M
            for i, tid in enumerate(new_ids):
                d = float(np.hypot(*(a[i] - b[j])))
                if d <= reach and any(ln.name not in self._crossed.get(old, ()) and ln.crossing_fraction(p, new[tid])
                                      is not None for ln in self.lines):
                    pairs.append((d, i, j))
        out: dict[int, int] = {}
        used: set[int] = set()
        for _, i, j in sorted(pairs):
            if new_ids[i] in out or j in used:
                continue
            out[new_ids[i]] = gone[j][0]
            used.add(j)
        return out

    def forget(self, track_ids) -> None:
        """Drop tracks no longer followed, with the lines they crossed: a long run keeps only the tracks in view."""
        for tid in track_ids:
            self._last.pop(tid, None)
            self._crossed.pop(tid, None)
