"""Standing vehicles: the difference from a long-memory picture of the empty road.

MOG2 forgets a stopped vehicle within seconds; a signal controller needs
exactly those (the queue at a red light). This keeps its own background that
follows the empty road quickly where nothing is seen (light changes), and
takes in whatever stands on the road only slowly (`standing_memory_s`, 5 min
by default), so a queue stays visible for the length of a red and more. A
vehicle parked longer than that fades; the spot it leaves shows as a blob for
a similar time (a "ghost").

The background starts from `reference` (an empty-road frame, the camera
file's `background_image`) or from the first frame, refined for
`bootstrap_s` by the per-pixel median of one frame a second (vehicles that
pass do not stay in the median).

Beside it the detector keeps the road as last seen bare (`road`): updated
only where no blob is, never under one. A pixel is a blob only when it
differs from both. A vehicle that stood long enough to leave a trace in the
slow background leaves no ghost when it drives off: the road it uncovers
matches the bare road, so that spot is road again at once (and the slow
background catches up there at the road's quick rate).
"""

from __future__ import annotations

import cv2
import numpy as np

from .detections import Detections
from .masks import boxes_from_mask, clean, shrink, working_scale

#: a frame whose blobs cover more than this share differs as a whole (lights, exposure): start over from it
RESET_SHARE = 0.5


def median_image(frames: np.ndarray) -> np.ndarray:
    """The per-pixel median of a stack of uint8 frames, as float32; reorders the stack in place.

    np.median copies the whole stack to partition it and averages in float64: ~20 MB at a moment per
    640x480 stream, and streams that start together bootstrap together (4 of them peaked 70 MB over
    their steady memory). Partitioning the stack itself gives the same values, since a median does
    not care about the frames' order.
    """
    n = len(frames)
    k = n // 2
    if n % 2:
        frames.partition(k, axis=0)
        return frames[k].astype(np.float32)
    frames.partition([k - 1, k], axis=0)
    out = frames[k - 1].astype(np.float32)
    out += frames[k]
    out *= 0.5
    return out


class StandingBlobDetector:
    """Blobs that differ from the long-memory road background, moving or not (`moving=False`)."""

    name = "standing-blobs"

    def __init__(self, *, threshold: int = 30, road_memory_s: float = 10.0, standing_memory_s: float = 300.0,
                 bootstrap_s: float = 10.0, reference: np.ndarray | None = None, min_area_px: float = 120.0,
                 max_width_px: int | None = 640, open_px: int = 3, close_px: int = 9, closer=None):
        if road_memory_s <= 0 or standing_memory_s <= 0:
            raise ValueError("road_memory_s and standing_memory_s must be positive")
        self.threshold = threshold
        self.road_memory_s = road_memory_s
        self.standing_memory_s = standing_memory_s
        self.bootstrap_s = bootstrap_s
        self.min_area_px = min_area_px
        self.max_width_px = max_width_px
        self.open_px, self.close_px = open_px, close_px
        self.closer = closer  # joins a vehicle's parts (masks.clean); None: a round close_px kernel
        self._reference = reference
        self._bg: np.ndarray | None = None
        self._road: np.ndarray | None = None  # the road as last seen bare: never learns under a blob
        self._samples: np.ndarray | None = None  # bootstrap frames, one a second (uint8, preallocated)
        self._n_samples = 0
        self._t0: float | None = None
        self._next_sample_s = 0.0
        self._last_t: float | None = None
        self.scale = 1.0
        self.resets = 0
        self.last_mask: np.ndarray | None = None

    @property
    def background(self) -> np.ndarray | None:
        """The current empty-road picture at working scale (uint8), or None before the first frame."""
        return None if self._bg is None else self._bg.astype(np.uint8)

    def _start(self, small: np.ndarray, time_s: float) -> None:
        ref = self._reference
        if ref is not None:
            if ref.shape[:2] != small.shape[:2]:
                ref = cv2.resize(ref, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
            self._bg = ref.astype(np.float32)
            self.bootstrap_s = 0.0
        else:
            self._bg = small.astype(np.float32)
            self._samples = np.empty((int(self.bootstrap_s) + 2, *small.shape), np.uint8)
            self._samples[0] = small
            self._n_samples = 1
        self._t0 = time_s
        self._next_sample_s = time_s + 1.0

    def _bootstrap(self, small: np.ndarray, time_s: float) -> None:
        if time_s - self._t0 > self.bootstrap_s or time_s < self._next_sample_s:
            return
        self._next_sample_s = time_s + 1.0
        if self._samples is None or self._n_samples == len(self._samples):
            return
        self._samples[self._n_samples] = small
        self._n_samples += 1
        if self._n_samples >= 3:
            self._bg = median_image(self._samples[:self._n_samples])
            self._road = self._bg.copy()
        if time_s - self._t0 + 1.0 > self.bootstrap_s:
            self._samples, self._n_samples = None, 0

    def present(self, image: np.ndarray, time_s: float) -> np.ndarray:
        """The cleaned mask (0/255, working scale) of what is not empty road now."""
        self.scale = working_scale(image.shape, self.max_width_px)
        small = shrink(image, self.scale)
        if self._bg is None:
            self._start(small, time_s)
        else:
            self._bootstrap(small, time_s)
        if self._road is None:
            self._road = self._bg.copy()
        diff = cv2.absdiff(small, self._bg.astype(np.uint8))
        bare = cv2.absdiff(small, self._road.astype(np.uint8))
        if diff.ndim == 3:
            # the largest channel difference; numpy's max(axis=2) walks a 3-wide axis per pixel (19 ms at 640x480,
            # most of a frame's CPU), three whole-plane maxima give the same in under 1 ms
            diff = np.maximum(np.maximum(diff[..., 0], diff[..., 1]), diff[..., 2])
            bare = np.maximum(np.maximum(bare[..., 0], bare[..., 1]), bare[..., 2])
        moving = cv2.threshold(diff, self.threshold, 255, cv2.THRESH_BINARY)[1]
        unlike_road = cv2.threshold(bare, self.threshold, 255, cv2.THRESH_BINARY)[1]
        mask = clean(cv2.bitwise_and(moving, unlike_road), self.open_px, self.close_px, self.closer, self.scale)
        if np.count_nonzero(mask) > RESET_SHARE * mask.size:
            self._bg = small.astype(np.float32)  # the whole scene changed: the road is what we see now
            self._road = self._bg.copy()
            self.resets += 1
            mask = np.zeros_like(mask)
        self._small = small
        self.last_mask = mask
        return mask

    def learn(self, time_s: float, moving: np.ndarray | None = None) -> None:
        """Update the background from the last frame: fast on empty road, slowly under blobs, not under motion."""
        small, mask = self._small, self.last_mask
        dt = 0.04 if self._last_t is None else max(1e-3, time_s - self._last_t)
        self._last_t = time_s
        road = cv2.bitwise_not(mask)
        standing = mask
        if moving is not None:
            if moving.shape != mask.shape:
                moving = cv2.resize(moving, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_NEAREST)
            still = cv2.bitwise_not(cv2.dilate(moving, np.ones((5, 5), np.uint8)))
            road = cv2.bitwise_and(road, still)
            standing = cv2.bitwise_and(standing, still)
        cv2.accumulateWeighted(small, self._bg, min(1.0, dt / self.road_memory_s), mask=road)
        cv2.accumulateWeighted(small, self._road, min(1.0, dt / self.road_memory_s), mask=road)
        cv2.accumulateWeighted(small, self._bg, min(1.0, dt / self.standing_memory_s), mask=standing)

    def detect(self, image: np.ndarray, time_s: float) -> Detections:
        mask = self.present(image, time_s)
        dets = boxes_from_mask(mask, self.min_area_px, self.scale, moving=False, frame_shape=image.shape)
        self.learn(time_s)
        return dets
