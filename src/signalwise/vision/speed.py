"""Speed from tracked road positions, fitted over a window of at least 1 s.

Positions from boxes jitter by a few pixels frame to frame; differencing two
frames turns that into metres per second of noise. A least-squares fit
through every position of the last `window_s` averages it out. A straight
line gives the mean speed over the window, which lags a braking vehicle by
half the window (2 m/s at 4.5 m/s² over 1 s); a parabola (`fit="quadratic"`,
the default) gives the speed at the newest frame. On the synthetic scene
(`bench/vision_throughput.py --speed`) the 1.5 s parabola's RMSE was 0.33 m/s
against 0.94 m/s for a 1 s line.
A track whose straight-line speed is below `STANDSTILL_MPS` stands (0 m/s),
so jitter does not give a queue a speed. A track gets a speed only once its
positions span the window.

The parabola's derivative is taken along the window's direction of travel: a
vehicle that stops hard leaves a parabola curving back past its standing
point, whose speed backwards is no speed (read as 0, not as 4 m/s for the
second after it stood).

A speeding call does not rest on these per-frame speeds but on `span_speed`:
the mean speed over a span of road positions (a straight line fitted to
position against time, as a speed trap times a vehicle over a known
distance), with its uncertainty from a model of how well a position is known
(a pixel's size on the road and a box centre's jitter) when the residuals
agree with it, else from the residuals themselves.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

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
        #: track -> its mean speed over its last window
        self._window: dict[int, float] = {}

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
        if mean_speed < STANDSTILL_MPS:
            self._window[track_id] = 0.0
            return 0.0
        self._window[track_id] = mean_speed
        if self.fit == "linear" or len(a) < 5:
            return mean_speed
        tn = a[:, 0] - time_s
        cx = np.polyfit(tn, a[:, 1], 2)
        cy = np.polyfit(tn, a[:, 2], 2)
        # the fitted velocity at the newest frame; against the window's direction of travel it is a parabola that
        # curves back past where a vehicle stopped: no speed (0), not the speed of going backwards
        if cx[1] * vx + cy[1] * vy <= 0:
            return 0.0
        return float(math.hypot(cx[1], cy[1]))

    def mean_speed(self, track_id: int) -> float:
        """The track's mean speed over its last window (the straight-line fit through every position in it; NaN
        before it spans one): what a red-light call reports. The parabola's speed at the newest frame rests on
        that frame's box, which a detector that boxed half the vehicle there moves by a metre or more."""
        return self._window.get(track_id, math.nan)

    def forget(self, now_s: float) -> None:
        """Drop tracks not seen for `forget_s`."""
        for tid in [k for k, t in self._seen.items() if now_s - t > self.forget_s]:
            self._tracks.pop(tid, None)
            self._seen.pop(tid, None)
            self._window.pop(tid, None)


#: the one-sided confidence of a span speed's lower bound (`SpanSpeed.lower_mps`)
SPAN_CONFIDENCE = 0.999
#: the fewest positions a span speed is fitted to (3 degrees of freedom left for its uncertainty)
SPAN_MIN_POSITIONS = 5
#: how far a box's centre strays from the vehicle's along its travel, px (standard deviation): the noise model of a
#: position (`position_noise_m`). On the vision bench's top-down view (6 px/m, 5 frames/s) the positions of moving
#: tracks scattered about parabolas fitted over 2 s by 0.45 px (median), 1.0 px (90th percentile) and 1.9 px (99th),
#: the sample standard deviations of 11 positions each: the model is above nearly all of them, and a span whose
#: residuals exceed it (`NOISE_MODEL_CHECK`) is measured by its residuals alone.
BOX_JITTER_PX = 2.0
#: the probability at which a span's residuals are found larger than the noise model (chi-square, upper tail)
NOISE_MODEL_CHECK = 0.999


def position_noise_m(pixel_m: float, jitter_px: float = BOX_JITTER_PX) -> float:
    """The standard deviation of a road position along the travel, m: a pixel's size on the road (`pixel_m`) times
    its quantisation (1/sqrt(12) px) and a box centre's jitter (`jitter_px`) added in quadrature."""
    return pixel_m * math.sqrt(1.0 / 12.0 + jitter_px ** 2)


@dataclass(frozen=True)
class SpanSpeed:
    """A vehicle's mean speed over a span of its road positions, as a speeding call states it."""

    speed_mps: float  # the slope of the straight line fitted to position against time
    uncertainty_mps: float  # `SPAN_CONFIDENCE` one-sided: z (noise model) or Student's t times the slope's standard error
    start_s: float  # the span's first position
    end_s: float  # and its last
    distance_m: float  # the fitted distance over the span (speed x duration)
    positions: int
    confidence: float = SPAN_CONFIDENCE  # of `lower_mps`, one-sided

    @property
    def lower_mps(self) -> float:
        """The speed the vehicle went at least, at `SPAN_CONFIDENCE`: what a call must find over the threshold."""
        return self.speed_mps - self.uncertainty_mps

    def describe(self) -> str:
        """One line for an evidence image: the speed, its uncertainty and the span it was measured over."""
        return (f"{self.speed_mps:.2f} +/- {self.uncertainty_mps:.2f} m/s over {self.distance_m:.1f} m, "
                f"{self.start_s:.2f}-{self.end_s:.2f} s ({self.positions} positions)")


def span_speed(samples: Sequence[tuple[float, float, float]], confidence: float = SPAN_CONFIDENCE,
               position_sd_m: float = 0.0, noise_sd_m: float = 0.0) -> SpanSpeed | None:
    """The mean speed over `samples` ((time_s, x_m, y_m), in time order): a least-squares line through x and y
    against time, whose slope is the speed; None with fewer than `SPAN_MIN_POSITIONS` or no time between them.

    Its uncertainty is the slope's standard error times a one-sided quantile, from the positions' scatter along
    the direction of travel (box jitter, pixel steps, a frame's late timestamp and a speed that changed within
    the span all show there), by two bounds:

    - from the residuals alone, times Student's t (n - 2 degrees of freedom, so few positions widen it: 8.6 at
      6 positions, a second at 5 frames/s);
    - from a noise model (`noise_sd_m`, `position_noise_m`: how far a position strays, known from the pixel's
      size on the road), times the normal's quantile: the model is known, not estimated from a handful of
      positions. Only when the residuals agree with it (their variance no larger than the model's chi-square
      bound at `NOISE_MODEL_CHECK`; a box that changed shape or a speed that changed within the span does not),
      and with the residuals' spread when larger.

    The narrower is the uncertainty, each taken at (1 + `confidence`) / 2 so that the narrower holds at
    `confidence` (Bonferroni): the model narrows few positions of a steady track, the residuals many positions
    of a track steadier than the model. The residuals' spread is taken as at least `position_sd_m`, how well a
    position can be known at all (a pixel's size on the road / sqrt(12)): positions that happen to fall on a
    straight line (a vehicle moving a whole number of pixels a frame) do not make a speed exact. Written here
    rather than taken from a library: numpy's `polyfit(cov=True)` scales the covariance per axis and gives no
    one-sided bound on the speed, which is the number a call rests on."""
    n = len(samples)
    if n < SPAN_MIN_POSITIONS:
        return None
    a = np.asarray(samples, dtype=float)[:, :3]
    t = a[:, 0] - a[:, 0].mean()
    stt = float(t @ t)
    if stt <= 0:
        return None
    dx, dy = a[:, 1] - a[:, 1].mean(), a[:, 2] - a[:, 2].mean()
    vx, vy = float(t @ dx) / stt, float(t @ dy) / stt
    speed = math.hypot(vx, vy)
    if speed > 0:
        along = (dx - vx * t) * (vx / speed) + (dy - vy * t) * (vy / speed)
    else:
        along = np.hypot(dx, dy)
    # the t and chi-square distributions alone (scipy.stats costs a second to import)
    from scipy.special import chdtri, ndtri, stdtrit

    df = n - 2
    s2 = float(along @ along) / df
    model2 = noise_sd_m ** 2
    if model2 <= 0:
        uncertainty = float(stdtrit(df, confidence)) * math.sqrt(max(s2, position_sd_m ** 2) / stt)
    else:
        each = (1.0 + confidence) / 2.0
        uncertainty = float(stdtrit(df, each)) * math.sqrt(max(s2, position_sd_m ** 2) / stt)
        if s2 <= model2 * float(chdtri(df, 1.0 - NOISE_MODEL_CHECK)) / df:
            uncertainty = min(uncertainty, float(ndtri(each)) * math.sqrt(max(s2, model2, position_sd_m ** 2) / stt))
    duration = float(a[-1, 0] - a[0, 0])
    return SpanSpeed(speed, uncertainty, float(a[0, 0]), float(a[-1, 0]), speed * duration, n, confidence)
