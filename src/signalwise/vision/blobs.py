"""Every vehicle-sized blob, moving or standing: two background models, each for what it does well.

- The long-memory road background (`standing.py`) sees a whole vehicle,
  moving or stopped, for minutes: its blobs are the detections.
- MOG2 (`motion.py`) forgets a stopped vehicle within seconds, and leaves a
  ghost where one stood when it drives off; but it tells what moves: a
  blob is `moving` when enough of it is MOG2 foreground.

So a queue at a red light stays detected, and a vehicle that starts again is
one blob, not a vehicle plus the ghost of where it stood.
"""

from __future__ import annotations

import cv2
import numpy as np

from .detections import Detections
from .masks import boxes_from_mask
from .motion import MovingBlobDetector
from .standing import StandingBlobDetector

#: a blob is moving when at least this share of it is MOG2 foreground
MOVING_SHARE = 0.25


class BlobDetector:
    name = "blobs"

    def __init__(self, moving: MovingBlobDetector | None = None, standing: StandingBlobDetector | None = None,
                 *, min_area_px: float = 120.0, max_width_px: int | None = 640, reference: np.ndarray | None = None,
                 close_px: int = 9, closer=None):
        """`close_px`: gaps narrower than this join one blob; keep it below the gap between queued vehicles
        (2 m at the camera's pixels per metre). `closer` (`lanes.LaneCloser`) closes the standing mask along
        the lanes instead, so vehicles side by side stay apart, and drops what is thinner than a vehicle."""
        self.moving = moving or MovingBlobDetector(min_area_px=min_area_px, max_width_px=max_width_px,
                                                   close_px=close_px)
        self.standing = standing or StandingBlobDetector(min_area_px=min_area_px, max_width_px=max_width_px,
                                                         reference=reference, close_px=close_px,
                                                         closer=closer)

    def detect(self, image: np.ndarray, time_s: float) -> Detections:
        motion = self.moving.foreground(image, time_s)
        present = self.standing.present(image, time_s)
        if motion.shape != present.shape:
            motion = cv2.resize(motion, (present.shape[1], present.shape[0]), interpolation=cv2.INTER_NEAREST)
        blobs = boxes_from_mask(present, self.standing.min_area_px, self.standing.scale, False, image.shape)
        self.standing.learn(time_s, motion)
        if not len(blobs):
            return blobs
        scale = self.standing.scale
        moving = np.zeros(len(blobs), bool)
        for k, (x1, y1, x2, y2) in enumerate(np.round(blobs.xyxy * scale).astype(int)):
            part = motion[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]
            moving[k] = part.size > 0 and np.count_nonzero(part) >= MOVING_SHARE * part.size
        return Detections(blobs.xyxy, blobs.confidence, moving=moving)
