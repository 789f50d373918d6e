"""Stop-line crossings: a track's road point passing from the upstream side of a stop line to the other.

The upstream side is where the approach's zone lies (a zone of the same
approach in the camera file); a stop line with no such zone counts crossings
either way. Each track crosses each stop line once. The crossing time is
interpolated between the two frames on either side of the line. A forgotten
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

import numpy as np

#: a stop line is lengthened by this share at each end, so a vehicle at the kerb still crosses it
END_MARGIN = 0.05
#: a new track is joined to one that vanished at most this long before (a vehicle lost on the crosswalk)
STITCH_S = 4.0
#: ... and at most this fast in between, plus `STITCH_SLACK_M` (road metres): a queue leaves well below it
STITCH_MPS = 10.0
STITCH_SLACK_M = 3.0


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
        self.a, self.b = a - END_MARGIN * d, b + END_MARGIN * d
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
        p = np.asarray(p, float)
        s = self.b - self.a
        u = float(np.clip(np.dot(p - self.a, s) / max(float(np.dot(s, s)), 1e-12), 0, 1))
        return float(np.linalg.norm(p - (self.a + u * s)))


class StopLineCounter:
    """Per frame: which tracks crossed which stop lines since the previous frame.

    `to_road` (the camera's `Homography.to_road`) turns image points into road metres for joining a new track
    to a vanished one; without it no tracks are joined. `on_approach(point)` says whether an image point lies on
    an approach (upstream of its stop lines); a track that appears there is joined to none."""

    def __init__(self, lines: list[StopLineGeometry], to_road=None, on_approach=None):
        self.lines = lines
        self.to_road = to_road
        self.on_approach = on_approach
        self._last: dict[int, tuple[float, np.ndarray]] = {}
        self._crossed: dict[int, set[str]] = {}  # track id -> the stop lines it has crossed

    def update(self, time_s: float, anchors: dict[int, np.ndarray]
               ) -> list[tuple[StopLineGeometry, int, float, np.ndarray, bool]]:
        """(line, track id, crossing time, crossing point, joined) for each new crossing; `joined`: on the path
        from a vanished track to the new one that continues it, so nobody saw the vehicle on the line."""
        out = []
        new = {tid: q for tid, q in anchors.items() if tid not in self._last}
        joined = self._join(time_s, new) if new else {}
        for tid, q in anchors.items():
            prev = self._last.get(tid)
            was_joined = prev is None and tid in joined
            if was_joined:
                prev = self._last.pop(joined[tid])  # the vanished track lives on as this one: never joined again
                self._crossed.setdefault(tid, set()).update(self._crossed.get(joined[tid], ()))
            self._last[tid] = (time_s, q)
            if prev is None:
                continue
            t0, p = prev
            for line in self.lines:
                if line.name in self._crossed.get(tid, ()):
                    continue
                f = line.crossing_fraction(p, q)
                if f is None:
                    continue
                self._crossed.setdefault(tid, set()).add(line.name)
                out.append((line, tid, t0 + f * (time_s - t0), p + f * (q - p), was_joined))
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
