"""When a vehicle's front crossed a stop line, and whether it then went on into the junction on red.

The stop-line counter follows a track's anchor (`bottom`, `center` or
`front`), which can sit a whole vehicle behind its front bumper: the rear in
a top-down view of a vehicle driving up the image, the middle for `center`,
the middle again for `front` until the track has a direction. Timing a red
light by it calls a vehicle that entered on yellow. So the red light is
timed by the box's edge furthest downstream of the line (`front_px`): the
line's downstream side is the one its approach zone is not on (the side the
anchor crossed to, for a line without a zone). The crossing time is where
that edge last passed from the upstream side to the other, interpolated
between frames (`front_crossing`), searched back through the track's boxes
when its anchor crosses. A track whose front was already over the line in
its first kept box has no known front crossing: no red light is called.

In an oblique view a tall vehicle's box edge furthest along the direction of
travel is its roof, not its bumper, for a vehicle driving away from the
camera: it passes the line earlier than the bumper does, which calls fewer
vehicles, never more.

Entering the junction: a vehicle whose front crossed on red is called only
when it goes on a further `red_entry_m` (road metres, the camera's key) while
every link of the line still shows red, the second trigger of a red-light
camera. A vehicle that stops past the line and waits, then leaves on green,
is not called (`RedLightWatch`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .stoplines import StopLineGeometry

#: one kept frame of a track: (time_s, x1, y1, x2, y2 box pixels, x_m, y_m of a point steady on the box)
BoxSample = tuple[float, float, float, float, float, float, float]


def downstream_normal(line: StopLineGeometry, came_from_px) -> np.ndarray:
    """Unit image direction from the line's upstream side to the other: from its approach zone, else from the
    side `came_from_px` (the anchor before its crossing) lies on."""
    d = line.b - line.a
    perp = np.array([-d[1], d[0]], float) / max(float(np.hypot(*d)), 1e-12)  # the side a point is on: its sign
    upstream = line.upstream or float(np.sign(perp @ (np.asarray(came_from_px, float) - line.a))) or 1.0
    return -upstream * perp


def front_px(box, line: StopLineGeometry, normal: np.ndarray) -> float:
    """How far (pixels, along `normal`) the box's corner furthest downstream is past the line; < 0 before it."""
    x1, y1, x2, y2 = box
    corners = np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]], float)
    return float(((corners - line.a) @ normal).max())


@dataclass(frozen=True)
class FrontCrossing:
    time_s: float
    road_m: tuple[float, float]  # the track's steady road point at that time


def front_crossing(samples, line: StopLineGeometry, normal: np.ndarray) -> FrontCrossing | None:
    """The last time the box's front passed the line downstream, interpolated; None when the front was past it
    in every sample (it crossed before the first one: unknown when)."""
    ds = [front_px(s[1:5], line, normal) for s in samples]
    for k in range(len(samples) - 1, 0, -1):
        if ds[k - 1] < 0 <= ds[k]:
            f = -ds[k - 1] / (ds[k] - ds[k - 1])
            a, b = samples[k - 1], samples[k]
            return FrontCrossing(a[0] + f * (b[0] - a[0]), (a[5] + f * (b[5] - a[5]), a[6] + f * (b[6] - a[6])))
    return None


@dataclass
class Pending:
    """A front over the line on red, waiting to go `red_entry_m` further while the light is still red."""

    line: StopLineGeometry
    links: list[int]
    crossing: FrontCrossing
    chars: str  # the line's link characters at the front's crossing


class RedLightWatch:
    """Tracks whose front crossed on red: `entered(track_id, samples)` says when one has gone `entry_m` further.

    `still_red(t)` is asked at the time the track had gone that far: True (called), False (the light changed:
    dropped), None (the state is unknown there: dropped, not judged)."""

    def __init__(self, entry_m: float):
        self.entry_m = entry_m
        self._pending: dict[int, Pending] = {}

    def add(self, track_id: int, pending: Pending) -> None:
        self._pending[track_id] = pending

    def pending(self, track_id: int) -> Pending | None:
        return self._pending.get(track_id)

    def reached_s(self, track_id: int, samples) -> float | None:
        """The first kept time the track's steady point was `entry_m` from where it was at its front's crossing
        (None: not yet)."""
        p = self._pending.get(track_id)
        if p is None:
            return None
        x0, y0 = p.crossing.road_m
        for s in samples:
            if s[0] >= p.crossing.time_s and math.hypot(s[5] - x0, s[6] - y0) >= self.entry_m:
                return s[0]
        return None

    def drop(self, track_id: int) -> Pending | None:
        return self._pending.pop(track_id, None)

    def forget(self, track_ids) -> None:
        for tid in track_ids:
            self._pending.pop(tid, None)
