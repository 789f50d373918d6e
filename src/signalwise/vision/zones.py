"""Approach zones as virtual presence detectors: occupancy, vehicles inside, on/off events.

A zone is on while at least one tracked vehicle's road point is inside its
polygon: it turns on (hi-res 82) when the first enters and off (81) when the
last leaves, parameter = the zone's detector channel. Occupancy is the share
of the last `window_s` the zone was on, like a loop's; a vehicle inside whose
speed is below `STANDING_MPS` (or, before it has a speed, whose blob does not
move) is standing in the queue.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

#: slower than this a vehicle is standing (SUMO's halting threshold is 0.1 m/s; image speeds jitter more)
STANDING_MPS = 1.0


@dataclass(frozen=True, slots=True)
class ZoneState:
    """One zone now: whether it is on, how many vehicles are inside and how many stand, its occupancy."""

    name: str
    approach: str
    channel: int
    on: bool
    vehicles: int
    standing: int
    occupancy: float  # share of the last window the zone was on, 0..1
    mean_speed_mps: float  # of the vehicles inside with a speed (0 when none)
    idle_s: float  # 0 while on; seconds since it went off (inf before it was ever on)


class ZoneDetector:
    """One polygon; `update(time_s, points, speeds, moving)` returns 'on', 'off' or None."""

    def __init__(self, name: str, approach: str, channel: int, polygon_px, window_s: float = 30.0):
        self.name, self.approach, self.channel = name, approach, channel
        self.polygon = np.asarray(polygon_px, np.float32).reshape(-1, 1, 2)
        self.window_s = window_s
        self.on = False
        self._on_since: float | None = None
        self._last_off: float | None = None
        self._spans: deque[tuple[float, float]] = deque()  # closed on-periods inside the window
        self._inside: tuple[int, int, float] = (0, 0, 0.0)
        self._t = 0.0

    def contains(self, point) -> bool:
        return cv2.pointPolygonTest(self.polygon, (float(point[0]), float(point[1])), False) >= 0

    def centroid(self) -> np.ndarray:
        return self.polygon.reshape(-1, 2).mean(axis=0)

    def update(self, time_s: float, points: dict[int, np.ndarray], speeds: dict[int, float],
               moving: dict[int, bool]) -> str | None:
        self._t = time_s
        inside = [tid for tid, p in points.items() if self.contains(p)]
        known = [speeds[t] for t in inside if not math.isnan(speeds.get(t, math.nan))]
        standing = sum(1 for t in inside if (speeds.get(t, math.nan) < STANDING_MPS) or
                       (math.isnan(speeds.get(t, math.nan)) and not moving.get(t, True)))
        self._inside = (len(inside), standing, float(np.mean(known)) if known else 0.0)
        change = None
        if inside and not self.on:
            self.on, self._on_since, change = True, time_s, "on"
        elif not inside and self.on:
            self.on, change = False, "off"
            self._spans.append((self._on_since, time_s))
            self._last_off = time_s
            self._on_since = None
        while self._spans and self._spans[0][1] < time_s - self.window_s:
            self._spans.popleft()
        return change

    def occupancy(self, time_s: float) -> float:
        lo = time_s - self.window_s
        total = sum(max(0.0, min(b, time_s) - max(a, lo)) for a, b in self._spans)
        if self.on and self._on_since is not None:
            total += max(0.0, time_s - max(self._on_since, lo))
        return min(1.0, total / self.window_s) if self.window_s > 0 else float(self.on)

    def state(self, time_s: float | None = None) -> ZoneState:
        t = self._t if time_s is None else time_s
        n, standing, speed = self._inside
        idle = 0.0 if self.on else (math.inf if self._last_off is None else max(0.0, t - self._last_off))
        return ZoneState(self.name, self.approach, self.channel, self.on, n, standing, round(self.occupancy(t), 4),
                         round(speed, 3), idle)
