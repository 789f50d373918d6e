"""Road arms and their lane direction, from the camera's own zones and stop lines; closing along the lane.

A blob mask needs closing: a vehicle seen by differencing comes in parts
(dark windows, a roof the colour of the road). A round kernel big enough to
join those parts also joins two vehicles side by side in adjacent lanes,
whose gap is about a metre (a 3.2 m lane, a 1.8 m car). Along the lane the
parts of one vehicle are centimetres to a metre apart, while queued vehicles
keep 2 m or more. So on each road arm the mask is closed with a line along
the lane, `join_m` long, and across the lane not at all; off the arms (the
junction, where vehicles turn) with a small round kernel.

An arm is an approach zone of the camera file, widened across the lane by
its own width on either side (the lanes leaving the junction run beside the
approach) and drawn on from the stop line to the edge of the frame; its
direction is from the zone's centre to its approach's stop lines. A camera
file without zones has no arms: everything is closed with the round kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .masks import keep_thick

#: far enough to reach the frame's edge from any stop line (pixels)
ARM_REACH_PX = 10_000.0


@dataclass(frozen=True)
class RoadArm:
    name: str
    region_px: np.ndarray  # (N, 2) convex polygon, full-frame pixels
    direction: np.ndarray  # unit image vector along the lane (towards the stop line)
    px_per_m: float  # image pixels per road metre along the lane, at the zone's centre


def _unit(v: np.ndarray) -> np.ndarray | None:
    n = float(np.hypot(*v))
    return None if n < 1e-9 else np.asarray(v, float) / n


def road_arms(camera) -> list[RoadArm]:
    """One arm per zone of `camera` (a CameraConfig) whose direction can be told."""
    arms = []
    hom = camera.homography
    for zone in camera.zones:
        poly = np.asarray(zone.px, float).reshape(-1, 2)
        centre = poly.mean(axis=0)
        ends = [np.asarray(s.px, float) for s in camera.stop_lines if s.approach == zone.approach]
        if ends:
            u = _unit(np.concatenate(ends).mean(axis=0) - centre)
        else:  # no stop line: the zone's longer principal axis
            _, vecs = np.linalg.eigh(np.cov((poly - centre).T))
            u = _unit(vecs[:, -1])
        if u is None:
            continue
        n = np.array([-u[1], u[0]])
        across = (poly - centre) @ n
        width = float(across.max() - across.min())
        side = [poly + width * n, poly - width * n]
        upstream = [p - ARM_REACH_PX * u for p in side]
        hull = cv2.convexHull(np.concatenate([poly, *side, *upstream]).astype(np.float32)).reshape(-1, 2)
        a, b = hom.to_road(np.stack([centre, centre + u]))
        metres = float(np.hypot(*(b - a)))
        if metres <= 0 or not np.isfinite(metres):
            continue
        arms.append(RoadArm(zone.name, hull, u, 1.0 / metres))
    return arms


def line_kernel(direction: np.ndarray, length_px: int) -> np.ndarray:
    """A one-pixel-thin line of `length_px` pixels through the centre of a square kernel, along `direction`."""
    length_px = max(1, int(length_px))
    size = length_px if length_px % 2 else length_px + 1
    k = np.zeros((size, size), np.uint8)
    c = (size - 1) / 2
    half = (length_px - 1) / 2
    p0 = np.round([c - half * direction[0], c - half * direction[1]]).astype(int)
    p1 = np.round([c + half * direction[0], c + half * direction[1]]).astype(int)
    cv2.line(k, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), 1, 1)
    return k


class LaneCloser:
    """`close(mask, scale)`: along the lane on every arm, with a small round kernel elsewhere; then the parts
    thinner than `min_width_m` on the road dropped (`masks.keep_thick`, at each arm's own scale: under
    perspective a metre is fewer pixels far away). Off the arms the scale is the arms' median."""

    def __init__(self, arms: list[RoadArm], *, join_m: float = 1.0, round_px: int = 5, min_width_m: float = 0.0):
        self.arms = arms
        self.join_m = join_m
        self.round_px = round_px
        self.min_width_m = min_width_m
        self.junction_px_per_m = float(np.median([a.px_per_m for a in arms])) if arms else 0.0
        self._cache: dict[tuple[int, int, float], tuple[list, np.ndarray]] = {}

    def _plan(self, shape: tuple[int, int], scale: float):
        key = (shape[0], shape[1], scale)
        if key not in self._cache:
            parts = []
            off_arms = np.full(shape, 255, np.uint8)
            for arm in self.arms:
                region = np.zeros(shape, np.uint8)
                cv2.fillConvexPoly(region, np.round(arm.region_px * scale).astype(np.int32), 255)
                region = cv2.bitwise_and(region, off_arms)  # arms that overlap: the first one's direction
                if not region.any():
                    continue
                off_arms = cv2.bitwise_and(off_arms, cv2.bitwise_not(region))
                parts.append((region, line_kernel(arm.direction, round(self.join_m * arm.px_per_m * scale)),
                              math.ceil(self.min_width_m * arm.px_per_m * scale)))
            self._cache[key] = (parts, off_arms)
        return self._cache[key]

    def close(self, mask: np.ndarray, scale: float = 1.0) -> np.ndarray:
        parts, off_arms = self._plan(mask.shape[:2], scale)
        out = np.zeros_like(mask)
        if off_arms.any():
            off = mask
            if self.round_px > 1:
                kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (self.round_px, self.round_px))
                off = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
            off = keep_thick(cv2.bitwise_and(off, off_arms), math.ceil(self.min_width_m * self.junction_px_per_m
                                                                         * scale))
            out = off
        for region, kernel, thick_px in parts:
            part = cv2.bitwise_and(cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel), region)
            out = cv2.bitwise_or(out, keep_thick(part, thick_px))
        return out
