"""A ByteTrack-style multi-object tracker (Zhang et al., 2022), with buffered IoU and a time-stepped filter.

Why written here: the kept libraries do not fit. `trackers` (Roboflow's, with
ByteTrack) installs `opencv-python` beside our headless OpenCV, two packages
fighting over `cv2`; supervision 0.31 no longer ships a tracker; `norfair`
pins numpy < 2. What ByteTrack needs is a Kalman filter (`kalman.py`), an IoU
matrix and `scipy.optimize.linear_sum_assignment`.

ByteTrack's idea: associate high-score detections with all tracks first, then
give the tracks left over a second chance with the low-score detections (a
partly hidden vehicle scores low and should keep its track). New tracks start
from unmatched high-score detections and are confirmed at their second hit; a
lost track is kept `lost_s` seconds for re-identification. Boxes are compared
with a buffered IoU (C-BIoU, Yang et al. 2023): each box grown by `buffer`
of its size, so a small vehicle that moves more than its length between two
processed frames is still matched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from .boxes import box_iou
from .detections import Detections
from .kalman import BoxKalman


@dataclass(eq=False)
class Track:
    id: int
    kf: BoxKalman
    score: float
    first_s: float
    last_s: float
    hits: int = 1
    confirmed: bool = False
    lost: bool = False
    moving: bool = True
    class_id: int = 0
    det_index: int = -1  # the detection it matched in the current frame (-1: none)
    history: list = field(default_factory=list)


def _grow(xyxy: np.ndarray, buffer: float) -> np.ndarray:
    w = xyxy[:, 2] - xyxy[:, 0]
    h = xyxy[:, 3] - xyxy[:, 1]
    return np.stack([xyxy[:, 0] - buffer * w, xyxy[:, 1] - buffer * h, xyxy[:, 2] + buffer * w,
                     xyxy[:, 3] + buffer * h], axis=1)


def _match(tracks: list[Track], boxes: np.ndarray, scores: np.ndarray | None, min_iou: float,
           buffer: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """(matches (track i, detection j), unmatched tracks, unmatched detections) by optimal assignment."""
    if not tracks or not len(boxes):
        return [], list(range(len(tracks))), list(range(len(boxes)))
    predicted = np.stack([t.kf.box for t in tracks])
    iou = box_iou(_grow(predicted, buffer), _grow(boxes, buffer))
    similarity = iou * scores[None, :] if scores is not None else iou  # ByteTrack's score fusion
    cost = 1.0 - similarity
    rows, cols = linear_sum_assignment(cost)
    matches = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou]
    mt = {r for r, _ in matches}
    md = {c for _, c in matches}
    return matches, [i for i in range(len(tracks)) if i not in mt], [j for j in range(len(boxes)) if j not in md]


class ByteTracker:
    """`update(detections, time_s)` -> the detections that belong to confirmed tracks, with `tracker_id` set."""

    def __init__(self, *, high_score: float = 0.5, low_score: float = 0.1, new_track_score: float = 0.5,
                 match_iou: float = 0.2, second_match_iou: float = 0.4, lost_s: float = 1.5, min_hits: int = 2,
                 buffer: float = 0.3):
        self.high_score, self.low_score, self.new_track_score = high_score, low_score, new_track_score
        self.match_iou, self.second_match_iou = match_iou, second_match_iou
        self.lost_s, self.min_hits, self.buffer = lost_s, min_hits, buffer
        self.tracks: list[Track] = []
        self._next_id = 1
        self._last_s: float | None = None

    def reset(self) -> None:
        self.tracks = []
        self._last_s = None

    def update(self, dets: Detections, time_s: float) -> Detections:
        dt = 0.0 if self._last_s is None else time_s - self._last_s
        self._last_s = time_s
        for t in self.tracks:
            t.kf.predict(dt)
            t.det_index = -1
        conf = dets.confidence
        high = np.flatnonzero(conf >= self.high_score)
        low = np.flatnonzero((conf >= self.low_score) & (conf < self.high_score))
        confirmed = [t for t in self.tracks if t.confirmed]
        tentative = [t for t in self.tracks if not t.confirmed]

        # 1. high-score detections with every confirmed track, active or lost
        m1, left_tracks, left_high = _match(confirmed, dets.xyxy[high], conf[high], self.match_iou, self.buffer)
        for i, j in m1:
            self._hit(confirmed[i], dets, int(high[j]), time_s)
        # 2. the active tracks left over with the low-score detections
        active_left = [confirmed[i] for i in left_tracks if not confirmed[i].lost]
        m2, unmatched2, _ = _match(active_left, dets.xyxy[low], None, self.second_match_iou, self.buffer)
        for i, j in m2:
            self._hit(active_left[i], dets, int(low[j]), time_s)
        for i in unmatched2:
            active_left[i].lost = True
        # 3. tentative tracks with the high-score detections left; unmatched ones go
        rest = high[left_high]
        m3, unmatched3, left_rest = _match(tentative, dets.xyxy[rest], conf[rest], self.match_iou, self.buffer)
        for i, j in m3:
            self._hit(tentative[i], dets, int(rest[j]), time_s)
        gone = {id(tentative[i]) for i in unmatched3}
        # 4. new tracks from the high-score detections nobody took
        for j in left_rest:
            k = int(rest[j])
            if conf[k] >= self.new_track_score:
                self._start(dets, k, time_s)
        # 5. forget tracks lost too long
        self.tracks = [t for t in self.tracks if id(t) not in gone and not (t.lost and time_s - t.last_s > self.lost_s)]

        idx = [(t.det_index, t.id) for t in self.tracks if t.confirmed and t.det_index >= 0]
        if not idx:
            return Detections.empty()
        idx.sort()
        order = np.array([i for i, _ in idx], np.int64)
        return dets[order].with_tracker_ids([tid for _, tid in idx])

    def velocity_px_s(self, track_id: int) -> np.ndarray | None:
        """The filter's image velocity of a live track (px/s), or None."""
        for t in self.tracks:
            if t.id == track_id:
                return t.kf.velocity_px_s
        return None

    def _hit(self, t: Track, dets: Detections, k: int, time_s: float) -> None:
        t.kf.update(dets.xyxy[k])
        t.score = float(dets.confidence[k])
        t.last_s = time_s
        t.hits += 1
        t.lost = False
        t.moving = bool(dets.moving[k])
        t.class_id = int(dets.class_id[k])
        t.det_index = k
        if t.hits >= self.min_hits:
            t.confirmed = True

    def _start(self, dets: Detections, k: int, time_s: float) -> None:
        t = Track(self._next_id, BoxKalman(dets.xyxy[k]), float(dets.confidence[k]), time_s, time_s,
                  moving=bool(dets.moving[k]), class_id=int(dets.class_id[k]), det_index=k)
        self._next_id += 1
        t.confirmed = self.min_hits <= 1
        self.tracks.append(t)
