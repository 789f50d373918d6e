"""Moving blobs by background subtraction (OpenCV's MOG2).

It finds what moves. A vehicle that stops fades into MOG2's background within
its memory (`history_s`), so a queue at a red light disappears from it: the
standing-vehicle method (`standing.py`) covers that, and `BlobDetector`
(`blobs.py`) runs both. Two vehicles that touch in the image are one blob.
"""

from __future__ import annotations

import cv2
import numpy as np

from .detections import Detections
from .masks import boxes_from_mask, clean, shrink, working_scale


class MovingBlobDetector:
    """Blobs that differ from MOG2's adaptive background; shadows (MOG2 marks them 127) are left out."""

    name = "moving-blobs"

    def __init__(self, *, history_s: float = 20.0, var_threshold: float = 25.0, detect_shadows: bool = True,
                 min_area_px: float = 120.0, max_width_px: int | None = 640, open_px: int = 3, close_px: int = 9):
        if history_s <= 0:
            raise ValueError("history_s must be positive")
        self.history_s = history_s
        self.min_area_px = min_area_px
        self.max_width_px = max_width_px
        self.open_px, self.close_px = open_px, close_px
        self._mog = cv2.createBackgroundSubtractorMOG2(history=500, varThreshold=var_threshold,
                                                       detectShadows=detect_shadows)
        self._last_t: float | None = None
        self.last_mask: np.ndarray | None = None  # the cleaned mask at working scale
        self.scale = 1.0

    def foreground(self, image: np.ndarray, time_s: float) -> np.ndarray:
        """The cleaned moving-foreground mask (0/255) at working scale; learns at a rate set by elapsed time."""
        self.scale = working_scale(image.shape, self.max_width_px)
        small = shrink(image, self.scale)
        dt = 0.04 if self._last_t is None else max(1e-3, time_s - self._last_t)
        self._last_t = time_s
        rate = -1.0 if self.last_mask is None else min(1.0, dt / self.history_s)
        raw = self._mog.apply(small, learningRate=rate)
        mask = clean(cv2.threshold(raw, 249, 255, cv2.THRESH_BINARY)[1], self.open_px, self.close_px)  # raw >= 250
        self.last_mask = mask
        return mask

    def detect(self, image: np.ndarray, time_s: float) -> Detections:
        mask = self.foreground(image, time_s)
        return boxes_from_mask(mask, self.min_area_px, self.scale, moving=True, frame_shape=image.shape)
