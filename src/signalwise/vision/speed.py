"""Speed from tracked road positions, fitted over a window of at least 1 s.

Positions from boxes jitter by a few pixels frame to frame; differencing two
frames turns that into metres per second of noise. A least-squares fit
through every position of the last `window_s` averages it out. A straight
line gives the mean speed over the window, which lags a braking vehicle by
half the window (2 m/s at 4.5 m/s² over 1 s); a parabola (`fit="quadratic"`,
the default) gives the speed at the newest frame. On the synthetic scene
(`bench/vision_throughput.py --speed`) the 1.5 s parabola's RMSE was 0.37 m/s
against 0.94 m/s for a 1 s line.
A track whose straight-line speed is below `STANDSTILL_MPS` stands (0 m/s),
so jitter does not give a queue a speed. A track gets a speed only once its
positions span the window.

The fit also says how fast the vehicle went through its window
(`over_window`): a vehicle first seen already speeding has been over the
threshold since the window began when its first speed comes, not from that
moment on, so a rule that wants it sustained need not wait another second.
The window counts as over when the fitted speed stayed above the threshold
all through it, or when it began above and the mean speed over the window
is above too: a vehicle that comes into view over the limit and brakes for
a queue within a second or two has no window all over by its first speed
(the track starts a frame or two after the vehicle shows, and its first
speed waits for the window), yet on a steady deceleration it was over for
at least half the window (0.75 s of 1.5 s) after it was first seen, and for
longer before.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

MIN_WINDOW_S = 1.0
#: below this straight-line speed over the window a vehicle stands still
STANDSTILL_MPS = 0.5


class SpeedEstimator:
    """`add(track_id, time_s, x_m, y_m)` -> speed in m/s (NaN until the track spans `window_s`)."""

    def __init__(self, window_s: float = 1.5, forget_s: float = 5.0, fit: str = "quadratic"):
        if window_s < MIN_WINDOW_S:
            raise ValueError(f"window_s must be at least {MIN_WINDOW_S:g} s (shorter windows turn pixel jitter "
                             "into speed)")
        if fit not in ("linear", "quadratic"):
            raise ValueError("fit is 'linear' or 'quadratic'")
        self.window_s, self.forget_s, self.fit = window_s, forget_s, fit
        self._tracks: dict[int, deque[tuple[float, float, float]]] = {}
        self._seen: dict[int, float] = {}
        #: track -> (window start s, mean speed over it, fitted speed at its start, slowest fitted speed in it)
        self._window: dict[int, tuple[float, float, float, float]] = {}

    def add(self, track_id: int, time_s: float, x_m: float, y_m: float) -> float:
        q = self._tracks.setdefault(track_id, deque())
        q.append((time_s, x_m, y_m))
        self._seen[track_id] = time_s
        while len(q) > 2 and q[1][0] <= time_s - self.window_s:
            q.popleft()  # keep the newest sample at least a window old, and everything after it
        if time_s - q[0][0] < self.window_s - 1e-6:
            return math.nan
        a = np.asarray(q)
        t = a[:, 0] - a[:, 0].mean()
        denom = float(t @ t)
        if denom <= 0:
            return math.nan
        vx = float(t @ (a[:, 1] - a[:, 1].mean())) / denom
        vy = float(t @ (a[:, 2] - a[:, 2].mean())) / denom
        mean_speed = math.hypot(vx, vy)
        start = float(a[0, 0])
        if mean_speed < STANDSTILL_MPS:
            self._window[track_id] = (start, 0.0, 0.0, 0.0)
            return 0.0
        if self.fit == "linear" or len(a) < 5:
            self._window[track_id] = (start, mean_speed, mean_speed, mean_speed)
            return mean_speed
        tn = a[:, 0] - time_s
        cx = np.polyfit(tn, a[:, 1], 2)
        cy = np.polyfit(tn, a[:, 2], 2)
        along = np.linspace(float(tn[0]), 0.0, 7)  # the fitted speed through the window
        fitted = np.hypot(2 * cx[0] * along + cx[1], 2 * cy[0] * along + cy[1])
        self._window[track_id] = (start, mean_speed, float(fitted[0]), float(fitted.min()))
        return float(fitted[-1])  # the derivative at the newest frame

    def mean_speed(self, track_id: int) -> float:
        """The track's mean speed over its last window (the straight-line fit through every position in it; NaN
        before it spans one): what a red-light call reports. The parabola's speed at the newest frame rests on
        that frame's box, which a detector that boxed half the vehicle there moves by a metre or more."""
        w = self._window.get(track_id)
        return math.nan if w is None else w[1]

    def over_window(self, track_id: int, threshold_mps: float) -> tuple[float, float] | None:
        """(start of the track's last window, its mean speed) if the vehicle was over `threshold_mps` through it:
        its fitted speed above it all through, or above at the start and the mean above too; else None."""
        w = self._window.get(track_id)
        if w is None:
            return None
        start, mean, first, slowest = w
        if slowest > threshold_mps or (first > threshold_mps and mean > threshold_mps):
            return start, mean
        return None

    def forget(self, now_s: float) -> None:
        """Drop tracks not seen for `forget_s`."""
        for tid in [k for k, t in self._seen.items() if now_s - t > self.forget_s]:
            self._tracks.pop(tid, None)
            self._seen.pop(tid, None)
            self._window.pop(tid, None)
