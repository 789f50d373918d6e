"""Image pixels -> road metres: a homography from at least 4 surveyed point pairs (`cv2.findHomography`).

A single metres-per-pixel scale is wrong under perspective (a far vehicle
covers fewer pixels per metre than a near one); a plane-to-plane homography
is exact for points on a flat road. Refused, with the reason, when it cannot
be trusted: fewer than 4 pairs, points that are not finite or repeat, all
points on one line (or no 4 of them with no 3 on a line), a fit that is
near-singular, or one that folds the image over the horizon between the
surveyed points. Road points that span under a metre or over 2 km are
not a road survey in metres (degrees of latitude and longitude, or
millimetres): refused too, since speeds and the detector's kernels in
metres would be off by orders of magnitude.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

#: a triangle of surveyed points thinner than this share of the spread squared is a line
COLLINEAR_SHARE = 1e-3
#: a normalised homography whose condition number passes this is numerically singular
MAX_CONDITION = 1e7
#: surveyed road points of one camera span at least this much (a lane is over 3 m wide) ...
MIN_SURVEY_SPAN_M = 1.0
#: ... and at most this much: a camera sees a few hundred metres of road
MAX_SURVEY_SPAN_M = 2000.0


class CalibrationError(ValueError):
    """The calibration cannot be used: one line saying why."""


def _spread(points: np.ndarray) -> float:
    return float(np.ptp(points, axis=0).max()) if len(points) else 0.0


def _collinear(a, b, c, spread: float) -> bool:
    area2 = abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))
    return area2 < COLLINEAR_SHARE * spread * spread


def _general_position(points: np.ndarray) -> bool:
    """True when some 4 of the points have no 3 on a line (what a homography needs)."""
    spread = _spread(points)
    n = len(points)
    bad = {t for t in itertools.combinations(range(n), 3) if _collinear(*points[list(t)], spread)}
    if len(points) > 12:  # plenty of points: enough that not all triples are thin
        return len(bad) < len(list(itertools.combinations(range(n), 3)))
    return any(not any(t in bad for t in itertools.combinations(q, 3)) for q in itertools.combinations(range(n), 4))


def _normalised_condition(H: np.ndarray, src: np.ndarray, dst: np.ndarray) -> float:
    """Condition number of H once both point sets are centred and scaled to unit spread."""
    def norm(p):
        c = p.mean(axis=0)
        s = max(_spread(p), 1e-12)
        return np.array([[1 / s, 0, -c[0] / s], [0, 1 / s, -c[1] / s], [0, 0, 1]])
    Hn = norm(dst) @ H @ np.linalg.inv(norm(src))
    return float(np.linalg.cond(Hn))


@dataclass(frozen=True, eq=False)
class Homography:
    """`to_road(px)` maps image pixels (N, 2) to road metres (N, 2); `to_image` goes back."""

    matrix: np.ndarray  # 3x3, pixels -> metres
    rms_error_m: float  # residual of the surveyed points after the fit

    @classmethod
    def from_pairs(cls, px, m, where: str = "calibration") -> Homography:
        try:
            src = np.asarray(px, np.float64).reshape(-1, 2)
            dst = np.asarray(m, np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            raise CalibrationError(f"{where}: each pair needs px [x, y] and m [x, y] numbers") from None
        if len(src) != len(dst):
            raise CalibrationError(f"{where}: {len(src)} pixel points but {len(dst)} road points")
        if len(src) < 4:
            raise CalibrationError(f"{where}: {len(src)} point pair(s); a homography needs at least 4")
        if not (np.isfinite(src).all() and np.isfinite(dst).all()):
            raise CalibrationError(f"{where}: points must be finite numbers")
        for name, pts in (("px", src), ("m", dst)):
            uniq = np.unique(pts.round(6), axis=0)
            if len(uniq) < len(pts):
                raise CalibrationError(f"{where}: two pairs have the same {name} point")
            if not _general_position(pts):
                raise CalibrationError(f"{where}: the {name} points are degenerate: all on one line, or no 4 of "
                                       "them with no 3 on a line (survey points spread over the road, not along "
                                       "one line)")
        span_m = _spread(dst)
        if not MIN_SURVEY_SPAN_M <= span_m <= MAX_SURVEY_SPAN_M:
            raise CalibrationError(f"{where}: the m points span {span_m:g}, not road metres (a survey spans "
                                   f"{MIN_SURVEY_SPAN_M:g} m to {MAX_SURVEY_SPAN_M:g} m): give m in metres, not "
                                   "degrees or millimetres")
        H, _ = cv2.findHomography(src, dst, 0)
        if H is None or not np.isfinite(H).all():
            raise CalibrationError(f"{where}: no homography fits these points (degenerate)")
        cond = _normalised_condition(H, src, dst)
        if cond > MAX_CONDITION:
            raise CalibrationError(f"{where}: the fitted homography is near-singular (condition number {cond:.2g})")
        w = (np.hstack([src, np.ones((len(src), 1))]) @ H.T)[:, 2]
        if (w > 0).any() and (w < 0).any():
            raise CalibrationError(f"{where}: degenerate: the fit puts the horizon between the surveyed points")
        mapped = cv2.perspectiveTransform(src[None], H)[0]
        rms = float(np.sqrt(np.mean(np.sum((mapped - dst) ** 2, axis=1))))
        return cls(H, rms)

    @property
    def inverse(self) -> np.ndarray:
        return np.linalg.inv(self.matrix)

    def to_road(self, points_px) -> np.ndarray:
        pts = np.asarray(points_px, np.float64).reshape(-1, 2)
        if not len(pts):
            return np.zeros((0, 2))
        return cv2.perspectiveTransform(pts[None], self.matrix)[0]

    def to_image(self, points_m) -> np.ndarray:
        pts = np.asarray(points_m, np.float64).reshape(-1, 2)
        if not len(pts):
            return np.zeros((0, 2))
        return cv2.perspectiveTransform(pts[None], self.inverse)[0]
