"""Camera views of the network plane: which pixel sees which road metre.

A rendered frame is a picture of a flat world, so every view is exactly a
homography from network metres (SUMO's x, y) to image pixels. The top-down
view is sumo-gui's own screenshot: a scale and a flip of y. An oblique view
warps that screenshot by a second, known homography, so the truth of every
vehicle follows by composing the two; nothing is estimated.

Pixel coordinates follow OpenCV: pixel (i, j) has its centre at (i, j), so a
point at the left edge of the image has x = -0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraView:
    """One camera: a name, its frame size and the homography from network metres to its pixels."""

    name: str
    width_px: int
    height_px: int
    net_to_px: np.ndarray  # 3x3
    #: the homography from the top-down screenshot to this view's frame (identity for the top-down view)
    warp_from_topdown: np.ndarray

    def to_px(self, xy_m) -> np.ndarray:
        """Network metres (N x 2) -> pixels (N x 2)."""
        return apply_homography(self.net_to_px, xy_m)

    def to_m(self, xy_px) -> np.ndarray:
        """Pixels (N x 2) -> network metres (N x 2)."""
        return apply_homography(np.linalg.inv(self.net_to_px), xy_px)

    def inside(self, xy_px, margin_px: float = 0.0) -> np.ndarray:
        p = np.atleast_2d(np.asarray(xy_px, dtype=float))
        return ((p[:, 0] >= -0.5 + margin_px) & (p[:, 0] <= self.width_px - 0.5 - margin_px)
                & (p[:, 1] >= -0.5 + margin_px) & (p[:, 1] <= self.height_px - 0.5 - margin_px))

    def warp(self, topdown_frame: np.ndarray) -> np.ndarray:
        """This view's frame from a top-down screenshot (the screenshot itself for the top-down view)."""
        if np.allclose(self.warp_from_topdown, np.eye(3)):
            return topdown_frame
        import cv2

        return cv2.warpPerspective(topdown_frame, self.warp_from_topdown, (self.width_px, self.height_px),
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def apply_homography(h: np.ndarray, xy) -> np.ndarray:
    p = np.atleast_2d(np.asarray(xy, dtype=float))
    q = np.c_[p, np.ones(len(p))] @ np.asarray(h, dtype=float).T
    return q[:, :2] / q[:, 2:3]


def topdown_view(boundary: tuple[float, float, float, float], width_px: int, height_px: int,
                 name: str = "topdown") -> CameraView:
    """The view sumo-gui shows when its visible boundary is (xmin, ymin, xmax, ymax) on a width x height image."""
    xmin, ymin, xmax, ymax = boundary
    sx = width_px / (xmax - xmin)
    sy = height_px / (ymax - ymin)
    if abs(sx - sy) > 1e-3 * max(sx, sy):
        raise ValueError(f"view boundary {boundary} and image {width_px}x{height_px} have different aspect ratios")
    h = np.array([[sx, 0.0, -xmin * sx - 0.5],
                  [0.0, -sy, ymax * sy - 0.5],
                  [0.0, 0.0, 1.0]])
    return CameraView(name, width_px, height_px, h, np.eye(3))


def oblique_view(topdown: CameraView, tilt: float = 0.35, name: str = "oblique") -> CameraView:
    """A camera looking at the scene from its bottom edge: the far (top) edge of the top-down frame shrinks.

    `tilt` is how much narrower the far edge becomes (0 = top-down, 0.35 =
    the far edge spans 65 % of the width and the far half is foreshortened),
    which is what a pole-mounted camera a few tens of metres back sees. The
    frame keeps the top-down frame's size.
    """
    if not 0.0 < tilt < 0.9:
        raise ValueError(f"tilt must be in (0, 0.9), not {tilt}")
    import cv2

    w, h = topdown.width_px, topdown.height_px
    src = np.float32([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
    inset = tilt * w / 2
    top = 0.12 * h  # the sky above the far edge stays black, as above a horizon
    dst = np.float32([[-0.5 + inset, top], [w - 0.5 - inset, top], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
    warp = cv2.getPerspectiveTransform(src, dst).astype(float)
    return CameraView(name, w, h, warp @ topdown.net_to_px, warp)


def box_corners_m(front_xy_m, angle_deg: float, length_m: float, width_m: float) -> np.ndarray:
    """The four ground corners of a vehicle from SUMO's pose: front-bumper centre, heading (0 = north, clockwise)."""
    a = np.radians(angle_deg)
    ahead = np.array([np.sin(a), np.cos(a)])
    left = np.array([-np.cos(a), np.sin(a)])
    front = np.asarray(front_xy_m, dtype=float)
    back = front - ahead * length_m
    half = left * width_m / 2
    return np.array([front + half, front - half, back - half, back + half])


def pixel_box(view: CameraView, corners_m: np.ndarray) -> tuple[float, float, float, float, float]:
    """The axis-aligned pixel box of ground corners, clipped to the frame, and the share of it inside the frame."""
    p = view.to_px(corners_m)
    x1, y1 = p.min(axis=0)
    x2, y2 = p.max(axis=0)
    cx1, cy1 = max(x1, -0.5), max(y1, -0.5)
    cx2, cy2 = min(x2, view.width_px - 0.5), min(y2, view.height_px - 0.5)
    area = max(x2 - x1, 1e-9) * max(y2 - y1, 1e-9)
    inside = max(cx2 - cx1, 0.0) * max(cy2 - cy1, 0.0)
    return cx1, cy1, cx2, cy2, inside / area


def boxes_corners_m(front_xy_m: np.ndarray, angle_deg: np.ndarray, length_m: np.ndarray,
                    width_m: np.ndarray) -> np.ndarray:
    """`box_corners_m` for N vehicles at once: (N, 4, 2)."""
    a = np.radians(np.asarray(angle_deg, dtype=float))
    ahead = np.stack([np.sin(a), np.cos(a)], axis=1)
    left = np.stack([-np.cos(a), np.sin(a)], axis=1)
    front = np.asarray(front_xy_m, dtype=float).reshape(-1, 2)
    back = front - ahead * np.asarray(length_m, dtype=float)[:, None]
    half = left * (np.asarray(width_m, dtype=float)[:, None] / 2)
    return np.stack([front + half, front - half, back - half, back + half], axis=1)


def pixel_boxes(view: CameraView, corners_m: np.ndarray) -> np.ndarray:
    """`pixel_box` for N vehicles at once: (N, 5) of x1, y1, x2, y2 (clipped) and the share inside the frame."""
    n = len(corners_m)
    p = view.to_px(corners_m.reshape(-1, 2)).reshape(n, 4, 2)
    lo, hi = p.min(axis=1), p.max(axis=1)
    clo = np.maximum(lo, -0.5)
    chi = np.minimum(hi, [view.width_px - 0.5, view.height_px - 0.5])
    area = np.maximum(hi - lo, 1e-9).prod(axis=1)
    inside = np.clip(chi - clo, 0.0, None).prod(axis=1)
    return np.c_[clo, chi, inside / area]
