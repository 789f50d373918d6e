"""From a foreground mask to boxes: clean it (open, close), find its outer contours, keep big ones.

Shared by the moving and the standing blob detectors; they differ only in
how they decide which pixels are not road.
"""

from __future__ import annotations

import cv2
import numpy as np

from .detections import Detections


def working_scale(shape: tuple[int, ...], max_width_px: int | None) -> float:
    """The factor frames are shrunk by before blob detection (1.0 = full size)."""
    width = shape[1]
    return 1.0 if not max_width_px or width <= max_width_px else max_width_px / width


def shrink(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def clean(mask: np.ndarray, open_px: int = 3, close_px: int = 9, closer=None, scale: float = 1.0) -> np.ndarray:
    """Speckles out (opening), a vehicle's parts joined (closing: `closer.close(mask, scale)` when given, e.g.
    along the lanes (`lanes.LaneCloser`), else a round `close_px` kernel)."""
    if open_px > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (open_px, open_px)))
    if closer is not None:
        return closer.close(mask, scale)
    if close_px > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE,
                                cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (close_px, close_px)))
    return mask


def keep_thick(mask: np.ndarray, thickness_px: float) -> np.ndarray:
    """The mask without its thin parts: an opening with a disc `thickness_px` wide (what such a disc can reach
    while staying inside the mask).

    A vehicle is over a metre and a half wide; what changes in a thin line (a signal's lamp bar, a kerb's edge)
    is not, and would otherwise stand as a blob of its own or stretch the box of a vehicle it touches.
    """
    if thickness_px <= 1 or not mask.any():
        return mask
    thickness_px = int(thickness_px) | 1  # an even-sized ellipse is a thinner disc than its size says
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (thickness_px, thickness_px))
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, disc)


def boxes_from_mask(mask: np.ndarray, min_area_px: float, scale: float = 1.0, moving: bool = True,
                    frame_shape: tuple[int, ...] | None = None) -> Detections:
    """One box per outer contour of at least `min_area_px` (full-frame pixels); confidence = the box's fill."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    boxes, conf = [], []
    min_small = min_area_px * scale * scale
    for c in contours:
        area = cv2.contourArea(c)
        if area < min_small:
            continue
        x, y, w, h = cv2.boundingRect(c)
        boxes.append((x, y, x + w, y + h))
        conf.append(min(1.0, area / max(1.0, w * h)))
    if not boxes:
        return Detections.empty()
    xyxy = np.asarray(boxes, np.float32) / scale
    if frame_shape is not None:
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, frame_shape[1])
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, frame_shape[0])
    n = len(xyxy)
    return Detections(xyxy, np.asarray(conf, np.float32), moving=np.full(n, moving))
